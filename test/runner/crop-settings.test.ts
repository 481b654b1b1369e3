/**
 * Per-data-set crop settings and existing crop stores through the runner: the protocol's `crops:` keys reach the crop
 * stage (another nucleus diameter, border policy or normalisation gives another store with other crops), and a
 * `format: store` data set is scored as it is — no cutting — up to a cell record; a path that is no crop store, or
 * annotations the store lacks, are coded errors (exit 2) before any work.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writeBenchFields } from '../../src/cli/bench-data.js';
import { extractCrops } from '../../src/data/crops.js';
import { readDataset } from '../../src/data/datasets/index.js';
import { readCellProfilerCentres } from '../../src/data/nuclei/cellprofiler.js';
import { openCropStore } from '../../src/data/store/crop-store.js';
import { QcbError } from '../../src/errors.js';
import type { CellRecord } from '../../src/results/schema.js';
import { ArtifactStore } from '../../src/runner/cache.js';
import { loadProtocol } from '../../src/runner/catalog.js';
import { expandCells } from '../../src/runner/cells.js';
import { extractDatasetCrops } from '../../src/runner/extract.js';
import { checkAnnotations } from '../../src/runner/inputs.js';
import { runProtocol } from '../../src/runner/run.js';
import { createStages } from '../../src/runner/stages.js';
import { Logger } from '../../src/util/log.js';
import { makeTinyScreen } from '../e2e/_tiny-screen.js';

process.env.QCBENCH_LOG_QUIET = '1';
const base = mkdtempSync(join(tmpdir(), 'qcb-crop-settings-'));
after(() => rmSync(base, { recursive: true, force: true }));
const log = new Logger({ quiet: true });

function protocolFile(name: string, datasets: string, cropSize = 64): string {
  const file = join(base, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1
name: ${name}
seeds: [0]
encoders: [random-resnet18]
data:
  crop_size: ${cropSize}
  pretrain_on: s
  datasets:
${datasets}
metrics: { bootstrap: 10 }
evaluations:
  - { tasks: [knn], budgets: [8] }
`,
  );
  return file;
}

test('the crops keys reach the crop stage: diameter, border and normalisation each cut other crops', async () => {
  writeBenchFields(join(base, 'fields'), 4, { width: 320, height: 240, nucleiPerField: 20, seed: 4 });
  const cut = async (crops: string) => {
    const tag = crops.replace(/\W+/g, '') || 'default';
    const p = loadProtocol(
      protocolFile(
        `c${tag}`.slice(0, 40).toLowerCase(),
        `    s: { format: csv, root: fields, image_table: fields.csv, crops: ${crops || '{}'} }`,
      ),
      { env: {}, workdir: join(base, 'w') },
    );
    const ctx = {
      p,
      cache: new ArtifactStore(join(p.workdir, 'cache')),
      results: new ArtifactStore(p.results),
      log,
      threads: 0,
    };
    const out = join(base, 'stores', tag);
    await extractDatasetCrops(ctx, 's', p.data.datasets.s, out);
    return openCropStore(out);
  };
  const d30 = await cut('');
  assert.equal((d30.info.normalisation as { kind: string }).kind, 'plate');
  assert.equal((d30.info.params.segment as { diameter: number }).diameter, 30);
  const d12 = await cut('{ diameter: 12 }');
  assert.equal((d12.info.params.segment as { diameter: number }).diameter, 12);
  assert.notEqual(d12.hash, d30.hash);
  assert.notDeepEqual(
    d12.meta.map((m) => m.crop_id),
    d30.meta.map((m) => m.crop_id),
    'segmenting for smaller nuclei finds other centres',
  );
  const pad = await cut('{ border: pad }');
  assert.ok(pad.count > d30.count, `pad keeps crops at the edge: ${pad.count} vs ${d30.count}`);
  const field = await cut('{ normalise: field }');
  assert.equal((field.info.normalisation as { kind: string }).kind, 'percentile');
  assert.deepEqual(
    field.meta.map((m) => m.crop_id),
    d30.meta.map((m) => m.crop_id),
  );
  assert.notDeepEqual(await field.read(0, 4), await d30.read(0, 4), 'other windows, other bytes');
});

test('a format: store data set runs to a cell as it is; not a store or foreign crop ids are coded errors', {
  timeout: 600_000,
}, async () => {
  const tiny = join(base, 'tiny');
  mkdirSync(tiny, { recursive: true });
  const { screen, annotations } = await makeTinyScreen(tiny);
  const fs = readDataset('bbbc022', { root: screen, channels: ['Ph_golgi', 'Mito', 'Hoechst'] });
  const { centres } = readCellProfilerCentres(join(screen, 'nuclei.csv'), fs.fields);
  const store = join(base, 'my-store');
  await extractCrops({ fieldSet: fs, out: store, workers: 0, log, size: 32, centres });
  const file = protocolFile('own', `    s: { format: store, path: my-store, annotations: ${annotations} }`, 32);
  const p = loadProtocol(file, { env: {}, workdir: join(base, 'w-own') });
  checkAnnotations(p, { missingFiles: 'skip' }); // validate's check: a store, of this crop size, with these crops
  const plan = expandCells(p);
  assert.equal(plan.length, 1);
  const sum = await runProtocol(p, createStages(), { log, threads: 1 }, 'test');
  assert.equal(sum.done, 1, JSON.stringify(sum));
  const rec = JSON.parse(readFileSync(join(p.results, 'cells', `${plan[0].id}.json`), 'utf8')) as CellRecord;
  assert.ok(rec.metrics && (rec.predictions?.length ?? 0) > 0);
  assert.ok(
    !existsSync(join(p.workdir, 'cache', 'stores')) || readdirSync(join(p.workdir, 'cache', 'stores')).length === 0,
    'nothing was cut',
  );

  // a folder that is not a crop store: QCB_STORE naming the folder and the key, exit 2
  mkdirSync(join(base, 'not-a-store'), { recursive: true });
  const bad = loadProtocol(
    protocolFile('bad', `    s: { format: store, path: not-a-store, annotations: ${annotations} }`, 32),
    { env: {}, workdir: join(base, 'w-bad') },
  );
  assert.throws(
    () => checkAnnotations(bad, { missingFiles: 'skip' }),
    (e) =>
      e instanceof QcbError &&
      e.code === 'QCB_STORE' &&
      e.exitCode === 2 &&
      e.context.file === join(base, 'not-a-store') &&
      e.context.key === 'data.datasets.s.path' &&
      /qcbench data crops/.test(e.context.fix ?? ''),
  );
  // annotations naming crops the store lacks: QCB_ANNOTATIONS naming the annotation file
  const foreign = join(base, 'foreign.csv');
  const lines = readFileSync(annotations, 'utf8').split('\n');
  lines[1] = lines[1].replace(/^[^,]+/, 'P9_Z99_s1_5_5');
  writeFileSync(foreign, lines.join('\n'));
  const other = loadProtocol(
    protocolFile('foreign', `    s: { format: store, path: my-store, annotations: ${foreign} }`, 32),
    {
      env: {},
      workdir: join(base, 'w-foreign'),
    },
  );
  assert.throws(
    () => checkAnnotations(other, { missingFiles: 'skip' }),
    (e) => e instanceof QcbError && e.code === 'QCB_ANNOTATIONS' && e.exitCode === 2 && e.context.file === foreign,
  );
  // another crop size than the protocol's
  const size = loadProtocol(
    protocolFile('size', `    s: { format: store, path: my-store, annotations: ${annotations} }`, 64),
    {
      env: {},
      workdir: join(base, 'w-size'),
    },
  );
  await assert.rejects(
    runProtocol(size, createStages(), { log, threads: 1 }, 'test'),
    (e) => e instanceof QcbError && e.code === 'QCB_STORE' && e.context.key === 'data.crop_size',
  );
});
