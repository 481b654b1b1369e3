import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeBenchFields } from '../../src/cli/bench-data.js';
import { type CropSettings, extractCrops, processField, shardRange } from '../../src/data/crops.js';
import { readBbbc022 } from '../../src/data/datasets/bbbc022.js';
import { readCsvDataset } from '../../src/data/datasets/csv.js';
import { readImage } from '../../src/data/io/image.js';
import { FIELD_MEASURES_MODULE } from '../../src/metrics/field-quality.js';
import { percentileRanges, toUint8 } from '../../src/data/io/normalize.js';
import { writeTiff16 } from '../../src/data/io/tiff.js';
import { segmentNuclei } from '../../src/data/nuclei/segment.js';
import { openCropStore } from '../../src/data/store/crop-store.js';
import type { Field } from '../../src/data/types.js';
import { QcbError } from '../../src/errors.js';
import { Logger } from '../../src/util/log.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/bbbc/', import.meta.url));
const quiet = new Logger({ quiet: true });
process.env.QCBENCH_LOG_QUIET = '1';

test('BBBC022 field: one 128×128 crop per segmented nucleus that fits, centred, normalised, with the crop-id convention', async () => {
  const fs = readBbbc022({ root: join(FIX, 'bbbc022'), channels: ['Hoechst'] });
  const field = fs.fields[0];
  const s: CropSettings = {
    channels: ['Hoechst'],
    dnaChannel: 'Hoechst',
    size: 128,
    border: 'skip',
    normalisation: { kind: 'percentile', lo: 0.1, hi: 99.9 },
    segment: {},
  };
  const r = await processField(field, s);
  const img = await readImage(field.channels.Hoechst);
  const nuclei = segmentNuclei(img).nuclei;
  const inside = nuclei.filter(
    (n) => Math.round(n.x) >= 64 && Math.round(n.y) >= 64 && Math.round(n.x) + 64 <= 696 && Math.round(n.y) + 64 <= 520,
  );
  assert.equal(r.nuclei, nuclei.length);
  assert.equal(r.metas.length, inside.length);
  assert.ok(r.metas.length >= 15, `${r.metas.length} crops`);
  assert.equal(r.crops.length, r.metas.length * 128 * 128);
  const plane = toUint8(img, 0, percentileRanges(img)[0]);
  r.metas.forEach((m, k) => {
    assert.equal(m.crop_id, `20585_A01_s1_${m.x}_${m.y}`);
    assert.equal(m.field_id, '20585_A01_s1');
    assert.equal(m.metadata.compound, 'NIFLUMIC ACID');
    // crop pixel (64, 64) is the field pixel at the centre; (0, 0) is 64 px up and left.
    assert.equal(r.crops[k * 16384 + 64 * 128 + 64], plane[m.y * 696 + m.x]);
    assert.equal(r.crops[k * 16384], plane[(m.y - 64) * 696 + m.x - 64]);
  });
});

test('border policies: skip drops, pad fills zeros, reflect mirrors without repeating the edge', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-border-'));
  const W = 40;
  const H = 30;
  const d = new Uint16Array(W * H).map((_, i) => i % 251);
  writeTiff16(join(dir, 'a.tif'), W, H, d);
  const field: Field = {
    field_id: 'P_A01_s1',
    plate: 'P',
    well: 'A01',
    site: 1,
    channels: { dna: join(dir, 'a.tif') },
    metadata: {},
  };
  const base: CropSettings = {
    channels: ['dna'],
    dnaChannel: 'dna',
    size: 16,
    border: 'skip',
    normalisation: { kind: 'fixed', ranges: { dna: { min: 0, max: 255 } } },
    segment: {},
  };
  const centres = [
    { x: 2, y: 3, area: 0 },
    { x: 20, y: 15, area: 0 },
  ];
  assert.equal((await processField(field, base, centres)).metas.length, 1);
  const pad = await processField(field, { ...base, border: 'pad' }, centres);
  assert.equal(pad.metas.length, 2);
  assert.equal(pad.metas[0].crop_id, 'P_A01_s1_2_3');
  // crop (cx, cy) ↔ field (x0 + cx, y0 + cy) with x0 = 2 − 8 = −6, y0 = 3 − 8 = −5
  assert.equal(pad.crops[0], 0);
  assert.equal(pad.crops[5 * 16 + 6], d[0]);
  assert.equal(pad.crops[10 * 16 + 10], d[5 * W + 4]);
  const refl = await processField(field, { ...base, border: 'reflect' }, centres);
  // field x = −6 → 6, y = −5 → 5
  assert.equal(refl.crops[0], d[5 * W + 6]);
  assert.equal(refl.crops[5 * 16 + 6], d[0]);
  assert.equal(refl.crops[5 * 16 + 5], d[1]); // x = −1 → 1
});

function makeScreen(n: number) {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-screen-'));
  writeBenchFields(dir, n, { width: 300, height: 240, nucleiPerField: 25, seed: 5 });
  return dir;
}

test('end-to-end: worker threads give the same store as in-process; bad fields are skipped and reported, or stop strict runs', async () => {
  const dir = makeScreen(6);
  // Field 2: truncated DNA file; field 4: actin of another size.
  const csv = readFileSync(join(dir, 'fields.csv'), 'utf8').trim().split('\n');
  const f2 = csv[2].split(',')[4];
  writeFileSync(join(dir, f2), readFileSync(join(dir, f2)).subarray(0, 5000));
  const f4 = csv[4].split(',')[5];
  writeTiff16(join(dir, f4), 100, 100, new Uint16Array(10000));
  const fs = readCsvDataset({ root: dir, dnaChannel: 'dna' });
  assert.deepEqual(fs.channels, ['dna', 'actin', 'mito']);
  const out = mkdtempSync(join(tmpdir(), 'qcb-out-'));
  const a = await extractCrops({ fieldSet: fs, out: join(out, 'a'), workers: 2, log: quiet, size: 64 });
  const b = await extractCrops({ fieldSet: fs, out: join(out, 'b'), workers: 0, log: quiet, size: 64 });
  assert.equal(a.fields, 6);
  assert.ok(a.crops > 40, `${a.crops} crops`);
  assert.deepEqual(
    a.skipped.map((s) => [s.field_id, s.code]),
    [
      [fs.fields[1].field_id, 'QCB_FILE_TRUNCATED'],
      [fs.fields[3].field_id, 'QCB_IMAGE_SIZE'],
    ],
  );
  const sa = await openCropStore(a.store);
  const sb = await openCropStore(b.store);
  assert.equal(sa.hash, sb.hash);
  assert.deepEqual(sa.channels, ['dna', 'actin', 'mito']);
  assert.equal(sa.size, 64);
  assert.equal(sa.meta[0].metadata.compound, 'cpd-1');
  const skippedCsv = readFileSync(join(a.store, 'skipped.csv'), 'utf8');
  assert.match(skippedCsv, /QCB_FILE_TRUNCATED/);
  assert.match(skippedCsv, /QCB_IMAGE_SIZE/);
  // Three channels differ (dna crop ≠ actin crop).
  const c0 = await sa.read(0, 1);
  assert.notDeepEqual(c0.subarray(0, 4096), c0.subarray(4096, 8192));
  await assert.rejects(
    extractCrops({ fieldSet: fs, out: join(out, 'c'), workers: 0, log: quiet, size: 64, strict: true }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FILE_TRUNCATED' && String(e.context.file).endsWith(f2),
  );
});

test('an interrupted extraction resumes after its last batch; shards merge into the same crops as one run', async () => {
  const dir = makeScreen(7);
  const fs = readCsvDataset({ root: dir, dnaChannel: 'dna' });
  const out = mkdtempSync(join(tmpdir(), 'qcb-out-'));
  const ref = await extractCrops({
    fieldSet: fs,
    out: join(out, 'ref'),
    workers: 0,
    log: quiet,
    size: 48,
    fieldMeasures: FIELD_MEASURES_MODULE,
    batchFields: 2,
  });
  const ctl = new AbortController();
  const part = await extractCrops({
    fieldSet: fs,
    out: join(out, 'r'),
    workers: 0,
    log: quiet,
    size: 48,
    fieldMeasures: FIELD_MEASURES_MODULE,
    batchFields: 2,
    signal: ctl.signal,
    onBatch: (n) => n >= 4 && ctl.abort(),
  });
  assert.equal(part.interrupted, true);
  assert.equal(part.fields, 4);
  await assert.rejects(openCropStore(join(out, 'r')), (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE');
  const rest = await extractCrops({
    fieldSet: fs,
    out: join(out, 'r'),
    workers: 0,
    log: quiet,
    size: 48,
    fieldMeasures: FIELD_MEASURES_MODULE,
    batchFields: 2,
  });
  assert.equal(rest.resumedFrom, 4);
  assert.equal(rest.crops, ref.crops);
  assert.equal((await openCropStore(join(out, 'r'))).hash, (await openCropStore(join(out, 'ref'))).hash);

  assert.deepEqual(shardRange(7, 1, 2), [0, 3]);
  assert.deepEqual(shardRange(7, 2, 2), [3, 7]);
  const s1 = await extractCrops({
    fieldSet: fs,
    out: join(out, 'sh'),
    workers: 0,
    log: quiet,
    size: 48,
    fieldMeasures: FIELD_MEASURES_MODULE,
    shard: { index: 1, count: 2 },
  });
  assert.equal(s1.merged, false);
  const s2 = await extractCrops({
    fieldSet: fs,
    out: join(out, 'sh'),
    workers: 0,
    log: quiet,
    size: 48,
    fieldMeasures: FIELD_MEASURES_MODULE,
    shard: { index: 2, count: 2 },
  });
  assert.equal(s2.merged, true);
  const merged = await openCropStore(join(out, 'sh'));
  const single = await openCropStore(join(out, 'ref'));
  assert.equal(merged.count, single.count);
  assert.deepEqual(merged.meta, single.meta);
  assert.deepEqual(await merged.read(0, merged.count), await single.read(0, single.count));
  // the field table: every field once, in field order, the same resumed, sharded or in one run
  const table = (p: string) => readFileSync(join(out, p, 'fields.csv'), 'utf8');
  assert.equal(table('ref').trim().split('\n').length, 1 + fs.fields.length);
  assert.ok(table('ref').split('\n')[0].includes('ImageQuality_PowerLogLogSlope_dna'));
  assert.equal(table('r'), table('ref'));
  assert.equal(table('sh'), table('ref'));
  assert.throws(
    () => shardRange(7, 3, 2),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE',
  );
});

test('a strict failure leaves nothing new: a store it started is removed, a resumed one goes back to its checkpoint', async () => {
  const dir = makeScreen(6);
  const fs = readCsvDataset({ root: dir, dnaChannel: 'dna' });
  const out = mkdtempSync(join(tmpdir(), 'qcb-out-'));
  const opts = { fieldSet: fs, workers: 0, log: quiet, size: 48, batchFields: 2, strict: true };
  const ref = await extractCrops({ ...opts, out: join(out, 'ref') });
  // An interrupted run: 2 of 6 fields at its checkpoint.
  const ctl = new AbortController();
  const part = await extractCrops({
    ...opts,
    out: join(out, 'r'),
    signal: ctl.signal,
    onBatch: (n) => n >= 2 && ctl.abort(),
  });
  assert.equal(part.fields, 2);
  const files = ['progress.json', 'crops.csv', 'chunks.sha256', 'zarr.json', join('crops', 'zarr.json')];
  const snapshot = () => ({
    listing: readdirSync(join(out, 'r'), { recursive: true, encoding: 'utf8' }).sort(),
    files: files.map((f) => readFileSync(join(out, 'r', f), 'utf8')),
  });
  const atCheckpoint = snapshot();
  // Field 5's DNA image is cut short: the strict runs stop there, after writing fields 3 and 4.
  const f5 = readFileSync(join(dir, 'fields.csv'), 'utf8').trim().split('\n')[5].split(',')[4];
  const whole = readFileSync(join(dir, f5));
  writeFileSync(join(dir, f5), whole.subarray(0, 5000));
  const truncated = (e: unknown) => e instanceof QcbError && e.code === 'QCB_FILE_TRUNCATED';
  await assert.rejects(extractCrops({ ...opts, out: join(out, 'r') }), truncated);
  assert.deepEqual(snapshot(), atCheckpoint);
  await assert.rejects(extractCrops({ ...opts, out: join(out, 'new', 'store') }), truncated);
  assert.deepEqual(readdirSync(out).sort(), ['r', 'ref']);
  // Repaired, the interrupted run resumes from its checkpoint to the same crops as one run.
  writeFileSync(join(dir, f5), whole);
  const rest = await extractCrops({ ...opts, out: join(out, 'r') });
  assert.equal(rest.resumedFrom, 2);
  assert.equal((await openCropStore(join(out, 'r'))).hash, (await openCropStore(join(out, 'ref'))).hash);
  assert.equal(ref.crops, rest.crops);
  assert.ok(!existsSync(join(out, 'new')));
});

test('imported centres replace segmentation; fields without centres give no crops', async () => {
  const dir = makeScreen(2);
  const fs = readCsvDataset({ root: dir, dnaChannel: 'dna' });
  const out = mkdtempSync(join(tmpdir(), 'qcb-out-'));
  const centres = new Map([
    [
      fs.fields[0].field_id,
      [
        { x: 100, y: 100, area: 0 },
        { x: 150.4, y: 120.6, area: 0 },
      ],
    ],
  ]);
  const r = await extractCrops({ fieldSet: fs, out: join(out, 's'), workers: 0, log: quiet, size: 64, centres });
  const st = await openCropStore(join(out, 's'));
  assert.equal(r.crops, 2);
  assert.deepEqual(
    st.meta.map((m) => m.crop_id),
    [
      `${fs.fields[0].plate}_${fs.fields[0].well}_s${fs.fields[0].site}_100_100`,
      `${fs.fields[0].plate}_${fs.fields[0].well}_s${fs.fields[0].site}_150_121`,
    ],
  );
});

test('the synthetic screen (BBBC021 layout) goes through the same readers and crop pipeline; ground-truth ids match', async () => {
  const { synthesizeScreen } = await import('../../src/data/synth/screen.js');
  const { readCellProfilerCentres } = await import('../../src/data/nuclei/cellprofiler.js');
  const { readDataset } = await import('../../src/data/datasets/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'qcb-synth-'));
  await synthesizeScreen({
    domain: 'mcf7',
    out: dir,
    plates: 1,
    wells: 1,
    sites: 2,
    width: 400,
    height: 320,
    workers: 1,
    seed: 3,
  });
  const fs = readDataset('bbbc021', { root: dir });
  assert.equal(fs.fields.length, 2);
  assert.equal(fs.skipped.length, 0);
  const { centres } = readCellProfilerCentres(join(dir, 'nuclei.csv'), fs.fields);
  const out = mkdtempSync(join(tmpdir(), 'qcb-out-'));
  const r = await extractCrops({ fieldSet: fs, out: join(out, 's'), workers: 0, log: quiet, size: 64, centres });
  assert.ok(r.crops > 5, `${r.crops} crops`);
  const st = await openCropStore(join(out, 's'));
  const gt = readFileSync(join(dir, 'ground_truth.csv'), 'utf8')
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((l) => l.split(',')[0]);
  const inStore = new Set(st.meta.map((m) => m.crop_id));
  const matched = gt.filter((id) => inStore.has(id)).length;
  assert.ok(matched >= 0.5 * st.count, `${matched} of ${st.count} crop ids are ground-truth ids`);
  // Segmentation instead of imported centres finds nuclei on the synthetic DNA channel too.
  const seg = await extractCrops({ fieldSet: fs, out: join(out, 'seg'), workers: 0, log: quiet, size: 64 });
  assert.ok(seg.crops > 0.5 * r.crops, `segmented ${seg.crops} vs imported ${r.crops}`);
});
