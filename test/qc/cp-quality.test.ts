/**
 * A cp-quality QC model (CellProfiler's image-quality measures + the linear head or kNN, Masud et al. 2022 §3.3),
 * trained with `qc train` and applied with `qc apply` as any QC model:
 * - the exported model scores crops as the benchmark's cell does (the measures computed in TypeScript, z-scored with
 *   the training crops' statistics, the same head), so what the benchmark measured is what a lab ships;
 * - a focus model (`--artefacts blur`) trained on the synthetic screen's DNA channel scores the real BBBC006
 *   out-of-focus field (z-plane 00) above the sharper field of the same U2OS nuclei, both cut by the real crop
 *   pipeline with its default plate window;
 * - bad input: fine-tuning and int8 are n/a; an unknown or absent artefact type is a coded error.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Annotation, readAnnotations, writeAnnotations } from '../../src/data/annotations.js';
import { extractCrops } from '../../src/data/crops.js';
import { readBbbc022 } from '../../src/data/datasets/bbbc022.js';
import { readCellProfilerCentres } from '../../src/data/nuclei/cellprofiler.js';
import { openCropStore } from '../../src/data/store/crop-store.js';
import { synthesizeScreen } from '../../src/data/synth/screen.js';
import type { Field } from '../../src/data/types.js';
import { DOWNSTREAM_TASKS, runTask } from '../../src/downstream/registry.js';
import { CP_QUALITY } from '../../src/encoders/cp-quality.js';
import { pickChannels } from '../../src/encoders/features.js';
import { applyQcModel } from '../../src/qc/apply.js';
import { quantizeQcModel } from '../../src/qc/quantize.js';
import { trainQcModel } from '../../src/qc/train.js';
import { Logger } from '../../src/util/log.js';

const log = new Logger({ quiet: true });
const S = 64;
const BBBC006 = fileURLToPath(new URL('../../../shared/fixtures/bbbc/bbbc006/', import.meta.url));
const FIELDS = {
  out_of_focus: `${BBBC006}00_mcf-z-stacks-03212011_k06_s2_w12667264a-6432-4f7e-bf58-625a1319a1c9.tif`,
  sharper: `${BBBC006}BBBC006_z_aligned__a01__s1__w1_10.png`,
};
const isCode = (code: string) => (e: Error & { code?: string }) => e.code === code;

const dir = mkdtempSync(join(tmpdir(), 'qcb-qc-cpq-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Ground truth of the synthetic screen: crop id → artefact type (`none` for normal crops). */
const truth = new Map<string, string>();
let store = '';
let real = '';

before(async () => {
  const root = join(dir, 'screen');
  await synthesizeScreen({
    domain: 'u2os',
    out: root,
    wells: 16,
    sites: 2,
    width: 400,
    height: 320,
    cropSize: S,
    seed: 5,
  });
  const fs = readBbbc022({ root, channels: ['Hoechst'], dnaChannel: 'Hoechst' });
  const { centres } = readCellProfilerCentres(join(root, 'nuclei.csv'), fs.fields);
  store = join(dir, 'synth.zarr');
  await extractCrops({ fieldSet: fs, out: store, size: S, centres, workers: 0, log });
  const lines = readFileSync(join(root, 'ground_truth.csv'), 'utf8').trim().split('\n');
  const head = lines[0].split(',');
  for (const l of lines.slice(1)) {
    const c = l.split(',');
    truth.set(c[head.indexOf('crop_id')], c[head.indexOf('artefact_type')]);
  }
  // the two BBBC006 fields as one plate, one intensity window for both (as a lab's plate would have), under the
  // synthetic store's channel name so that the model takes the store
  const fields: Field[] = Object.entries(FIELDS).map(([k, file], i) => ({
    field_id: k,
    plate: 'bbbc006',
    well: 'A01',
    site: i + 1,
    channels: { Hoechst: file },
    metadata: {},
  }));
  real = join(dir, 'bbbc006.zarr');
  await extractCrops({
    fieldSet: { dataset: 'bbbc006', root: BBBC006, channels: ['Hoechst'], dnaChannel: 'Hoechst', fields, skipped: [] },
    out: real,
    size: S,
    workers: 0,
    log,
  });
});

/** Annotations of the crops of the store whose type is in `types` (`none` = normal): every fourth one test. */
async function annotate(file: string, types: string[]): Promise<void> {
  const s = await openCropStore(store);
  const rows: Annotation[] = s.meta
    .filter((m) => types.includes(truth.get(m.crop_id) ?? ''))
    .map((m, i) => {
      const t = truth.get(m.crop_id)!;
      return {
        crop_id: m.crop_id,
        label: t === 'none' ? 'normal' : 'abnormal',
        artefact_type: t,
        split: i % 4 === 3 ? 'test' : 'train',
        source: 'synthetic-ground-truth',
      };
    });
  writeAnnotations(file, rows);
}

test('a cp-quality kNN model scores crops as the benchmark cell does: measures, z-score and vote inside the ONNX', async () => {
  const ann = join(dir, 'all.csv');
  await annotate(ann, ['none', 'blur', 'debris', 'dead', 'saturation', 'haze', 'noise', 'empty']);
  const t = await trainQcModel({
    encoder: 'cp-quality',
    task: 'knn',
    annotations: ann,
    store,
    out: join(dir, 'knn.onnx'),
    threshold: 0.5,
    threads: 2,
    log,
  });
  assert.equal(t.meta.encoder.name, 'cp-quality');
  assert.match(String(t.meta.task_settings.standardised), /z-score/);
  // the same cell in the benchmark's code: TypeScript measures of the replicated DNA channel, z-scored, kNN k = 5
  const s = await openCropStore(store);
  const rows = readAnnotations(ann);
  const index = new Map(s.meta.map((m) => [m.crop_id, m.index]));
  const split = (which: string) => {
    const r = rows.filter((x) => x.split === which);
    const idx = r.map((x) => index.get(x.crop_id)!);
    return { idx, labels: r.map((x) => x.label), ids: r.map((x) => x.crop_id) };
  };
  const tr = split('train');
  const te = split('test');
  const crops = async (idx: number[]) => pickChannels(await s.readIndices(idx), idx.length, 1, S, [0, 0, 0]);
  const eg = await CP_QUALITY.load({ cropSize: S, seed: 0 });
  const cell = await runTask(DOWNSTREAM_TASKS.knn, {
    eg,
    preprocess: CP_QUALITY.preprocess,
    train: { crops: await crops(tr.idx), labels: tr.labels, ids: tr.ids },
    test: { crops: await crops(te.idx), labels: te.labels, ids: te.ids },
    seed: 0,
    settings: { k: 5 },
  });
  const model = new Map(t.predictions.map((p) => [p.crop_id, p.score]));
  let same = 0;
  te.ids.forEach((id, i) => {
    if (Math.abs(model.get(id)! - cell.score[i]) < 1e-6) same++;
  });
  // a vote can differ only where two neighbours tie in distance to rounding (float32 measures vs float64)
  assert.ok(same >= te.ids.length - 1, `${same} of ${te.ids.length} test crops scored alike`);
  assert.ok(t.meta.validation.metrics!.auc > 70, `test AUC ${t.meta.validation.metrics!.auc}`);
});

test('a cp-quality focus model (--artefacts blur) trained on the synthetic DNA channel scores BBBC006 out-of-focus crops above the sharper field’s', async () => {
  const ann = join(dir, 'focus.csv');
  await annotate(ann, ['none', 'blur', 'debris', 'dead', 'saturation', 'haze', 'noise', 'empty']);
  const model = join(dir, 'focus.onnx');
  const t = await trainQcModel({
    encoder: 'cp-quality',
    task: 'linear',
    artefacts: ['blur'],
    annotations: ann,
    store,
    out: model,
    threshold: 0.5,
    threads: 2,
    log,
  });
  assert.deepEqual(t.meta.artefacts, ['blur']);
  // int8 has nothing to speed up in hand-made measures: refused before anything is read
  await assert.rejects(
    quantizeQcModel({ model, store: real, out: join(dir, 'focus-int8.onnx') }),
    isCode('QCB_NOT_APPLICABLE'),
  );
  // every test crop is normal or blurred: the other artefacts are out of every split
  const types = new Set(t.predictions.map((p) => truth.get(p.crop_id)));
  assert.deepEqual([...types].sort(), ['blur', 'none']);
  assert.ok(t.meta.validation.metrics!.auc > 80, `synthetic test AUC ${t.meta.validation.metrics!.auc}`);

  const out = join(dir, 'bbbc006-qc');
  const r = await applyQcModel({ model, store: real, out, threads: 2, montage: 0, log });
  assert.ok(r.complete);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.deepEqual(summary.artefacts, ['blur']);
  assert.match(readFileSync(join(out, 'fields.html'), 'utf8'), /cp-quality \/ linear.*abnormal means <b>blur<\/b> only/);
  const lines = readFileSync(join(out, 'scores.csv'), 'utf8').trim().split('\n');
  const head = lines[0].split(',');
  const byField: Record<string, number[]> = { out_of_focus: [], sharper: [] };
  for (const l of lines.slice(1)) {
    const c = l.split(',');
    byField[c[head.indexOf('field_id')]].push(Number(c[head.indexOf('score')]));
  }
  const { out_of_focus: blurred, sharper: sharp } = byField;
  assert.ok(blurred.length >= 5 && sharp.length >= 5, `${blurred.length} and ${sharp.length} crops`);
  let wins = 0;
  for (const a of blurred) for (const b of sharp) wins += a > b ? 1 : a === b ? 0.5 : 0;
  const auc = wins / (blurred.length * sharp.length);
  const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
  assert.ok(
    mean(blurred) > mean(sharp) && auc > 0.8,
    `out-of-focus ${mean(blurred).toFixed(3)} (${blurred.length} crops) vs sharper ${mean(sharp).toFixed(3)} (${sharp.length}); rank AUC ${auc.toFixed(3)}`,
  );
});

test('cp-quality QC models: fine-tuning and int8 are n/a, an unknown or absent artefact type is a coded error', async () => {
  const ann = join(dir, 'normal-blur.csv');
  await annotate(ann, ['none', 'blur']);
  const base = { encoder: 'cp-quality', annotations: ann, store, threshold: 0.5, threads: 2, log };
  for (const bad of [{ task: 'finetune' }, { task: 'linear', precision: 'int8' as const }])
    await assert.rejects(trainQcModel({ ...base, ...bad, out: join(dir, 'n-a.onnx') }), isCode('QCB_NOT_APPLICABLE'));
  assert.ok(!existsSync(join(dir, 'n-a.onnx')), 'nothing written');
  await assert.rejects(
    trainQcModel({ ...base, task: 'linear', artefacts: ['blurr'], out: join(dir, 'x.onnx') }),
    (e: Error & { code?: string }) => e.code === 'QCB_USAGE' && /did you mean 'blur'/.test(e.message),
  );
  await assert.rejects(
    trainQcModel({ ...base, task: 'linear', artefacts: ['debris'], out: join(dir, 'y.onnx') }),
    isCode('QCB_ANNOTATIONS'),
  );
});
