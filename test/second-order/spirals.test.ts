import assert from 'node:assert/strict';
import { test } from 'node:test';
import { twoSpirals } from '../../src/second-order/spirals.js';
import { PLANE_TASKS, trainPlane } from '../../src/second-order/train.js';

test('two spirals (Eqs. 13–20): 194 points, 97 per spiral, point-symmetric about (0.5, 0.5), three turns', () => {
  const ds = twoSpirals();
  assert.equal(ds.n, 194);
  assert.equal(
    ds.y.reduce((a, b) => a + b, 0),
    97,
  );
  // n = 1: r = 0.4, α = 0 → (0.5, 0.9) and its mirror (0.5, 0.1)
  assert.ok(Math.abs(ds.x[0] - 0.5) < 1e-12 && Math.abs(ds.x[1] - 0.9) < 1e-12);
  assert.ok(Math.abs(ds.x[2] - 0.5) < 1e-12 && Math.abs(ds.x[3] - 0.1) < 1e-12);
  for (let n = 1; n <= 97; n++) {
    const i = 2 * (n - 1);
    assert.equal(ds.y[i], 1);
    assert.equal(ds.y[i + 1], 0);
    assert.ok(Math.abs(ds.x[2 * i] + ds.x[2 * (i + 1)] - 1) < 1e-12, 'Eq. 14: x^{2n} = 1 − x^{2n−1}');
    const r = Math.hypot(ds.x[2 * i] - 0.5, ds.x[2 * i + 1] - 0.5);
    assert.ok(Math.abs(r - (0.4 * (105 - n)) / 104) < 1e-12, 'Eq. 19');
  }
  // α_97 = 6π: the spiral ends at the top after three turns, radius 0.4·8/104
  assert.ok(Math.abs(ds.x[2 * 192] - 0.5) < 1e-9 && ds.x[2 * 192 + 1] > 0.5);
  assert.deepEqual([...new Set(ds.stage)], [0, 1, 2]);
});

test('second-order 2-20-20-1 (sigmoid, gradient descent, outer-to-inner curriculum) reaches ≥ 99% training accuracy on most of 3 seeds (engine backend)', async () => {
  const cfg = PLANE_TASKS.spirals.networks[0].config;
  assert.deepEqual(cfg.sizes, [2, 20, 20, 1]);
  assert.equal(cfg.order, 2);
  const ds = twoSpirals();
  const rs = [];
  // budget 2,500 iterations here to keep the suite short; the CLI's 10-seed figures use the full budget
  for (const seed of [1, 2, 3])
    rs.push(await trainPlane(ds, { ...cfg, iterations: 2500, target: 0.99, seed, backend: 'engine' }));
  const ok = rs.filter((r) => r.accuracy >= 0.99);
  assert.ok(ok.length >= 2, rs.map((r) => `${r.accuracy.toFixed(3)}@${r.iterationsToConverge}`).join(' '));
});
