import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { GraphBuilder, randn, randu } from '../../../src/engine/ir/builder.js';
import {
  clearSessionCache,
  defaultThreads,
  loadSession,
  sessionCacheSize,
  sessionOptions,
  toOrt,
  validateFeeds,
} from '../../../src/engine/runtime/session.js';
import { QcbError } from '../../../src/errors.js';

function mlp(seed = 1) {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', 'float32', ['N', 4]);
  const h = b.relu(b.gemm(x, b.param('w', randn([3, 4], 1, seed)), undefined, { transB: true }));
  b.output(h, 'y');
  return b.build();
}

test('sessions are cached by model content and options; threads default to the core count', async () => {
  await clearSessionCache();
  assert.equal(defaultThreads(), availableParallelism());
  assert.equal(sessionOptions().intraOpNumThreads, availableParallelism());
  assert.equal(sessionOptions().executionMode, 'sequential');
  const a = await loadSession(mlp(1));
  const b = await loadSession(mlp(1));
  assert.equal(a, b);
  const c = await loadSession(mlp(2));
  assert.notEqual(a, c);
  const d = await loadSession(mlp(1), { intraOpNumThreads: 1 });
  assert.notEqual(a, d);
  assert.equal(sessionCacheSize(), 3);
  await clearSessionCache();
  assert.equal(sessionCacheSize(), 0);
});

test('CPU runs are deterministic: same feeds, same bits', async () => {
  const s = await loadSession(mlp(3), { noCache: true });
  const x = toOrt(randu([5, 4], -1, 1, 4));
  const r1 = (await s.run({ x })).y.data as Float32Array;
  const r2 = (await s.run({ x })).y.data as Float32Array;
  assert.deepEqual(r1, r2);
  assert.ok(r1.some((v) => v > 0));
});

test('feeds are validated before onnxruntime: missing, dtype, rank, size and symbolic binding', async () => {
  const s = await loadSession(mlp(1), { noCache: true });
  const err = (re: RegExp) => (e: unknown) => e instanceof QcbError && e.code === 'QCB_FEED' && re.test(e.message);
  await assert.rejects(s.run({}), err(/'x' is not fed/));
  await assert.rejects(s.run({ x: toOrt(randu([2, 5])) }), err(/axis 1/));
  await assert.rejects(s.run({ x: toOrt(randu([2, 4, 1])) }), err(/wrong rank/));
  await assert.rejects(
    s.run({ x: toOrt({ dtype: 'float64', dims: [2, 4], data: new Float64Array(8) }) }),
    err(/element type/),
  );
  const inputs = [
    { name: 'a', dtype: 'float32' as const, shape: ['N', 2] },
    { name: 'b', dtype: 'float32' as const, shape: ['N', 3] },
  ];
  assert.throws(() => validateFeeds(inputs, { a: toOrt(randu([4, 2])), b: toOrt(randu([5, 3])) }), err(/'N'/));
  validateFeeds(inputs, { a: toOrt(randu([4, 2])), b: toOrt(randu([4, 3])) });
});

test('an execution provider that is not installed gives QCB_RUNTIME with a fix, not a crash', async () => {
  await assert.rejects(
    loadSession(mlp(5), { executionProviders: ['cuda'], noCache: true }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_RUNTIME' && /cuda/i.test(e.context.fix ?? ''),
  );
});
