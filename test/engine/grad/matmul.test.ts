import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dim } from '../../../src/engine/ir/graph.js';
import { checkGrad, randTensor } from './_check.js';

async function mm(a: Dim[], b: Dim[], fa: number[], fb: number[]) {
  return checkGrad({
    build: (g) => g.matMul(g.input('a', 'float32', a), g.input('b', 'float32', b)),
    wrt: ['a', 'b'],
    feeds: { a: randTensor(fa, 51), b: randTensor(fb, 52) },
    tol: 2e-4,
  });
}

test('MatMul 2-D', async () => {
  await mm([3, 4], [4, 5], [3, 4], [4, 5]);
});

test('MatMul batched with a broadcast 2-D weight uses one Gemm for dW', async () => {
  const r = await mm(['N', 3, 4], [4, 5], [2, 3, 4], [4, 5]);
  assert.ok(r.graph.nodes.some((n) => n.opType === 'Gemm'));
});

test('MatMul batched with broadcast batch dims on both sides', async () => {
  await mm([2, 1, 3, 4], [3, 4, 2], [2, 1, 3, 4], [3, 4, 2]);
  await mm([3, 4], [2, 4, 5], [3, 4], [2, 4, 5]);
});

test('MatMul with 1-D operands', async () => {
  await mm([4], [4, 5], [4], [4, 5]);
  await mm([2, 3, 4], [4], [2, 3, 4], [4]);
  await mm([4], [4], [4], [4]);
});

test('Gemm with every transA/transB combination, alpha, beta and broadcast C', async () => {
  for (const [tA, tB] of [
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ]) {
    const A = tA ? [4, 3] : [3, 4];
    const B = tB ? [5, 4] : [4, 5];
    await checkGrad({
      build: (g) =>
        g.gemm(g.input('a', 'float32', A), g.input('b', 'float32', B), g.input('c', 'float32', [5]), {
          transA: !!tA,
          transB: !!tB,
          alpha: 0.7,
          beta: 1.3,
        }),
      wrt: ['a', 'b', 'c'],
      feeds: { a: randTensor(A, 53), b: randTensor(B, 54), c: randTensor([5], 55) },
      tol: 2e-4,
    });
  }
  await checkGrad({
    build: (g) =>
      g.gemm(g.input('a', 'float32', ['N', 4]), g.input('b', 'float32', [5, 4]), g.input('c', 'float32', [1, 1]), {
        transB: true,
      }),
    wrt: ['a', 'b', 'c'],
    feeds: { a: randTensor([3, 4], 56), b: randTensor([5, 4], 57), c: randTensor([1, 1], 58) },
    tol: 2e-4,
  });
});
