import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray, full, GraphBuilder, int64s, randn, scalar, zeros } from '../../../src/engine/ir/builder.js';
import { loadSession, toOrt } from '../../../src/engine/runtime/session.js';
import { QcbError } from '../../../src/errors.js';

test('builder names values readably and uniquely, with scopes', () => {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'float32', ['N', 2]);
  const r1 = b.relu(x);
  const r2 = b.relu(r1);
  const s = b.scope('head', () => b.relu(r2));
  assert.deepEqual([r1, r2, s], ['relu', 'relu_1', 'head/relu']);
  assert.throws(
    () => b.input('x', 'float32', [1]),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ONNX_GRAPH',
  );
  const appended = new GraphBuilder(b.graph);
  assert.equal(appended.relu(s), 'relu_2');
});

test('tensor helpers: zeros, full, fromArray (int64 too), scalar, seeded randn', () => {
  assert.deepEqual(zeros([2, 3]).data, new Float32Array(6));
  assert.deepEqual(full([2], 1.5).data, Float32Array.of(1.5, 1.5));
  assert.deepEqual(int64s([1, -1]).data, BigInt64Array.of(1n, -1n));
  assert.deepEqual(scalar(3).dims, []);
  assert.deepEqual(fromArray([1, 2, 3, 4], [2, 2]).dims, [2, 2]);
  assert.throws(() => fromArray([1, 2, 3], [2, 2]));
  assert.deepEqual(randn([10], 1, 42).data, randn([10], 1, 42).data);
  assert.notDeepEqual(randn([10], 1, 42).data, randn([10], 1, 43).data);
  const big = randn([20000], 2, 1).data as Float32Array;
  const mean = big.reduce((a, v) => a + v, 0) / big.length;
  const sd = Math.sqrt(big.reduce((a, v) => a + (v - mean) ** 2, 0) / big.length);
  assert.ok(Math.abs(mean) < 0.05 && Math.abs(sd - 2) < 0.05, `mean ${mean} sd ${sd}`);
});

test('a built graph runs in onnxruntime with the expected values (conv, pool, gemm, reductions)', async () => {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'float32', ['N', 1, 4, 4]);
  const w = b.param('w', fromArray([0, 0, 0, 0, 1, 0, 0, 0, 0], [1, 1, 3, 3])); // identity kernel
  const c = b.conv(x, w, undefined, { pads: [1, 1, 1, 1] });
  const p = b.maxPool(c, { kernel: [2, 2], strides: [2, 2] });
  const f = b.flatten(p);
  const y = b.gemm(f, b.param('m', fromArray([1, 1, 1, 1], [1, 4])), undefined, { transB: true });
  b.output(y, 'y');
  b.output(b.reduceMean(x, [2, 3], false), 'mean');
  const g = b.build();
  assert.deepEqual(g.values.get('y')?.shape, ['N', 1]);
  const s = await loadSession(g, { noCache: true });
  const xv = fromArray(
    Array.from({ length: 16 }, (_, i) => i),
    [1, 1, 4, 4],
  );
  const out = await s.run({ x: toOrt(xv) });
  // maxima of the 2×2 blocks of 0..15 are 5, 7, 13, 15
  assert.equal((out.y.data as Float32Array)[0], 5 + 7 + 13 + 15);
  assert.equal((out.mean.data as Float32Array)[0], 7.5);
});
