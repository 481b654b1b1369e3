import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOnnxEncoder } from '../../src/encoders/onnx-file.js';
import { IMAGENET_PREPROCESS } from '../../src/encoders/types.js';
import { extractFeatures, type Features } from '../../src/encoders/features.js';
import { GraphBuilder } from '../../src/engine/ir/builder.js';
import { appendCrossEntropy, appendLinearHead, linearInit } from '../../src/engine/train/head.js';
import { Trainer } from '../../src/engine/train/trainer.js';
import { headOptimizer } from '../../src/downstream/head.js';
import { LINEAR_TASK, predictLinear, trainLinear } from '../../src/downstream/linear.js';
import { accuracy } from '../../src/metrics/classification.js';
import { QcbError } from '../../src/errors.js';
import { synthCrops } from './synth-crops.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));

test('linear: one SGD step equals the hand-computed cross-entropy gradient step (PyTorch init, momentum)', async () => {
  const x: Features = { data: Float32Array.from([1, 2, -1, 0.5, 0, 1, -2, 1, 0.5]), rows: 3, cols: 3 };
  const labels = ['normal', 'abnormal', 'abnormal'];
  const lr = 0.1;
  const m = await trainLinear(x, labels, {
    seed: 4,
    settings: { epochs: 1, batch_size: 3, lr, momentum: 0.9, milestones: [] },
  });
  const { w, b, gw, gb } = headGradient(x, labels);
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(m.weight[i] - (w[i] - lr * gw[i])) < 1e-6, `weight ${i}`);
  for (let k = 0; k < 2; k++) assert.ok(Math.abs(m.bias[k] - (b[k] - lr * gb[k])) < 1e-6, `bias ${k}`);
});

test('linear: the head learns a linearly separable labelling of real encoder features', async () => {
  const { crops } = synthCrops(96, 32, 2);
  const eg = loadOnnxEncoder(join(FIX, 'vgg_small_tv.onnx'), 32);
  const f = await extractFeatures(eg, IMAGENET_PREPROCESS, crops, { threads: 1, batchSize: 32 });
  assert.equal(f.cols, 128);
  // labels from a hyperplane through the median of the features' first principal-ish direction (their mean vector)
  const mean = new Float64Array(f.cols);
  for (let i = 0; i < f.rows; i++) for (let j = 0; j < f.cols; j++) mean[j] += f.data[i * f.cols + j] / f.rows;
  const proj = Array.from({ length: f.rows }, (_, i) => {
    let s = 0;
    for (let j = 0; j < f.cols; j++) s += (f.data[i * f.cols + j] - mean[j]) * (j % 2 ? 1 : -1);
    return s;
  });
  const med = [...proj].sort((a, b) => a - b)[Math.floor(f.rows / 2)];
  const labels = proj.map((p) => (p >= med ? 'abnormal' : 'normal'));
  // standardise features (a frozen encoder's features often are), train on 64, test on 32
  const std = new Float64Array(f.cols);
  for (let i = 0; i < f.rows; i++)
    for (let j = 0; j < f.cols; j++) std[j] += (f.data[i * f.cols + j] - mean[j]) ** 2 / f.rows;
  const z = Float32Array.from(f.data, (v, k) => (v - mean[k % f.cols]) / Math.sqrt(std[k % f.cols] + 1e-12));
  const take = (a: number, b: number): Features => ({
    data: z.slice(a * f.cols, b * f.cols),
    rows: b - a,
    cols: f.cols,
  });
  const m = await trainLinear(take(0, 64), labels.slice(0, 64), { seed: 1, settings: { lr: 0.01 } });
  assert.equal(m.lossCurve.length, 150);
  assert.ok(m.lossCurve[149] < 0.5 * m.lossCurve[0], `loss ${m.lossCurve[0]} → ${m.lossCurve[149]}`);
  const trainAcc = accuracy(labels.slice(0, 64), predictLinear(m, take(0, 64)).pred);
  const p = predictLinear(m, take(64, 96));
  const testAcc = accuracy(labels.slice(64), p.pred);
  assert.ok(trainAcc >= 95, `train accuracy ${trainAcc}`);
  assert.ok(testAcc >= 80, `test accuracy ${testAcc}`);
  assert.ok(p.score.every((s) => s >= 0 && s <= 1));
  // the score orders the test set: abnormal rows score higher on average
  const avg = (l: string) =>
    p.score.filter((_, i) => labels[64 + i] === l).reduce((a, b) => a + b, 0) /
    p.score.filter((_, i) => labels[64 + i] === l).length;
  assert.ok(avg('abnormal') > avg('normal'));
});

/** The hand-computed mean cross-entropy gradient of the PyTorch-initialised head (seed 4) on three rows. */
function headGradient(x: Features, labels: string[]) {
  const { weight, bias } = linearInit(3, 2, 4);
  const w = weight.data as Float32Array;
  const b = bias.data as Float32Array;
  const gw = new Float64Array(6);
  const gb = new Float64Array(2);
  for (let i = 0; i < 3; i++) {
    const z = [0, 1].map(
      (k) => b[k] + w[k * 3] * x.data[i * 3] + w[k * 3 + 1] * x.data[i * 3 + 1] + w[k * 3 + 2] * x.data[i * 3 + 2],
    );
    const mx = Math.max(...z);
    const e = z.map((v) => Math.exp(v - mx));
    const y = labels[i] === 'abnormal' ? 1 : 0;
    for (let k = 0; k < 2; k++) {
      const d = (e[k] / (e[0] + e[1]) - (k === y ? 1 : 0)) / 3;
      gb[k] += d;
      for (let j = 0; j < 3; j++) gw[k * 3 + j] += d * x.data[i * 3 + j];
    }
  }
  return { w, b, gw, gb };
}

test('linear: tasks.linear.optimizer acts — AdamW trains the head with its own step, not SGD', async () => {
  const x: Features = { data: Float32Array.from([1, 2, -1, 0.5, 0, 1, -2, 1, 0.5]), rows: 3, cols: 3 };
  const labels = ['normal', 'abnormal', 'abnormal'];
  const lr = 0.1;
  const settings = { epochs: 1, batch_size: 3, lr, momentum: 0.9, milestones: [] };
  const sgd = await trainLinear(x, labels, { seed: 4, settings });
  const adamw = await trainLinear(x, labels, { seed: 4, settings: { ...settings, optimizer: 'adamw' } });
  assert.notDeepEqual(Array.from(adamw.weight), Array.from(sgd.weight), 'AdamW and SGD give different weights');
  // AdamW's first step (bias-corrected, weight decay 0) is p − lr·g/(|g| + ε): a step of lr against the sign of g
  const { w, gw } = headGradient(x, labels);
  for (let i = 0; i < 6; i++)
    assert.ok(Math.abs(adamw.weight[i] - (w[i] - lr * Math.sign(gw[i]))) < 1e-5, `AdamW weight ${i}`);
  // LARS is accepted and acts too
  const lars = await trainLinear(x, labels, { seed: 4, settings: { ...settings, optimizer: 'lars' } });
  assert.notDeepEqual(Array.from(lars.weight), Array.from(sgd.weight), 'LARS and SGD give different weights');
  // through the task, the optimizer is part of the settings recorded with the model
  const t = await LINEAR_TASK.train({
    eg: undefined as never,
    preprocess: { mean: [0, 0, 0], std: [1, 1, 1] },
    train: { crops: { data: new Uint8Array(0), n: 0, channels: 3, size: 1 }, labels, ids: ['a', 'b', 'c'] },
    seed: 4,
    settings: { ...settings, optimizer: 'adamw' },
    features: x,
  });
  assert.equal(t.settings.optimizer, 'adamw');
  assert.deepEqual(Array.from(t.model.weight), Array.from(adamw.weight));
});

test('linear: the head optimizer keeps its state in the training graph (AdamW moments, SGD/LARS momentum)', async () => {
  const stateOf = async (optimizer: string) => {
    const b = new GraphBuilder('probe');
    const xin = b.input('x', 'float32', ['N', 3]);
    const yin = b.input('y', 'float32', ['N', 2]);
    const { logits, params } = appendLinearHead(b, xin, 3, 2, 1);
    b.output(logits, 'logits');
    b.output(appendCrossEntropy(b, 'logits', yin), 'loss');
    const tr = await Trainer.create({
      graph: b.build(),
      loss: 'loss',
      trainable: params,
      optimizer: headOptimizer({ optimizer, momentum: 0.9, weight_decay: 0 }),
    });
    const names = tr.compiled.state.map((c) => c.name);
    await tr.session.session.release();
    return names;
  };
  const adamw = await stateOf('adamw');
  assert.ok(adamw.some((n) => n.endsWith('::exp_avg')) && adamw.some((n) => n.endsWith('::exp_avg_sq')), `${adamw}`);
  assert.ok(!adamw.some((n) => n.endsWith('::momentum')), 'AdamW has no momentum buffer: tasks.*.momentum is unused');
  assert.ok((await stateOf('sgd')).some((n) => n.endsWith('::momentum')));
  assert.ok((await stateOf('lars')).some((n) => n.endsWith('::momentum')));
});

test('linear: a head that diverges (lr 1e6) fails with QCB_DIVERGED naming the step and tasks.linear.lr', async () => {
  const rows = 64;
  const cols = 8;
  const x: Features = {
    data: Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * 10),
    rows,
    cols,
  };
  const labels = Array.from({ length: rows }, (_, i) => (i % 2 ? 'abnormal' : 'normal'));
  await assert.rejects(
    trainLinear(x, labels, { seed: 1, settings: { lr: 1e6, epochs: 5 } }),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_DIVERGED' &&
      e.exitCode === 1 &&
      /linear training diverged at epoch 1, step \d+/.test(e.message) &&
      e.context.key === 'tasks.linear.lr',
  );
});
