import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn } from '../../src/engine/ir/builder.js';
import { getMethod, resolveHyper, SSL_METHODS } from '../../src/ssl/registry.js';
import { DC_ASSIGN, DC_CENTROIDS } from '../../src/ssl/deepcluster-v2.js';
import { SWAV_QUEUE, SWAV_QUEUE_WEIGHT } from '../../src/ssl/swav.js';
import { CATALOG } from '../../src/runner/catalog.js';
import { descend, evalLoss } from './_util.js';

const N = 8;
const D = 16;

test('registry: every method is in the catalogue with its own defaults, each with a source; did-you-mean', () => {
  assert.deepEqual(Object.keys(CATALOG.sslMethods), Object.keys(SSL_METHODS));
  for (const [name, m] of Object.entries(SSL_METHODS)) {
    assert.equal(m.name, name);
    assert.equal(getMethod(name), m);
    assert.deepEqual(CATALOG.sslMethods[name], m.defaults);
    assert.equal(CATALOG.encoders[name].kind, 'ssl');
    assert.equal(CATALOG.encoders[name].label, m.label);
    for (const k of Object.keys(m.defaults)) assert.ok(m.sources[k], `${name}.${k} has a source`);
  }
  assert.equal(getMethod('simclr').defaults.temperature, 0.07);
  assert.throws(
    () => getMethod('simclrr'),
    (e: Error & { code?: string }) => e.code === 'QCB_UNKNOWN_NAME' && /simclr/.test(e.message + JSON.stringify(e)),
  );
  assert.throws(
    () => resolveHyper(getMethod('swav'), { queue: 3 }),
    (e: Error & { code?: string }) => e.code === 'QCB_USAGE',
  );
});

/** Plain-JS NT-Xent (solo-learn simclr_loss_func) for a check of the graph's value. */
function ntXentRef(z1: Float32Array, z2: Float32Array, n: number, d: number, tau: number): number {
  const z: number[][] = [];
  for (const src of [z1, z2])
    for (let i = 0; i < n; i++) {
      const r = Array.from(src.subarray(i * d, i * d + d));
      const norm = Math.hypot(...r);
      z.push(r.map((v) => v / norm));
    }
  let loss = 0;
  for (let i = 0; i < 2 * n; i++) {
    let denom = 0;
    let pos = 0;
    for (let j = 0; j < 2 * n; j++) {
      if (j === i) continue;
      const s = Math.exp(z[i].reduce((a, v, t) => a + v * z[j][t], 0) / tau);
      denom += s;
      if (j === (i + n) % (2 * n)) pos = s;
    }
    loss -= Math.log(pos / denom);
  }
  return loss / (2 * n);
}

test('SimCLR: NT-Xent value matches the reference and is symmetric in the two views', async () => {
  const m = getMethod('simclr');
  const hp = resolveHyper(m);
  const z1 = randn([N, D], 1, 3).data as Float32Array;
  const z2 = randn([N, D], 1, 4).data as Float32Array;
  const a = await evalLoss(m, hp, N, D, z1, z2);
  const b = await evalLoss(m, hp, N, D, z2, z1);
  const ref = ntXentRef(z1, z2, N, D, 0.07);
  assert.ok(Math.abs(a - ref) < 1e-4 * Math.abs(ref), `${a} vs ${ref}`);
  assert.ok(Math.abs(a - b) < 1e-5 * Math.abs(a), `symmetric: ${a} vs ${b}`);
  // identical views of well-separated images: the positive dominates → loss near 0
  const eye = new Float32Array(N * D);
  for (let i = 0; i < N; i++) eye[i * D + i] = 1;
  assert.ok((await evalLoss(m, hp, N, D, eye, eye)) < 1e-3);
});

test('Barlow Twins: 0 at the identity cross-correlation, scale·D at zero correlation', async () => {
  const m = getMethod('barlow_twins');
  const hp = resolveHyper(m);
  // 4 images, 2 dims: columns of mean 0, variance 1, uncorrelated → C = I (up to BN's ε)
  const z = Float32Array.from([1, 1, 1, -1, -1, 1, -1, -1]);
  assert.ok((await evalLoss(m, hp, 4, 2, z, z)) < 1e-8);
  // swapping the columns of one view: C = [[0,1],[1,0]] → scale·(2·1 + λ·2)
  const zs = Float32Array.from([1, 1, -1, 1, 1, -1, -1, -1]);
  const v = await evalLoss(m, hp, 4, 2, z, zs);
  const expect = 0.024 * (2 + 0.0051 * 2);
  assert.ok(Math.abs(v - expect) < 1e-5, `${v} vs ${expect}`);
});

test('VICReg: terms at known points', async () => {
  const m = getMethod('vicreg');
  const hp = resolveHyper(m);
  const z = Float32Array.from([1, 1, 1, -1, -1, 1, -1, -1]); // unbiased std √(4/3) > 1, uncorrelated
  assert.ok(Math.abs(await evalLoss(m, hp, 4, 2, z, z)) < 1e-6);
  // collapsed views: variance hinge 2·(1 − √1e-4) = 1.98 → 25·1.98
  const zero = new Float32Array(8);
  assert.ok(Math.abs((await evalLoss(m, hp, 4, 2, zero, zero)) - 49.5) < 1e-3);
  // shifted view: invariance mean((z1 − z2)²) = 1 → 25
  const shifted = z.map((v) => v + 1);
  assert.ok(Math.abs((await evalLoss(m, hp, 4, 2, z, shifted)) - 25) < 1e-4);
  // perfectly correlated columns: Cov = (4/3)·[[1,1],[1,1]] → off-diagonal 2·(16/9)/2 per view, two views
  const corr = Float32Array.from([1, 1, 1, 1, -1, -1, -1, -1]);
  const expectCov = 2 * ((2 * (16 / 9)) / 2);
  assert.ok(Math.abs((await evalLoss(m, hp, 4, 2, corr, corr)) - expectCov) < 1e-4);
});

for (const name of Object.keys(SSL_METHODS) as (keyof typeof SSL_METHODS)[]) {
  test(`${name}: the loss falls under gradient steps on random embeddings`, async () => {
    const m = getMethod(name);
    const k = 4;
    const over: Record<string, number> = { proj_output_dim: D };
    if (name === 'deepclusterv2' || name === 'swav') over.num_prototypes = k;
    if (name === 'swav') over.queue_size = 16;
    const hp = resolveHyper(m, over);
    let feeds = () => ({});
    if (name === 'deepclusterv2') {
      const cent = randn([k, D], 1, 5);
      const cd = cent.data as Float32Array;
      for (let j = 0; j < k; j++) {
        const r = cd.subarray(j * D, j * D + D);
        const nrm = Math.hypot(...r);
        for (let t = 0; t < D; t++) r[t] /= nrm;
      }
      const oh = new Float32Array(N * k);
      for (let i = 0; i < N; i++) oh[i * k + (i % k)] = 1;
      feeds = () => ({ [DC_CENTROIDS]: cent, [DC_ASSIGN]: { dtype: 'float32' as const, dims: [N, k], data: oh } });
    }
    if (name === 'swav') {
      const q = randn([2, 16, D], 1, 9);
      const w = new Float32Array(16).fill(1);
      w.fill(0, 10);
      feeds = () => ({ [SWAV_QUEUE]: q, [SWAV_QUEUE_WEIGHT]: { dtype: 'float32' as const, dims: [16, 1], data: w } });
    }
    const lr = { simclr: 0.5, barlow_twins: 0.5, vicreg: 0.05, deepclusterv2: 0.5, swav: 0.5 }[name];
    const curve = await descend(m, hp, N, D, 30, lr, feeds);
    assert.ok(curve.every(Number.isFinite));
    assert.ok(curve[curve.length - 1] < 0.8 * curve[0], `${name}: ${curve[0]} → ${curve[curve.length - 1]}`);
  });
}
