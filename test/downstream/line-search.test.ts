import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DOWNSTREAM_TASKS, runTask } from '../../src/downstream/registry.js';
import { lineSearch, stratifiedSplit } from '../../src/downstream/line-search.js';
import type { Features } from '../../src/encoders/features.js';
import { QcbError } from '../../src/errors.js';
import { randn } from '../../src/engine/ir/builder.js';

test('line search: the validation split is carved from the training set only, stratified, and disjoint', async () => {
  const labels = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? 'abnormal' : 'normal'));
  const seen: { fit: number[]; val: number[]; lr: number }[] = [];
  const r = await lineSearch({
    labels,
    grid: [0.01, 0.001, 0.0001],
    valFraction: 0.2,
    seed: 3,
    evaluate: async (fit, val, lr) => {
      seen.push({ fit, val, lr });
      // a fake model that is right on validation only for lr 0.001
      return val.map((i) => (lr === 0.001 ? labels[i] : 'normal'));
    },
  });
  assert.equal(r.best, 0.001);
  assert.deepEqual(
    r.scores.map((s) => s.value),
    [0.01, 0.001, 0.0001],
  );
  assert.equal(seen.length, 3);
  for (const s of seen) {
    const all = [...s.fit, ...s.val];
    assert.ok(
      all.every((i) => Number.isInteger(i) && i >= 0 && i < labels.length),
      'only training rows',
    );
    assert.equal(new Set(all).size, labels.length, 'fit ∪ val = training set, disjoint');
    assert.equal(s.val.filter((i) => labels[i] === 'abnormal').length, 2); // ⌈0.2·10⌉
    assert.equal(s.val.filter((i) => labels[i] === 'normal').length, 4); // ⌈0.2·20⌉
  }
  assert.deepEqual(stratifiedSplit(labels, 0.2, 3), stratifiedSplit(labels, 0.2, 3));
  assert.notDeepEqual(stratifiedSplit(labels, 0.2, 3).val, stratifiedSplit(labels, 0.2, 4).val);
  await assert.rejects(
    lineSearch({ labels: ['normal', 'abnormal'], grid: [0.1], seed: 0, evaluate: async () => [] }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ANNOTATIONS',
  );
});

test('line search in the linear task: test features are never read while choosing the learning rate', async () => {
  const D = 8;
  const n = 40;
  const x = randn([n, D], 1, 5).data as Float32Array;
  const labels = Array.from({ length: n }, (_, i) => (x[i * D] + 0.5 * x[i * D + 1] > 0 ? 'abnormal' : 'normal'));
  const train: Features = { data: x, rows: n, cols: D };
  // test features full of NaN: any use of them in the search would poison the choice / throw in the head
  const testData = new Float32Array(10 * D).fill(Number.NaN);
  const reads: string[] = [];
  const spy = (name: string, f: Features): Features => ({
    get data() {
      reads.push(name);
      return f.data;
    },
    rows: f.rows,
    cols: f.cols,
  });
  const out = await runTask(DOWNSTREAM_TASKS.linear, {
    eg: undefined as never,
    preprocess: { mean: [0, 0, 0], std: [1, 1, 1] },
    train: { crops: { data: new Uint8Array(0), n, channels: 3, size: 1 }, labels, ids: labels.map((_, i) => `t${i}`) },
    test: {
      crops: { data: new Uint8Array(0), n: 10, channels: 3, size: 1 },
      labels: Array(10).fill('normal'),
      ids: [],
    },
    seed: 1,
    settings: { epochs: 20 },
    lineSearch: { enabled: true, val_fraction: 0.25, lr: [0.1, 0.01] },
    features: { train, test: spy('test', { data: testData, rows: 10, cols: D }) },
    threads: 1,
  });
  assert.ok(out.lineSearch);
  assert.equal(
    out.lineSearch.valRows.length,
    Math.ceil(0.25 * labels.filter((l) => l === 'abnormal').length) +
      Math.ceil(0.25 * labels.filter((l) => l === 'normal').length),
  );
  assert.ok(out.lineSearch.valRows.every((i) => i < n));
  assert.equal(out.settings.lr, out.lineSearch.best);
  // the test features were read exactly once: by the final prediction, after the search
  assert.equal(reads.length, 1);
  assert.equal(out.pred.length, 10);
});

test('line search: a grid value whose training diverges loses the search; only all diverging fails the cell', async () => {
  const labels = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 'abnormal' : 'normal'));
  const diverge = (lr: number) =>
    new QcbError('QCB_DIVERGED', `linear training diverged at lr ${lr}`, { key: 'tasks.linear.lr' });
  const r = await lineSearch({
    labels,
    grid: [1e6, 0.001],
    seed: 0,
    evaluate: async (_fit, val, lr) => {
      if (lr > 1) throw diverge(lr);
      return val.map(() => 'normal');
    },
  });
  assert.equal(r.best, 0.001);
  assert.equal(r.scores[0].diverged, 'QCB_DIVERGED');
  assert.ok(Number.isNaN(r.scores[0].f1));
  assert.ok(Number.isFinite(r.scores[1].f1) && r.scores[1].diverged === undefined);
  await assert.rejects(
    lineSearch({
      labels,
      grid: [1e6, 1e7],
      seed: 0,
      evaluate: async (_f, _v, lr) => {
        throw diverge(lr);
      },
    }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_DIVERGED',
  );
  // any other failure is not a lost candidate: it propagates
  await assert.rejects(
    lineSearch({
      labels,
      grid: [0.1, 0.01],
      seed: 0,
      evaluate: async () => {
        throw new QcbError('QCB_FEED', 'bad feed');
      },
    }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FEED',
  );
});
