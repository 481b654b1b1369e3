import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalSampler } from '../../src/second-order/analytic.js';
import { denseLogits, fitQuadraticHead, predictQuadraticHead } from '../../src/second-order/head.js';
import { initDense } from '../../src/second-order/quadratic.js';

/** D-dimensional Gaussian features; `abnormal` when ‖x‖² exceeds D (a sphere: no linear boundary separates it). */
function sphere(n: number, D: number, seed: number) {
  const rn = normalSampler(seed);
  const X: number[][] = [];
  const Y: string[] = [];
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: D }, () => rn() * 3 + 10); // offset and scale: the head standardises
    const r2 = row.reduce((s, v) => s + ((v - 10) / 3) ** 2, 0);
    X.push(row);
    Y.push(r2 > D - 0.7 ? 'abnormal' : 'normal');
  }
  return { X, Y };
}

const acc = (p: string[], y: string[]) => p.filter((v, i) => v === y[i]).length / y.length;

test('quadratic head separates a spherical class boundary that its linear twin cannot (held-out data)', async () => {
  const D = 4;
  const tr = sphere(300, D, 1);
  const te = sphere(300, D, 2);
  const quad = await fitQuadraticHead(tr.X, tr.Y, { order: 2, steps: 300, seed: 3 });
  const lin = await fitQuadraticHead(tr.X, tr.Y, { order: 1, steps: 300, seed: 3 });
  const pq = predictQuadraticHead(quad, te.X);
  const pl = predictQuadraticHead(lin, te.X);
  const aq = acc(pq.pred, te.Y);
  const al = acc(pl.pred, te.Y);
  assert.ok(aq > 0.9, `quadratic head held-out accuracy ${aq}`);
  assert.ok(al < 0.75, `linear twin held-out accuracy ${al}`);
  assert.equal(quad.positiveClass, 'abnormal');
  // scores are the abnormal probability, probabilities sum to 1
  pq.proba.forEach((p, i) => {
    assert.ok(Math.abs(p[0] + p[1] - 1) < 1e-9);
    assert.equal(pq.score[i], p[quad.classes.indexOf('abnormal')]);
  });
});

test('first-order initialisation makes a quadratic layer compute exactly its inner-product part', () => {
  const L = initDense({ name: 'h', in: 3, out: 2, seed: 4, init: 'first-order' });
  const T = initDense({ name: 'h', in: 3, out: 2, seed: 4, order: 1 });
  assert.deepEqual([...L.wg], [0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...L.bg], [1, 1]);
  assert.deepEqual([...L.wb], [0, 0, 0, 0, 0, 0]);
  const x = Float64Array.from([0.5, -1, 2, 3, 0.1, -0.4]);
  const a = denseLogits(L, x, 2);
  const b = denseLogits(T, x, 2);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-12);
});

test('quadratic head rejects mismatched inputs with a usage error', async () => {
  await assert.rejects(
    fitQuadraticHead([[1, 2]], ['a', 'b']),
    (e: Error & { code?: string }) => e.code === 'QCB_USAGE',
  );
  await assert.rejects(
    fitQuadraticHead(
      [
        [1, 2],
        [3, 4],
      ],
      ['a', 'a'],
    ),
    /two or more classes/,
  );
});
