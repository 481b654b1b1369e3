import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as ort from 'onnxruntime-node';
import { appendBackward } from '../../src/engine/grad/autodiff.js';
import { loadSession, toOrt } from '../../src/engine/runtime/session.js';
import {
  finiteDifferenceGrads,
  forward,
  initNet,
  keysOf,
  lossAndGrads,
  maxRelDiff,
  type NetGrads,
  type NetParams,
  normalSampler,
  PARAM_KEYS,
} from '../../src/second-order/analytic.js';
import { f32, mlpGraph, mlpParamName } from '../../src/second-order/quadratic.js';

/** A small random problem: N samples of `sizes[0]` inputs, targets in (0, 1), per-sample weights in (0, 1]. */
function problem(sizes: number[], n: number, seed: number) {
  const rn = normalSampler(seed);
  const x = Float64Array.from({ length: n * sizes[0] }, () => rn());
  const y = Float64Array.from({ length: n * sizes[sizes.length - 1] }, () => 1 / (1 + Math.exp(-rn())));
  const w = Float64Array.from({ length: n }, (_, i) => 0.25 + (i % 4) * 0.25);
  return { x, y, w };
}

/** The engine's gradients: mlpGraph + appendBackward, run in onnxruntime (float32). */
async function engineGrads(
  net: NetParams,
  x: Float64Array,
  y: Float64Array,
  w: Float64Array,
  n: number,
  loss: 'sse' | 'bce',
): Promise<{ loss: number; grads: NetGrads }> {
  const g = mlpGraph(net, { loss });
  const wrt: string[] = [];
  net.layers.forEach((L, l) => {
    for (const k of keysOf(L.order)) wrt.push(mlpParamName(l, k));
  });
  const gm = appendBackward(g, 'loss', wrt);
  g.outputs = [
    { name: 'loss', dtype: 'float32' },
    ...wrt.map((p) => ({ name: gm.get(p)!, dtype: 'float32' as const })),
  ];
  const s = await loadSession(g, { noCache: true, intraOpNumThreads: 1 });
  const out = await s.run({
    x: toOrt(f32(x, [n, net.sizes[0]])),
    y: toOrt(f32(y, [n, net.sizes[net.sizes.length - 1]])),
    w: toOrt(f32(w, [n, 1])),
  });
  await s.session.release();
  const grads: NetGrads = net.layers.map((L, l) => {
    const r = {} as NetGrads[number];
    for (const k of PARAM_KEYS)
      r[k] = keysOf(L.order).includes(k)
        ? Float64Array.from((out[gm.get(mlpParamName(l, k))!] as ort.Tensor).data as Float32Array)
        : new Float64Array(0);
    return r;
  });
  return { loss: (out.loss.data as Float32Array)[0], grads };
}

for (const [order, loss] of [
  [2, 'sse'],
  [1, 'sse'],
  [2, 'bce'],
] as const) {
  test(`order-${order} network, ${loss} loss: engine autodiff = analytic (Eqs. 7–11 corrected) = finite differences`, async () => {
    for (const seed of [1, 2, 3]) {
      const sizes = [3, 4, 3, 2];
      const net = initNet(sizes, order, { seed, gain: 1.2 });
      const n = 6;
      const { x, y, w } = problem(sizes, n, 100 + seed);
      const an = lossAndGrads(net, x, y, n, loss, w);
      const fd = finiteDifferenceGrads(net, x, y, n, 1e-6, loss, w);
      const dFd = maxRelDiff(an.grads, fd, 1e-4);
      assert.ok(dFd < 1e-5, `seed ${seed}: analytic vs finite differences rel. diff ${dFd}`);
      const en = await engineGrads(net, x, y, w, n, loss);
      assert.ok(
        Math.abs(en.loss - an.loss) <= 1e-5 * Math.max(1, an.loss),
        `loss engine ${en.loss} analytic ${an.loss}`,
      );
      const dEn = maxRelDiff(en.grads, an.grads, 1e-2);
      assert.ok(dEn < 2e-3, `seed ${seed}: engine vs analytic rel. diff ${dEn}`);
      // gradients are not trivially zero
      const norm = an.grads.reduce(
        (s, l) => s + keysOf(order).reduce((t, k) => t + l[k].reduce((u, v) => u + v * v, 0), 0),
        0,
      );
      assert.ok(norm > 1e-6, `gradient norm ${norm}`);
    }
  });
}

test('the printed Eq. 11 (bias of the wrong factor) disagrees with finite differences; the corrected one agrees', () => {
  const sizes = [2, 3, 1];
  const net = initNet(sizes, 2, { seed: 7 });
  const n = 4;
  const { x, y } = problem(sizes, n, 9);
  const fd = finiteDifferenceGrads(net, x, y, n);
  const an = lossAndGrads(net, x, y, n);
  assert.ok(maxRelDiff(an.grads, fd, 1e-4) < 1e-5);
  // Eq. 11 as printed for the output neuron: ∂net/∂w_k_r = o_k·(Σ_i w_i_g o_i + b_r) — b_r where b_g belongs
  const t = forward(net, x, n);
  const L = net.layers[1];
  let printed = 0;
  for (let s = 0; s < n; s++) {
    const o = t.outs[2][s];
    const delta = (o - y[s]) * o * (1 - o); // Eqs. 7, 10
    const gPrinted = t.g[1][s] - L.bg[0] + L.br[0];
    printed += delta * t.outs[1][s * 3] * gPrinted;
  }
  const rel = Math.abs(printed - fd[1].wr[0]) / Math.abs(fd[1].wr[0]);
  assert.ok(rel > 1e-2, `printed rule ${printed} vs finite differences ${fd[1].wr[0]}`);
  assert.ok(Math.abs(an.grads[1].wr[0] - fd[1].wr[0]) < 1e-6 * Math.max(1, Math.abs(fd[1].wr[0])));
});
