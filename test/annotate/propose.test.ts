import assert from 'node:assert/strict';
import { test } from 'node:test';
import { intensityFeatures, INTENSITY_FEATURES } from '../../src/annotate/intensity.js';
import {
  type BinaryLabel,
  diverseSample,
  kmeans,
  knnCertainty,
  Proposer,
  standardize,
} from '../../src/annotate/propose.js';
import type { Features } from '../../src/encoders/features.js';
import { Rng } from '../../src/util/random.js';
import { synthCrops } from '../downstream/synth-crops.js';

/** Gaussian blobs in 2-D: `sizes[g]` points around (10g, 5g²), sd 0.5. Row order is shuffled. */
function blobs(sizes: number[], seed = 1): { f: Features; group: number[] } {
  const rng = new Rng(seed);
  const pts: { x: number; y: number; g: number }[] = [];
  sizes.forEach((n, g) => {
    for (let i = 0; i < n; i++) pts.push({ x: 10 * g + rng.normal(0, 0.5), y: 5 * g * g + rng.normal(0, 0.5), g });
  });
  rng.shuffle(pts);
  return {
    f: { data: Float32Array.from(pts.flatMap((p) => [p.x, p.y])), rows: pts.length, cols: 2 },
    group: pts.map((p) => p.g),
  };
}

test('standardize gives zero mean, unit spread, and zeros for a constant column', () => {
  const s = standardize({ data: Float32Array.from([1, 7, 3, 7, 5, 7]), rows: 3, cols: 2 });
  assert.deepEqual(
    Array.from(s.data, (v) => Math.round(v * 1000) / 1000),
    [-1.225, 0, 0, 0, 1.225, 0],
  );
});

test('k-means++ finds well-separated groups (each cluster one group), deterministically by seed', () => {
  const { f, group } = blobs([50, 50, 50]);
  const a = kmeans(standardize(f), 3, 20, 7);
  const b = kmeans(standardize(f), 3, 20, 7);
  assert.deepEqual(a.assignments, b.assignments);
  const byCluster = new Map<number, Set<number>>();
  group.forEach((g, i) => {
    const s = byCluster.get(a.assignments[i]) ?? new Set();
    s.add(g);
    byCluster.set(a.assignments[i], s);
  });
  assert.equal(byCluster.size, 3);
  for (const s of byCluster.values()) assert.equal(s.size, 1);
});

test('the diverse sample has one crop per cluster and puts a rare group first', () => {
  // 300 common points in two groups and 4 rare far-away ones: the rare group must be the first proposal
  const { f, group } = blobs([150, 150, 4], 3);
  const x = standardize(f);
  const d = diverseSample(x, 6, 1);
  assert.equal(d.length, 6);
  assert.equal(new Set(d).size, 6);
  assert.equal(group[d[0]], 2, 'the smallest cluster (the rare group) comes first');
  assert.deepEqual(new Set(d.map((i) => group[i])), new Set([0, 1, 2]), 'every group is sampled');
});

test('kNN certainty: a crop among one class is sure, one halfway between the classes is not', () => {
  const x: Features = { data: Float32Array.from([0, 0, 0.2, 0, 10, 0, 10.2, 0, 0.1, 0, 5.1, 0]), rows: 6, cols: 2 };
  const labels: BinaryLabel[] = ['normal', 'normal', 'abnormal', 'abnormal'];
  const c = knnCertainty(x, [0, 1, 2, 3], labels, [4, 5], 4);
  assert.equal(c[0].index, 4);
  assert.ok(c[0].pAbnormal < 0.1 && c[0].margin > 0.8, JSON.stringify(c[0]));
  assert.ok(c[1].margin < 0.1, JSON.stringify(c[1]));
  assert.ok(c[1].nearest > c[0].nearest);
});

test('the proposer: diverse sample first, then the least certain, then the class still short', () => {
  const { f, group } = blobs([60, 60, 3], 5);
  const p = new Proposer(f, { clusters: 5, seed: 2, targets: { normal: 3, abnormal: 100 } });
  const labels = new Map<number, BinaryLabel>();
  const first = p.next(5, labels);
  assert.deepEqual(first, p.diverse);
  // the annotator: groups 1 and 2 are abnormal
  for (const i of first) labels.set(i, group[i] === 0 ? 'normal' : 'abnormal');
  const exclude = new Set<number>([0]);
  const next = p.next(10, labels, exclude);
  assert.equal(next.length, 10);
  for (const i of next) assert.ok(!labels.has(i) && !exclude.has(i));
  // label enough normal crops to reach the normal target: the proposals turn to likely-abnormal crops
  for (let i = 0; i < f.rows && [...labels.values()].filter((l) => l === 'normal').length < 3; i++)
    if (group[i] === 0) labels.set(i, 'normal');
  const wantAbnormal = p.next(20, labels);
  assert.ok(
    wantAbnormal.every((i) => group[i] !== 0),
    'with the normal target met, the likely-abnormal crops come first',
  );
  // every crop labelled: nothing left to propose
  const all = new Map<number, BinaryLabel>(group.map((g, i) => [i, g === 0 ? 'normal' : 'abnormal']));
  assert.deepEqual(p.next(5, all), []);
});

test('intensity features separate real synthetic abnormal crops from normal ones better than chance', () => {
  const d = synthCrops(80, 64, 4);
  const f = intensityFeatures(d.crops);
  assert.equal(f.cols, INTENSITY_FEATURES.length * 3);
  assert.ok(f.data.every(Number.isFinite));
  // leave-one-out kNN on the standardised features
  const x = standardize(f);
  const rows = Array.from({ length: x.rows }, (_, i) => i);
  let right = 0;
  for (const i of rows) {
    const others = rows.filter((j) => j !== i);
    const [c] = knnCertainty(
      x,
      others,
      others.map((j) => d.labels[j] as BinaryLabel),
      [i],
      5,
    );
    if ((c.pAbnormal >= 0.5 ? 'abnormal' : 'normal') === d.labels[i]) right++;
  }
  assert.ok(right / x.rows > 0.6, `leave-one-out accuracy ${right}/${x.rows}`);
});

test('on a large store the diverse sample clusters an even subsample and names rows of the whole store', () => {
  const { f, group } = blobs([200, 200, 200], 9);
  const p = new Proposer(f, { clusters: 3, seed: 1, maxClustered: 60 });
  assert.equal(p.diverse.length, 3);
  assert.ok(p.diverse.every((i) => Number.isInteger(i) && i >= 0 && i < f.rows));
  assert.deepEqual(new Set(p.diverse.map((i) => group[i])), new Set([0, 1, 2]), 'one crop of each group');
});
