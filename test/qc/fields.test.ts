/**
 * Every field of a screen in `qc apply`: a synthetic plate with one empty field (no nuclei), one dark, one
 * saturated, one blurred and one unreadable field; all appear in fields.csv with their reasons, the wells and the
 * field map summarise them. And the calibrated threshold of `qc train --max-fpr`: validation FPR within the budget,
 * the operating point in the sidecar, bad budgets refused (exit 2), an old sidecar falls back to 0.5.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { command as trainCmd } from '../../src/cli/qc-train.js';
import { makeAnnotationsFromGroundTruth, writeAnnotations } from '../../src/data/annotations.js';
import { extractCrops } from '../../src/data/crops.js';
import { readDataset } from '../../src/data/datasets/index.js';
import { readImage } from '../../src/data/io/image.js';
import { encodeTiff16 } from '../../src/data/io/tiff.js';
import { readCellProfilerCentres } from '../../src/data/nuclei/cellprofiler.js';
import { readFieldTable } from '../../src/data/store/field-table.js';
import { gaussianBlur } from '../../src/data/synth/noise.js';
import { synthesizeScreen } from '../../src/data/synth/screen.js';
import { QcbError } from '../../src/errors.js';
import { FIELD_MEASURES_MODULE } from '../../src/metrics/field-quality.js';
import { applyQcModel } from '../../src/qc/apply.js';
import { trainQcModel } from '../../src/qc/train.js';
import { chooseThreshold, minNormalsFor, splitRates } from '../../src/qc/calibrate.js';
import { Logger } from '../../src/util/log.js';
import { assertSameRows } from './_tables.js';

const VGG = fileURLToPath(new URL('../../../shared/fixtures/onnx/vgg_small_tv.onnx', import.meta.url));
const log = new Logger({ quiet: true });
const ctx = { log };
const dir = mkdtempSync(join(tmpdir(), 'qcb-fields-'));
const S = 32;

/** Rewrites every channel image of a field through `f` (16-bit values in, 16-bit values out). */
async function edit(paths: string[], f: (v: Float32Array, w: number, h: number) => void): Promise<void> {
  for (const p of paths) {
    const img = await readImage(p);
    const v = Float32Array.from(img.data);
    f(v, img.width, img.height);
    const out = Uint16Array.from(v, (x) => Math.max(0, Math.min(65535, Math.round(x))));
    writeFileSync(p, encodeTiff16(img.width, img.height, out));
  }
}

const screen = join(dir, 'screen');
const store = join(dir, 'store');
const ann = join(dir, 'ann.csv');
const special = { empty: '', dark: '', saturated: '', blurred: '', unreadable: '' };
const ready = (async () => {
  await synthesizeScreen({
    domain: 'u2os',
    out: screen,
    plates: 1,
    wells: 10,
    sites: 2,
    width: 320,
    height: 256,
    workers: 1,
    seed: 5,
    cropSize: S,
    abnormalFraction: 0.35,
  });
  const fs = readDataset('bbbc022', { root: screen });
  const { centres } = readCellProfilerCentres(join(screen, 'nuclei.csv'), fs.fields);
  const [empty, dark, saturated, blurred, unreadable] = [1, 4, 7, 10, 13].map((i) => fs.fields[i]);
  Object.assign(special, {
    empty: empty.field_id,
    dark: dark.field_id,
    saturated: saturated.field_id,
    blurred: blurred.field_id,
    unreadable: unreadable.field_id,
  });
  const files = (f: (typeof fs.fields)[number]) => fs.channels.map((c) => f.channels[c]);
  // empty: background only (its 5th percentile, flat) and, as a segmenter would find, no nuclei
  await edit(files(empty), (v) => {
    const bg = Float32Array.from(v).sort()[Math.floor(v.length * 0.05)];
    for (let i = 0; i < v.length; i++) v[i] = bg + ((i * 7919) % 5);
  });
  centres.set(empty.field_id, []);
  await edit(files(dark), (v) => {
    for (let i = 0; i < v.length; i++) v[i] *= 0.08;
  });
  await edit(files(saturated), (v, w) => {
    for (let i = 0; i < v.length; i++) if (i % w < w / 3) v[i] = 65535; // a third of the field clipped
  });
  await edit(files(blurred), (v, w, h) => gaussianBlur(v, w, h, 6));
  writeFileSync(unreadable.channels[fs.channels[0]], 'not a TIFF');
  await extractCrops({
    fieldSet: fs,
    out: store,
    workers: 2,
    size: S,
    centres,
    fieldMeasures: FIELD_MEASURES_MODULE,
    log,
  });
  writeAnnotations(
    ann,
    makeAnnotationsFromGroundTruth(join(screen, 'ground_truth.csv'), {
      abnormal: 60,
      normal: 60,
      train: 100,
      test: 20,
      seed: 1,
    }).filter((a) => !Object.values(special).some((id) => a.crop_id.startsWith(`${id}_`))),
  );
  return fs;
})();

const train = (extra: string[], out: string) =>
  trainCmd.run(
    [
      '--encoder',
      VGG,
      '--task',
      'knn',
      '--k',
      '5',
      '--annotations',
      ann,
      '--store',
      store,
      '--out',
      out,
      '--threads',
      '2',
      ...extra,
    ],
    ctx,
  );

const badInput = (e: unknown, code: string) => e instanceof QcbError && e.code === code && e.exitCode === 2;

test('the store records every field: ok, no_nuclei, unreadable, with measures', async () => {
  const fs = await ready;
  const t = readFieldTable(store);
  assert.ok(t, 'fields.csv in the store');
  assert.equal(t.fields.length, fs.fields.length, 'one row per field given');
  const by = new Map(t.fields.map((f) => [f.field_id, f]));
  assert.equal(by.get(special.empty)?.status, 'no_nuclei');
  assert.equal(by.get(special.empty)?.crops, 0);
  assert.equal(by.get(special.unreadable)?.status, 'unreadable');
  assert.ok(by.get(special.unreadable)?.code.startsWith('QCB_'), by.get(special.unreadable)?.code);
  assert.equal(by.get(special.dark)?.status, 'ok');
  assert.ok(t.columns.includes('ImageQuality_PowerLogLogSlope_Hoechst'), t.columns.join());
  assert.ok(t.columns.includes('ImageQuality_PercentMaximal_Mito'));
  const dark = by.get(special.dark)!.measures.ImageQuality_MeanIntensity_Hoechst;
  const normal = by.get(fs.fields[0].field_id)!.measures.ImageQuality_MeanIntensity_Hoechst;
  assert.ok(dark < 0.2 * normal, `dark field mean ${dark} vs ${normal}`);
  assert.deepEqual(by.get(special.unreadable)!.measures, {});
});

test('qc apply: every field has a row, the bad ones flagged with their reasons; wells and the field map follow', async () => {
  const fs = await ready;
  const model = join(dir, 'knn.onnx');
  const t = await trainQcModel({ encoder: VGG, task: 'knn', annotations: ann, store, out: model, threads: 2, log });
  assert.equal(t.meta.operating_point?.source, 'default', 'too few normals for the default budget: 0.5');
  const out = join(dir, 'apply');
  const r = await applyQcModel({ model, store, out, threads: 2, montage: 0, log });
  assert.ok(r.complete);
  const rows = readFileSync(join(out, 'fields.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(rows.length, fs.fields.length, 'every field of the screen');
  assert.equal(readFileSync(join(out, 'fields.csv'), 'utf8').trim().split('\n').length, fs.fields.length + 1);
  assertSameRows(join(out, 'fields.csv'), join(out, 'fields.jsonl'), ['site', 'n', 'abnormal']);
  const by = new Map(rows.map((f) => [f.field_id as string, f]));
  const reasons = (id: string) => String(by.get(id)?.reasons).split(';');
  const expect: [string, string][] = [
    [special.empty, 'no_nuclei'],
    [special.dark, 'dark'],
    [special.saturated, 'saturated'],
    [special.blurred, 'focus_low'],
    [special.unreadable, 'unreadable'],
  ];
  for (const [id, why] of expect) {
    assert.equal(by.get(id)?.verdict, 'flagged', `${id}: ${JSON.stringify(by.get(id))}`);
    assert.ok(reasons(id).includes(why), `${id} flagged for ${why}: ${by.get(id)?.reasons} (${by.get(id)?.details})`);
    assert.ok(String(by.get(id)?.details).length > 0, `${id}: details say why`);
  }
  assert.equal(by.get(special.empty)?.n, 0);
  assert.equal(by.get(special.empty)?.fraction, null);
  assert.equal(by.get(special.unreadable)?.status, 'unreadable');
  // ordinary fields pass the measure ranges (the abnormal-crop fraction depends on the model: left out here)
  const others = rows.filter((f) => !Object.values(special).includes(f.field_id as string));
  const byMeasure = others.filter((f) => String(f.reasons).replace('abnormal_crops', '').replace(';', '') !== '');
  assert.ok(
    byMeasure.length <= others.length / 4,
    `${byMeasure.length} of ${others.length} ordinary fields flagged: ${byMeasure.map((f) => `${f.field_id} ${f.reasons}`)}`,
  );
  // wells summarise their fields
  const wells = readFileSync(join(out, 'wells.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(wells.length, 10);
  const emptyWell = wells.find((w) => w.well === by.get(special.empty)?.well)!;
  assert.equal(emptyWell.fields, 2);
  assert.ok(String(emptyWell.reasons).includes('no_nuclei'));
  assert.ok((emptyWell.fields_flagged as number) >= 1);
  // the maps: one cell per field, flagged ones carry their reasons
  for (const f of ['plate-map.vl.json', 'plate-map.png', 'field-map.vl.json', 'field-map.svg', 'field-map.png'])
    assert.ok(existsSync(join(out, f)), f);
  const fm = JSON.parse(readFileSync(join(out, 'field-map.vl.json'), 'utf8'));
  assert.equal(fm.data.values.length, fs.fields.length);
  const cell = fm.data.values.find((v: { field_id: string }) => v.field_id === special.saturated);
  assert.ok(cell.flagged && cell.reasons.includes('saturated'));
  const html = readFileSync(join(out, 'fields.html'), 'utf8');
  for (const [id, why] of expect) assert.ok(html.includes(id) && html.includes(why), `fields.html shows ${id}: ${why}`);
  assert.ok(html.includes('field-map.svg'));
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.fields, fs.fields.length);
  assert.ok(summary.field_reasons.no_nuclei >= 1 && summary.field_reasons.unreadable >= 1);
});

test('calibrated threshold: chooseThreshold keeps FPR within the budget', () => {
  const normals = Array.from({ length: 40 }, (_, i) => i / 40);
  for (const f of [0.05, 0.1, 0.25]) {
    const t = chooseThreshold(normals, f);
    const r = splitRates(
      normals,
      normals.map(() => 'normal'),
      t,
    );
    assert.ok(r.fpr! <= f, `FPR ${r.fpr} at budget ${f}`);
    assert.ok(
      splitRates(
        normals,
        normals.map(() => 'normal'),
        t - 1e-6,
      ).fpr! > f,
      'the lowest such threshold',
    );
  }
  assert.equal(minNormalsFor(0.05), 20);
  assert.equal(minNormalsFor(0.3), 4);
});

test('qc train --max-fpr: operating point in the sidecar, validation FPR ≤ F; qc apply uses it', async () => {
  await ready;
  const model = join(dir, 'cal.onnx');
  const t = await trainQcModel({
    encoder: VGG,
    task: 'knn',
    annotations: ann,
    store,
    out: model,
    maxFpr: 0.125,
    threads: 2,
    log,
  });
  assert.equal(t.meta.operating_point?.max_fpr, 0.125);
  const side = JSON.parse(readFileSync(join(dir, 'cal.json'), 'utf8'));
  const op = side.operating_point;
  assert.equal(op.source, 'calibrated');
  assert.equal(op.max_fpr, 0.125);
  assert.equal(side.threshold, op.threshold);
  assert.ok(op.validation.normal >= 8, `${op.validation.normal} normal validation crops`);
  assert.ok(op.validation.fpr <= 0.125, `validation FPR ${op.validation.fpr}`);
  assert.equal(op.test.n, side.validation.n_test);
  assert.equal(typeof op.test.fpr, 'number');
  assert.equal(typeof op.test.recall, 'number');
  const nTrain = readFileSync(ann, 'utf8')
    .split('\n')
    .filter((l) => /,train,/.test(l)).length;
  assert.equal(side.validation.n_train + side.validation.n_val, nTrain);
  const out = join(dir, 'apply-cal');
  await applyQcModel({ model, store, out, threads: 2, montage: 0, log });
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.threshold, op.threshold);
  assert.match(summary.threshold_source, /calibrated/);
  // --threshold overrides the calibration
  await applyQcModel({ model, store, out: join(dir, 'apply-t'), threshold: 0.9, threads: 2, montage: 0, log });
  assert.equal(JSON.parse(readFileSync(join(dir, 'apply-t', 'summary.json'), 'utf8')).threshold, 0.9);
  // a sidecar from before calibration (no operating point, no threshold): 0.5
  const old = { ...side };
  delete old.operating_point;
  delete old.threshold;
  writeFileSync(join(dir, 'cal.json'), JSON.stringify(old));
  await applyQcModel({ model, store, out: join(dir, 'apply-old'), threads: 2, montage: 0, log });
  const s2 = JSON.parse(readFileSync(join(dir, 'apply-old', 'summary.json'), 'utf8'));
  assert.equal(s2.threshold, 0.5);
  assert.match(s2.threshold_source, /before calibrated thresholds/);
});

test('bad --max-fpr, or a validation split too small for it, is a coded error (exit 2) before any output', async () => {
  await ready;
  const out = join(dir, 'never.onnx');
  for (const f of ['0', '1', '1.5', '-0.1', 'abc'])
    await assert.rejects(train(['--max-fpr', f], out), (e) => badInput(e, 'QCB_USAGE'), f);
  // 20 normal validation crops at most here: a budget of 0.01 needs 100
  await assert.rejects(train(['--max-fpr', '0.01'], out), (e) => badInput(e, 'QCB_ANNOTATIONS'));
  assert.equal(existsSync(out), false);
});
