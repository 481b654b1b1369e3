/**
 * cp-quality end to end on the tiny synthetic screen: the real runner (screen → crops → the encoder's measures →
 * z-score on the training crops → kNN / linear → metrics) gives done kNN and linear cells and a fine-tuning cell
 * skipped as n/a (not failed, no number), `qcbench eval`'s path (evaluateCell) gives the same kNN predictions from the
 * crop store, and the report shows the row, its n/a and the reading guide's line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { evaluateCell } from '../../src/downstream/cell.js';
import { buildReport } from '../../src/reports/build.js';
import type { CellRecord } from '../../src/results/schema.js';
import { loadProtocol, resolveEncoder } from '../../src/runner/catalog.js';
import { datasetId } from '../../src/runner/cells.js';
import { runProtocol } from '../../src/runner/run.js';
import { createStages } from '../../src/runner/stages.js';
import { Logger } from '../../src/util/log.js';
import { makeTinyScreen, tinyDataYaml } from './_tiny-screen.js';

const base = mkdtempSync(join(tmpdir(), 'qcb-cpq-'));
const quiet = new Logger({ quiet: true });
let annotations = '';

before(async () => {
  annotations = (await makeTinyScreen(base)).annotations;
  writeFileSync(
    join(base, 'cpq.yaml'),
    `version: 1
name: cpq
seeds: [0]
encoders: [cp-quality]
${tinyDataYaml()}tasks:
  linear: { epochs: 20, milestones: [10] }
metrics: { bootstrap: 20 }
evaluations:
  - { name: t, tasks: [knn, linear, finetune], budgets: [16] }
`,
  );
});

after(() => rmSync(base, { recursive: true, force: true }));

test('the runner: cp-quality kNN and linear cells are done, its fine-tuning cell is skipped as n/a', async () => {
  const p = loadProtocol(join(base, 'cpq.yaml'), { env: {}, workdir: join(base, 'work') });
  const summary = await runProtocol(p, createStages(), { log: quiet, threads: 1 }, 'test');
  assert.equal(summary.done, 2);
  assert.equal(summary.skipped, 1);
  assert.equal(summary.failed, 0);
  const cells = readdirSync(join(p.results, 'cells')).map(
    (f) => JSON.parse(readFileSync(join(p.results, 'cells', f), 'utf8')) as CellRecord,
  );
  const byTask = Object.fromEntries(cells.map((c) => [c.key.task, c]));
  for (const t of ['knn', 'linear']) {
    const c = byTask[t];
    assert.equal(c.status, 'done', t);
    assert.equal(c.encoder_kind, 'handcrafted');
    assert.equal(c.metrics?.n_test, 12);
    assert.ok(Number.isFinite(c.metrics?.f1));
  }
  const ft = byTask.finetune;
  assert.equal(ft.status, 'skipped');
  assert.equal(ft.metrics, undefined);
  assert.match(ft.skip!.reason, /^n\/a: the finetune task does not apply to cp-quality/);
  assert.equal(ft.skip!.fix_command, undefined, 'nothing to fix');

  // eval's path on the crop store the run cut: the same kNN predictions
  const store = join(p.workdir, 'cache', 'stores', datasetId(p, 's').slice(0, 24));
  const ev = await evaluateCell({
    encoder: resolveEncoder('cp-quality'),
    task: 'knn',
    annotations,
    store,
    budget: 16,
    seed: 0,
    bootstrap: 20,
  });
  assert.deepEqual(ev.predictions, byTask.knn.predictions);
  assert.equal(ev.encoder.kind, 'handcrafted');
  assert.equal(ev.encoder.dim, 3 * 13);
  await assert.rejects(
    evaluateCell({ encoder: resolveEncoder('cp-quality'), task: 'finetune', annotations, store, seed: 0 }),
    (e: Error & { code?: string }) => e.code === 'QCB_NOT_APPLICABLE',
  );

  // the report: the row in Table 1, n/a in Table 2, and the reading guide says what the row is
  const out = join(base, 'report');
  await buildReport(p.results, out, { png: false, log: quiet });
  const t1 = readFileSync(join(out, 'tables', 'table1.md'), 'utf8');
  assert.match(t1, /\| CellProfiler image quality \(hand-made\) \| hand-made \| \d/);
  const t2 = readFileSync(join(out, 'tables', 'table2.md'), 'utf8');
  assert.match(t2, /\| CellProfiler image quality \(hand-made\) \| hand-made \| skipped: n\/a: the finetune task/);
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  assert.match(html, /Hand-made QC metrics \(CellProfiler MeasureImageQuality\),\s+standardised, kNN \/ linear/);
});
