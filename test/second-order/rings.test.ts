import assert from 'node:assert/strict';
import { test } from 'node:test';
import { concentricRings } from '../../src/second-order/rings.js';
import { PLANE_TASKS, trainPlane } from '../../src/second-order/train.js';

test('rings data: four rings × 60 points, alternating classes, radii 0.1…0.4 about (0.5, 0.5)', () => {
  const ds = concentricRings();
  assert.equal(ds.n, 240);
  for (let i = 0; i < ds.n; i++) {
    const ring = Math.floor(i / 60);
    const r = Math.hypot(ds.x[2 * i] - 0.5, ds.x[2 * i + 1] - 0.5);
    assert.ok(Math.abs(r - 0.1 * (ring + 1)) < 1e-12);
    assert.equal(ds.y[i], ring % 2 === 0 ? 1 : 0);
  }
  assert.equal(
    ds.y.reduce((a, b) => a + b, 0),
    120,
  );
});

test('second-order 2-3-2-1 separates the rings perfectly on most seeds within the documented budget (analytic GD)', async () => {
  const cfg = PLANE_TASKS.rings.networks[0].config;
  assert.deepEqual(cfg.sizes, [2, 3, 2, 1]);
  const ds = concentricRings();
  const results = [];
  for (const seed of [1, 2, 3, 4, 5]) results.push(await trainPlane(ds, { ...cfg, seed, backend: 'analytic' }));
  const solved = results.filter(
    (r) => r.accuracy === 1 && r.iterationsToConverge !== null && r.iterationsToConverge <= cfg.iterations,
  );
  assert.ok(
    solved.length >= 4,
    `solved ${solved.length}/5: ${results.map((r) => `${r.accuracy}@${r.iterationsToConverge}`).join(' ')}`,
  );
  // the paper's figure of merit: within ~1,000 iterations on a typical seed
  const its = solved.map((r) => r.iterationsToConverge as number).sort((a, b) => a - b);
  assert.ok(its[Math.floor(its.length / 2)] < 2000, `median iterations ${its}`);
});

test('first-order 2-20-10-1 does not separate the rings within the budget (seed 1, engine backend)', async () => {
  const cfg = PLANE_TASKS.rings.networks[1].config;
  assert.deepEqual(cfg.sizes, [2, 20, 10, 1]);
  const r = await trainPlane(concentricRings(), { ...cfg, iterations: 2000, seed: 1, backend: 'engine' });
  assert.ok(r.accuracy < 1 && r.iterationsToConverge === null, `first-order accuracy ${r.accuracy}`);
});

test('the engine backend (one onnxruntime training step per iteration) trains the 2-3-2-1 network on the rings', async () => {
  const cfg = PLANE_TASKS.rings.networks[0].config;
  const ds = concentricRings();
  const r = await trainPlane(ds, { ...cfg, seed: 2, backend: 'engine' });
  assert.equal(r.backend, 'engine');
  assert.equal(r.accuracy, 1, `engine-trained accuracy ${r.accuracy} after ${r.iterations} iterations`);
  assert.ok(r.lossCurve[r.lossCurve.length - 1].loss < r.lossCurve[0].loss);
});
