/**
 * Plate windows: one intensity window per plate and channel (the default) keeps a dim or saturated field dim or
 * saturated in its crops; per-field percentiles stretch it to look like every other field. The window is recorded in
 * the store's qcbench.json, equal to the pooled percentiles of the seeded sample of the plate's fields.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeBenchFields } from '../../src/cli/bench-data.js';
import {
  extractCrops,
  type Normalisation,
  normalisationOf,
  PLATE_WINDOW_SAMPLE,
  fieldWindows,
  windowSampleFields,
} from '../../src/data/crops.js';
import { readCsvDataset } from '../../src/data/datasets/csv.js';
import { readImage } from '../../src/data/io/image.js';
import { medianWindow, rewindowLut } from '../../src/data/io/normalize.js';
import { writeTiff16 } from '../../src/data/io/tiff.js';
import { openCropStore } from '../../src/data/store/crop-store.js';
import { Logger } from '../../src/util/log.js';

const quiet = new Logger({ quiet: true });
process.env.QCBENCH_LOG_QUIET = '1';

/** A 10-field plate (3 channels, 12-bit in 16-bit TIFFs); field 3 is dimmed to a fifth, field 6 saturated (×4, clipped). */
async function plateWithBadFields(): Promise<{ dir: string; dark: string; bright: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-plate-'));
  writeBenchFields(dir, 10, { width: 300, height: 240, nucleiPerField: 25, seed: 7 });
  const rows = readFileSync(join(dir, 'fields.csv'), 'utf8').trim().split('\n').slice(1);
  const scale = async (row: string, k: number) => {
    for (const rel of row.split(',').slice(4, 7)) {
      const img = await readImage(join(dir, rel));
      const out = new Uint16Array(img.data.length);
      for (let i = 0; i < out.length; i++) out[i] = Math.min(4095, Math.round(img.data[i] * k));
      writeTiff16(join(dir, rel), img.width, img.height, out);
    }
    return row.split(',')[0];
  };
  const dark = await scale(rows[2], 0.2);
  const bright = await scale(rows[5], 4);
  return { dir, dark, bright };
}

/** Mean uint8 value of every crop of each field (all channels), by field id. */
async function fieldMeans(store: string): Promise<Map<string, number>> {
  const s = await openCropStore(store);
  const data = await s.read(0, s.count);
  const per = s.channels.length * s.size * s.size;
  const acc = new Map<string, { sum: number; n: number }>();
  s.meta.forEach((m, i) => {
    let sum = 0;
    for (let j = i * per; j < (i + 1) * per; j++) sum += data[j];
    const a = acc.get(m.field_id) ?? { sum: 0, n: 0 };
    a.sum += sum / per;
    a.n++;
    acc.set(m.field_id, a);
  });
  return new Map([...acc].map(([k, a]) => [k, a.sum / a.n]));
}

test('under the plate window a dark and a saturated field keep their difference in crop intensity; per-field percentiles erase it', async () => {
  const { dir, dark, bright } = await plateWithBadFields();
  const fs = readCsvDataset({ root: dir, dnaChannel: 'dna' });
  const out = mkdtempSync(join(tmpdir(), 'qcb-plate-out-'));
  const common = { fieldSet: fs, workers: 0, log: quiet, size: 48 };
  const plate = await extractCrops({ ...common, out: join(out, 'plate') }); // the default
  const field = await extractCrops({ ...common, out: join(out, 'field'), normalisation: normalisationOf('field') });
  const mp = await fieldMeans(plate.store);
  const mf = await fieldMeans(field.store);
  assert.ok(mp.has(dark) && mp.has(bright), 'the dark and the saturated field have crops');
  const normal = (m: Map<string, number>) => {
    const v = [...m].filter(([k]) => k !== dark && k !== bright).map(([, x]) => x);
    return v.reduce((a, b) => a + b, 0) / v.length;
  };
  const np = normal(mp);
  const nf = normal(mf);
  // Plate window: the dark field's crops are far darker, the saturated field's far brighter than normal crops.
  assert.ok(mp.get(dark)! < 0.5 * np, `plate: dark ${mp.get(dark)} vs normal ${np}`);
  assert.ok(mp.get(bright)! > 1.8 * np, `plate: saturated ${mp.get(bright)} vs normal ${np}`);
  // Per-field percentiles: both look like any other field (within a fifth), the difference is gone.
  assert.ok(Math.abs(mf.get(dark)! - nf) < 0.2 * nf, `field: dark ${mf.get(dark)} vs normal ${nf}`);
  assert.ok(
    Math.abs(mf.get(bright)! - nf) < 0.5 * Math.abs(mp.get(bright)! - np),
    `field: saturated ${mf.get(bright)}`,
  );
  assert.ok(Math.abs(mf.get(dark)! - nf) < 0.25 * Math.abs(mp.get(dark)! - np));

  // The window is recorded: per channel, the median over the plate's seeded sample of the fields' 0.1/99.9
  // percentile windows.
  const info = (await openCropStore(plate.store)).info;
  const n = info.normalisation as Extract<Normalisation, { kind: 'plate' }>;
  assert.equal(n.kind, 'plate');
  assert.deepEqual([n.lo, n.hi, n.sample], [0.1, 99.9, PLATE_WINDOW_SAMPLE]);
  const sample = windowSampleFields(fs.fields, 'P1', n.sample, n.seed);
  assert.equal(sample.length, PLATE_WINDOW_SAMPLE);
  assert.deepEqual(
    sample.map((f) => fs.fields.indexOf(f)),
    [...sample.map((f) => fs.fields.indexOf(f))].sort((a, b) => a - b),
  );
  const own = await Promise.all(sample.map((f) => fieldWindows(f, fs.channels, 0.1, 99.9)));
  for (const [k, c] of fs.channels.entries()) {
    const w = medianWindow(own.map((o) => o[k]));
    assert.deepEqual(n.windows?.P1[c], w);
    assert.ok(w.max > w.min);
  }
  // Robust: the saturated field, in the sample or not, does not set the top of the window (it would under pooling).
  assert.ok(n.windows!.P1.dna.max < 4095, `dna window ${JSON.stringify(n.windows!.P1.dna)}`);
  // The per-field store records its mode and no window.
  const fi = (await openCropStore(field.store)).info.normalisation;
  assert.deepEqual(fi, { kind: 'percentile', lo: 0.1, hi: 99.9 });
  // Workers estimate the same windows and cut the same crops as in-process.
  const w2 = await extractCrops({ ...common, workers: 2, out: join(out, 'plate-w') });
  assert.equal((await openCropStore(w2.store)).hash, (await openCropStore(plate.store)).hash);
});

test('re-windowing a stored value maps it linearly between windows, clipping outside', () => {
  const id = rewindowLut({ min: 100, max: 1100 }, { min: 100, max: 1100 });
  assert.deepEqual(
    [...id],
    Array.from({ length: 256 }, (_, i) => i),
  );
  const half = rewindowLut({ min: 0, max: 1000 }, { min: 0, max: 2000 });
  assert.equal(half[0], 0);
  assert.equal(half[255], 128);
  assert.deepEqual(
    medianWindow([
      { min: 1, max: 10 },
      { min: 3, max: 4095 },
      { min: 2, max: 12 },
    ]),
    { min: 2, max: 12 },
  );
  assert.equal(half[100], 50);
  const narrow = rewindowLut({ min: 0, max: 1000 }, { min: 500, max: 750 });
  assert.equal(narrow[0], 0); // below the target window: clipped
  assert.equal(narrow[255], 255); // above: clipped
  assert.equal(narrow[159], Math.round(((159 * 1000) / 255 - 500) * (255 / 250))); // 623.5 → 126
  assert.ok(rewindowLut({ min: 0, max: 1 }, { min: 5, max: 5 }).every((v) => v === 0)); // empty target window
});
