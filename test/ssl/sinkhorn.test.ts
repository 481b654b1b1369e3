import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder, fromArray, randu } from '../../src/engine/ir/builder.js';
import { loadSession, toOrt } from '../../src/engine/runtime/session.js';
import { sinkhorn, sinkhornGraph } from '../../src/ssl/sinkhorn.js';

const B = 24;
const K = 6;

function marginals(q: ArrayLike<number>, b: number, k: number) {
  const rows = new Array(b).fill(0);
  const cols = new Array(k).fill(0);
  for (let i = 0; i < b; i++)
    for (let j = 0; j < k; j++) {
      rows[i] += q[i * k + j];
      cols[j] += q[i * k + j];
    }
  return { rows, cols };
}

test('sinkhorn: codes are doubly stochastic (samples sum to 1, prototypes to B/K)', () => {
  const s = randu([B, K], -1, 1, 4).data as Float32Array;
  // many iterations: both marginals exact
  const q = sinkhorn(s, B, K, { epsilon: 0.05, iters: 200 });
  const m = marginals(q, B, K);
  for (const r of m.rows) assert.ok(Math.abs(r - 1) < 1e-9);
  for (const c of m.cols) assert.ok(Math.abs(c - B / K) < 1e-6, `column ${c}`);
  assert.ok(q.every((v) => v >= 0));
  // SwAV's 3 iterations: samples exactly 1, prototypes much closer to B/K than the plain softmax's
  const q3 = sinkhorn(s, B, K, { epsilon: 0.05, iters: 3 });
  const m3 = marginals(q3, B, K);
  for (const r of m3.rows) assert.ok(Math.abs(r - 1) < 1e-9);
  const soft = sinkhorn(s, B, K, { epsilon: 0.05, iters: 0 });
  const dev = (cols: number[]) => Math.max(...cols.map((c) => Math.abs(c - B / K)));
  assert.ok(
    dev(m3.cols) < 0.25 * dev(marginals(soft, B, K).cols),
    `${dev(m3.cols)} vs ${dev(marginals(soft, B, K).cols)}`,
  );
});

test('sinkhorn: rows of weight 0 get no codes and do not count', () => {
  const s = randu([B, K], -1, 1, 5).data as Float32Array;
  const w = new Float32Array(B).fill(1);
  w.fill(0, 18);
  const q = sinkhorn(s, B, K, { epsilon: 0.05, iters: 2000 }, w);
  const m = marginals(q, B, K);
  for (let i = 0; i < B; i++) assert.ok(Math.abs(m.rows[i] - (i < 18 ? 1 : 0)) < 1e-9);
  for (const c of m.cols) assert.ok(Math.abs(c - 18 / K) < 1e-6);
  const sub = sinkhorn(s.subarray(0, 18 * K), 18, K, { epsilon: 0.05, iters: 2000 });
  for (let i = 0; i < 18 * K; i++) assert.ok(Math.abs(q[i] - sub[i]) < 1e-9);
});

test('sinkhornGraph computes the same codes as the TypeScript version', async () => {
  const s = randu([B, K], -1, 1, 6);
  const w = new Float32Array(B).fill(1);
  w.fill(0, 20);
  const g = new GraphBuilder('sk');
  const x = g.input('s', 'float32', [B, K]);
  const wi = g.input('w', 'float32', [B, 1]);
  g.output(sinkhornGraph(g, x, { epsilon: 0.05, iters: 3 }, K), 'q');
  g.output(sinkhornGraph(g, x, { epsilon: 0.05, iters: 3 }, K, wi), 'qw');
  const sess = await loadSession(g.build(), { noCache: true });
  const out = await sess.run({ s: toOrt(s), w: toOrt(fromArray(w, [B, 1])) });
  const ref = sinkhorn(s.data as Float32Array, B, K, { epsilon: 0.05, iters: 3 });
  const refW = sinkhorn(s.data as Float32Array, B, K, { epsilon: 0.05, iters: 3 }, w);
  const q = out.q.data as Float32Array;
  const qw = out.qw.data as Float32Array;
  for (let i = 0; i < B * K; i++) {
    assert.ok(Math.abs(q[i] - ref[i]) < 1e-5, `q[${i}] ${q[i]} vs ${ref[i]}`);
    assert.ok(Math.abs(qw[i] - refW[i]) < 1e-5, `qw[${i}] ${qw[i]} vs ${refW[i]}`);
  }
});
