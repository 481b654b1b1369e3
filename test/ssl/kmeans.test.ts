import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn } from '../../src/engine/ir/builder.js';
import { sphericalKMeans } from '../../src/ssl/kmeans.js';

function unitRows(n: number, d: number, seed: number, centres = 0): Float32Array {
  const x = randn([n, d], 1, seed).data as Float32Array;
  if (centres > 0) {
    const c = randn([centres, d], 3, seed + 1).data as Float32Array;
    for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) x[i * d + t] += c[(i % centres) * d + t];
  }
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += x[i * d + t] ** 2;
    for (let t = 0; t < d; t++) x[i * d + t] /= Math.sqrt(s);
  }
  return x;
}

test('k-means never increases its objective', () => {
  for (const seed of [1, 2, 3]) {
    const x = unitRows(400, 8, seed);
    const r = sphericalKMeans(x, 400, 8, 12, 10, seed);
    assert.equal(r.objective.length, 11);
    for (let i = 1; i < r.objective.length; i++)
      assert.ok(r.objective[i] <= r.objective[i - 1] + 1e-6, `${r.objective}`);
    assert.ok(r.objective[10] < r.objective[0]);
    // unit-norm centroids, assignment = best dot product
    for (let j = 0; j < 12; j++) {
      let s = 0;
      for (let t = 0; t < 8; t++) s += r.centroids[j * 8 + t] ** 2;
      assert.ok(Math.abs(Math.sqrt(s) - 1) < 1e-5);
    }
  }
});

test('k-means recovers well-separated clusters', () => {
  const x = unitRows(300, 16, 7, 3);
  const r = sphericalKMeans(x, 300, 16, 3, 10, 1);
  // every true cluster maps onto one k-means cluster
  for (let c = 0; c < 3; c++) {
    const labels = new Set<number>();
    for (let i = c; i < 300; i += 3) labels.add(r.assignments[i]);
    assert.equal(labels.size, 1);
  }
});

test('k-means refuses more prototypes than embeddings', () => {
  assert.throws(
    () => sphericalKMeans(unitRows(4, 2, 1), 4, 2, 5, 1, 1),
    (e: Error & { code?: string }) => e.code === 'QCB_USAGE',
  );
});
