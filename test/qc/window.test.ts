/**
 * QC models and intensity windows: `qc train` records the store's normalisation; `qc apply` warns when the scored
 * store's window differs from the model's (or when either records none) and still scores; `--use-model-window` maps
 * the stored crops into the model's window, so a store cut with another window scores like the model's own store.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { extractCrops, type Normalisation } from '../../src/data/crops.js';
import { readDataset } from '../../src/data/datasets/index.js';
import { readCellProfilerCentres } from '../../src/data/nuclei/cellprofiler.js';
import { openCropStore } from '../../src/data/store/crop-store.js';
import { QcbError } from '../../src/errors.js';
import { applyQcModel } from '../../src/qc/apply.js';
import { trainQcModel } from '../../src/qc/train.js';
import { compareWindows, recordedNormalisation, WINDOW_TOLERANCE } from '../../src/qc/window.js';
import { Logger } from '../../src/util/log.js';
import { makeTinyScreen } from '../e2e/_tiny-screen.js';

process.env.QCBENCH_LOG_QUIET = '1';
const dir = mkdtempSync(join(tmpdir(), 'qcb-qc-window-'));

function warnings(logFile: string): string[] {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { level: string; msg: string })
    .filter((r) => r.level === 'warn' && r.msg.startsWith('intensity window'))
    .map((r) => r.msg);
}

function scores(out: string): Map<string, number> {
  return new Map(
    readFileSync(join(out, 'scores.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { crop_id: string; score: number })
      .map((r) => [r.crop_id, r.score]),
  );
}

test('qc train records the window; qc apply warns on another or a missing one, and --use-model-window maps to it', async () => {
  const { screen, annotations } = await makeTinyScreen(dir);
  const fs = readDataset('bbbc022', { root: screen });
  const { centres } = readCellProfilerCentres(join(screen, 'nuclei.csv'), fs.fields);
  const quiet = new Logger({ quiet: true });
  const common = { fieldSet: fs, workers: 0, log: quiet, size: 32, centres };
  const own = await extractCrops({ ...common, out: join(dir, 'own') });
  const ownInfo = (await openCropStore(own.store)).info;
  const plateN = ownInfo.normalisation as Extract<Normalisation, { kind: 'plate' }>;
  const model = join(dir, 'qc.onnx');
  const t = await trainQcModel({
    encoder: 'random-resnet18',
    task: 'knn',
    annotations,
    store: own.store,
    out: model,
    seed: 0,
    threads: 1,
    log: quiet,
  });
  // The sidecar records mode and windows.
  assert.equal(t.meta.normalisation?.mode, 'plate');
  assert.deepEqual(t.meta.normalisation?.windows, plateN.windows);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'qc.json'), 'utf8')).normalisation, t.meta.normalisation);

  const apply = async (store: string, name: string, useModelWindow = false) => {
    const logFile = join(dir, `${name}.jsonl`);
    const r = await applyQcModel({
      model,
      store,
      out: join(dir, name),
      threads: 1,
      montage: 0,
      useModelWindow,
      log: new Logger({ quiet: true, file: logFile }),
    });
    assert.ok(r.complete, name);
    return { warnings: warnings(logFile), scores: scores(join(dir, name)) };
  };
  // Its own store: no warning; mapping to the model's window is the identity.
  const base = await apply(own.store, 'a-own');
  assert.deepEqual(base.warnings, []);
  assert.deepEqual((await apply(own.store, 'a-own-mapped', true)).scores, base.scores);

  // The same fields cut with a window twice as wide (fixed): a warning per channel; mapped, the crops come back to
  // the model's window up to rounding, so the scores are (nearly all) the model-store ones again.
  const ranges = Object.fromEntries(
    Object.entries(plateN.windows!.P1 ?? Object.values(plateN.windows!)[0]).map(([c, w]) => [
      c,
      { min: w.min, max: w.min + 2 * (w.max - w.min) },
    ]),
  );
  const wide = await extractCrops({ ...common, out: join(dir, 'wide'), normalisation: { kind: 'fixed', ranges } });
  const raw = await apply(wide.store, 'a-wide');
  assert.equal(raw.warnings.length, fs.channels.length, raw.warnings.join('\n'));
  assert.match(raw.warnings[0], /differs from the model's .* by 100% of its span/);
  const mapped = await apply(wide.store, 'a-wide-mapped', true);
  const same = (m: Map<string, number>) => [...m].filter(([id, s]) => base.scores.get(id) === s).length;
  assert.ok(same(mapped.scores) > same(raw.scores), `mapped ${same(mapped.scores)} vs raw ${same(raw.scores)}`);
  assert.ok(same(mapped.scores) >= 0.8 * base.scores.size, `${same(mapped.scores)} of ${base.scores.size}`);

  // A store made before windows were recorded (per-field percentiles, no window): scores, with a warning; it cannot
  // be mapped (a coded error naming the store).
  const old = join(dir, 'old');
  cpSync(own.store, old, { recursive: true });
  const info = JSON.parse(readFileSync(join(old, 'qcbench.json'), 'utf8'));
  info.normalisation = { kind: 'percentile', lo: 0.1, hi: 99.9 };
  writeFileSync(join(old, 'qcbench.json'), JSON.stringify(info));
  const o = await apply(old, 'a-old');
  assert.equal(o.warnings.length, 1);
  assert.match(o.warnings[0], /per field \(no window recorded\)/);
  assert.equal(o.scores.size, base.scores.size);
  await assert.rejects(
    applyQcModel({ model, store: old, out: join(dir, 'a-old-m'), useModelWindow: true, log: quiet }),
    (e) => e instanceof QcbError && e.code === 'QCB_STORE' && e.exitCode === 2 && e.context.file === old,
  );
  delete info.normalisation;
  writeFileSync(join(old, 'qcbench.json'), JSON.stringify(info));
  assert.match((await apply(old, 'a-older')).warnings[0], /records no intensity window/);
});

test('window comparison: relative to the model span, within tolerance is quiet', () => {
  const model = recordedNormalisation({
    normalisation: { kind: 'plate', lo: 0.1, hi: 99.9, windows: { A: { dna: { min: 100, max: 1100 } } } },
  });
  const near = recordedNormalisation({
    normalisation: { kind: 'plate', windows: { B: { dna: { min: 100, max: 1100 + 1000 * WINDOW_TOLERANCE * 0.9 } } } },
  });
  const far = recordedNormalisation({
    normalisation: { kind: 'plate', windows: { C: { dna: { min: 400, max: 1100 } } } },
  });
  assert.deepEqual(compareWindows(model, near), []);
  assert.deepEqual(compareWindows(model, far).length, 1);
  assert.match(compareWindows(model, far)[0], /plate C, channel dna: .* by 30%/);
  assert.match(compareWindows(undefined, far)[0], /model records no intensity window/);
});
