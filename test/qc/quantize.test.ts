/**
 * int8 QC models on a small synthetic screen: `qc quantize` and `qc train --precision int8` against the fp32 model
 * (rank correlation and AUC of the scores), integer kernels in onnxruntime's optimised graph, the int8 file through
 * `qc apply` and through onnxruntime alone with identical scores, and a calibration store of another crop size
 * refused with exit 2 and nothing written.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { makeAnnotationsFromGroundTruth, writeAnnotations } from '../../src/data/annotations.js';
import { extractCrops } from '../../src/data/crops.js';
import { readDataset } from '../../src/data/datasets/index.js';
import { readCellProfilerCentres } from '../../src/data/nuclei/cellprofiler.js';
import { openCropStore } from '../../src/data/store/crop-store.js';
import { synthesizeScreen } from '../../src/data/synth/screen.js';
import { integerKernels, optimizedOpTypes } from '../../src/engine/quantize/index.js';
import { rocAuc } from '../../src/metrics/classification.js';
import { spearman } from '../../src/metrics/rank.js';
import { applyQcModel } from '../../src/qc/apply.js';
import { quantizeQcModel } from '../../src/qc/quantize.js';
import { trainQcModel } from '../../src/qc/train.js';
import { Logger } from '../../src/util/log.js';
import { qcbench } from '../cli/_cli.js';

const log = new Logger({ quiet: true });
const dir = mkdtempSync(join(tmpdir(), 'qcb-qc-int8-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const S = 64;
const root = join(dir, 'screen');
const store = join(dir, 'store');
const ann = join(dir, 'ann.csv');
const truth = new Map<string, boolean>();

async function setup(): Promise<void> {
  if (existsSync(store)) return;
  await synthesizeScreen({
    domain: 'u2os',
    out: root,
    plates: 1,
    wells: 8,
    sites: 3,
    width: 400,
    height: 320,
    workers: 1,
    seed: 3,
    cropSize: S,
    abnormalFraction: 0.35,
  });
  const fs = readDataset('bbbc022', { root });
  const { centres } = readCellProfilerCentres(join(root, 'nuclei.csv'), fs.fields);
  await extractCrops({ fieldSet: fs, out: store, workers: 0, log, size: S, centres });
  await extractCrops({ fieldSet: fs, out: join(dir, 'store48'), workers: 0, log, size: 48, centres });
  const lines = readFileSync(join(root, 'ground_truth.csv'), 'utf8').trim().split('\n');
  const head = lines[0].split(',');
  for (const l of lines.slice(1)) {
    const c = l.split(',');
    truth.set(c[head.indexOf('crop_id')], c[head.indexOf('label')] === 'abnormal');
  }
  writeAnnotations(
    ann,
    makeAnnotationsFromGroundTruth(join(root, 'ground_truth.csv'), {
      abnormal: 60,
      normal: 60,
      train: 80,
      test: 40,
      seed: 1,
    }),
  );
}

/** abnormal_score of every crop of the store with a model file, in a plain onnxruntime session. */
async function scoreAll(model: string): Promise<Float32Array> {
  const st = await openCropStore(store);
  const sess = await ort.InferenceSession.create(readFileSync(model), { intraOpNumThreads: 2 });
  const C = st.channels.length;
  const out = new Float32Array(st.count);
  for (let s = 0; s < st.count; s += 32) {
    const m = Math.min(32, st.count - s);
    const r = await sess.run({ crops: new ort.Tensor('uint8', await st.read(s, s + m), [m, C, S, S]) });
    out.set(r.abnormal_score.data as Float32Array, s);
  }
  await sess.release();
  return out;
}

test('qc quantize: int8 scores agree with fp32, integer kernels, qc apply = onnxruntime alone', async (tc) => {
  await setup();
  const fp32 = join(dir, 'qc.onnx');
  await trainQcModel({
    encoder: 'random-resnet18',
    task: 'linear',
    epochs: 30,
    annotations: ann,
    store,
    out: fp32,
    seed: 0,
    threads: 2,
    log,
  });
  const int8 = join(dir, 'qc-int8.onnx');
  const q = await quantizeQcModel({ model: fp32, store, out: int8, crops: 64, threads: 2, log });
  const meta = JSON.parse(readFileSync(join(dir, 'qc-int8.json'), 'utf8'));
  assert.equal(meta.precision, 'int8');
  assert.equal(meta.quantization.calibration.crops, 64);
  assert.equal(meta.quantization.calibration.from, 'store');
  assert.equal(meta.quantization.method, 'minmax');
  assert.equal(meta.quantization.int8_ops.Conv, 20);
  assert.equal(meta.quantization.folded_batchnorm, 20);
  // the preprocessing and the linear head stay fp32, and are named
  assert.ok(meta.quantization.fp32_ops.Cast && meta.quantization.fp32_ops.Gather, JSON.stringify(meta.quantization));
  assert.ok(meta.validation.metrics && meta.validation.fp32_metrics, 'int8 test metrics next to fp32');
  assert.deepEqual(
    meta.validation.fp32_metrics,
    JSON.parse(readFileSync(join(dir, 'qc.json'), 'utf8')).validation.metrics,
  );
  assert.equal(q.meta.model_sha256.length, 64);

  // onnxruntime's optimised graph runs integer kernels
  const ops = await optimizedOpTypes(readFileSync(int8));
  const kernels = integerKernels(ops);
  assert.equal(kernels['com.microsoft.QLinearConv'], 20, JSON.stringify(ops));
  assert.ok(kernels['com.microsoft.QLinearAdd'] >= 8, JSON.stringify(ops));
  assert.deepEqual(meta.quantization.integer_kernels, kernels);
  assert.deepEqual(integerKernels(await optimizedOpTypes(readFileSync(fp32))), {});

  // scores agree with fp32 over the whole store
  const a = await scoreAll(fp32);
  const b = await scoreAll(int8);
  const rho = spearman(a, b);
  const known = [...Array(a.length).keys()];
  const st = await openCropStore(store);
  const lab = known.map((i) => truth.get(st.meta[i].crop_id) === true);
  const aucA = rocAuc(lab, Array.from(a));
  const aucB = rocAuc(lab, Array.from(b));
  tc.diagnostic(
    `${a.length} crops: Spearman ${rho.toFixed(4)}, AUC fp32 ${aucA.toFixed(4)} int8 ${aucB.toFixed(4)}; test AUC ${meta.validation.fp32_metrics.auc.toFixed(1)} → ${meta.validation.metrics.auc.toFixed(1)}`,
  );
  assert.ok(rho >= 0.95, `Spearman ${rho}`);
  assert.ok(Math.abs(aucA - aucB) <= 0.02, `AUC fp32 ${aucA} int8 ${aucB}`);
  assert.ok(Math.abs(meta.quantization.delta.auc) <= 3, `test AUC delta ${meta.quantization.delta.auc}`);

  // qc apply with the int8 model = the file alone in onnxruntime
  const out = join(dir, 'apply-int8');
  const r = await applyQcModel({ model: int8, store, out, threads: 2, batch: 32, montage: 0, log });
  assert.equal(r.scored, st.count);
  const applied = readFileSync(join(out, 'scores.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { index: number; score: number });
  assert.equal(applied.length, st.count);
  for (const s of applied) assert.equal(s.score, b[s.index], `crop ${s.index}`);
});

test('qc train --precision int8: calibrated on training crops, int8 and fp32 test metrics in the sidecar', async () => {
  await setup();
  const model = join(dir, 'knn-int8.onnx');
  const t = await trainQcModel({
    encoder: 'random-resnet18',
    task: 'knn',
    annotations: ann,
    store,
    out: model,
    seed: 0,
    threads: 2,
    precision: 'int8',
    calibration: { crops: 48, method: 'percentile' },
    log,
  });
  assert.equal(t.meta.precision, 'int8');
  assert.equal(t.meta.quantization!.calibration.from, 'train split');
  assert.equal(t.meta.quantization!.calibration.crops, 48);
  assert.equal(t.meta.quantization!.method, 'percentile');
  assert.equal(t.meta.quantization!.percentile, 99.99);
  assert.ok(t.meta.validation.metrics && t.meta.validation.fp32_metrics);
  assert.equal(t.predictions.length, 40);
  assert.ok((t.meta.quantization!.integer_kernels['com.microsoft.QLinearConv'] ?? 0) > 0);
  // the kNN head (distances, TopK) stays fp32
  assert.ok(t.meta.quantization!.fp32_ops.TopK === undefined, 'head nodes are not in the quantised part');
  const scores = await scoreAll(model);
  const st = await openCropStore(store);
  const byId = new Map(st.meta.map((m) => [m.crop_id, m.index]));
  for (const p of t.predictions) assert.equal(p.score, scores[byId.get(p.crop_id)!], p.crop_id);
});

test('qc quantize with a store of another crop size: exit 2, nothing written', async () => {
  await setup();
  const fp32 = join(dir, 'qc.onnx');
  if (!existsSync(fp32)) {
    await trainQcModel({
      encoder: 'random-resnet18',
      task: 'knn',
      annotations: ann,
      store,
      out: fp32,
      seed: 0,
      threads: 2,
      log,
    });
  }
  const out = join(dir, 'bad-int8.onnx');
  const r = qcbench('qc', 'quantize', fp32, '--store', join(dir, 'store48'), '--out', out, '--threads', '1');
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /QCB_STORE/);
  assert.match(r.err, /48×48/);
  assert.ok(!existsSync(out) && !existsSync(join(dir, 'bad-int8.json')));
  const bad = qcbench(
    'qc',
    'train',
    '--precision',
    'int4',
    '--encoder',
    'random-resnet18',
    '--task',
    'knn',
    '--annotations',
    ann,
    '--store',
    store,
    '--out',
    out,
  );
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--precision/);
});
