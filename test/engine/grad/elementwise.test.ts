import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dim } from '../../../src/engine/ir/graph.js';
import { attr } from '../../../src/engine/ir/graph.js';
import { checkGrad, randTensor } from './_check.js';

const positive = (dims: number[], seed: number) => {
  const t = randTensor(dims, seed);
  return { ...t, data: (t.data as Float32Array).map((v) => Math.abs(v) + 0.5) };
};

async function binary(op: string, a: Dim[], b: Dim[], fa: number[], fb: number[], pos = false) {
  return checkGrad({
    build: (g) => g.op1(op, [g.input('a', 'float32', a), g.input('b', 'float32', b)]),
    wrt: ['a', 'b'],
    feeds: { a: pos ? positive(fa, 41) : randTensor(fa, 41), b: pos ? positive(fb, 42) : randTensor(fb, 42) },
    tol: 2e-4,
  });
}

test('Add/Sub/Mul/Div with equal shapes', async () => {
  for (const op of ['Add', 'Sub', 'Mul']) await binary(op, [3, 4], [3, 4], [3, 4], [3, 4]);
  await binary('Div', [3, 4], [3, 4], [3, 4], [3, 4], true);
});

test('Add/Sub/Mul/Div with broadcasting: the gradient is summed back to each input shape', async () => {
  const r = await binary('Add', ['N', 3, 4, 4], [3, 1, 1], [2, 3, 4, 4], [3, 1, 1]);
  assert.deepEqual(r.grads.b.dims, [3, 1, 1]);
  await binary('Sub', [2, 1, 5], [4, 1], [2, 1, 5], [4, 1]);
  await binary('Mul', ['N', 6], [6], [3, 6], [6]);
  await binary('Div', [5], [2, 3, 1], [5], [2, 3, 1], true);
});

test('Pow with tensor and constant exponents', async () => {
  await binary('Pow', [3, 4], [3, 4], [3, 4], [3, 4], true);
  await checkGrad({
    build: (g) => g.pow(g.input('a', 'float32', [3, 4]), g.scalar(3)),
    wrt: ['a'],
    feeds: { a: randTensor([3, 4], 43) },
  });
});

test('Sqrt, Exp, Log, Neg, Abs, Reciprocal', async () => {
  for (const op of ['Sqrt', 'Log', 'Reciprocal']) {
    await checkGrad({
      build: (g) => g.op1(op, [g.input('x', 'float32', [2, 5])]),
      wrt: ['x'],
      feeds: { x: positive([2, 5], 44) },
    });
  }
  for (const op of ['Exp', 'Neg', 'Abs']) {
    const mixed = {
      dtype: 'float32' as const,
      dims: [2, 5],
      data: positive([2, 5], 45).data.map((v, i) => (i % 2 ? v : -v)),
    };
    await checkGrad({ build: (g) => g.op1(op, [g.input('x', 'float32', [2, 5])]), wrt: ['x'], feeds: { x: mixed } });
  }
});

test('Min and Max (variadic, broadcasting)', async () => {
  await binary('Min', [3, 4], [4], [3, 4], [4]);
  await checkGrad({
    build: (g) =>
      g.op1('Max', [g.input('a', 'float32', [3, 4]), g.input('b', 'float32', [3, 4]), g.input('c', 'float32', [1, 4])]),
    wrt: ['a', 'b', 'c'],
    feeds: { a: randTensor([3, 4], 46), b: randTensor([3, 4], 47), c: randTensor([1, 4], 48) },
  });
});

test('Sum and Mean (variadic)', async () => {
  for (const op of ['Sum', 'Mean']) {
    await checkGrad({
      build: (g) =>
        g.op1(op, [g.input('a', 'float32', [3, 4]), g.input('b', 'float32', [4]), g.input('c', 'float32', [3, 1])]),
      wrt: ['a', 'b', 'c'],
      feeds: { a: randTensor([3, 4], 46), b: randTensor([4], 47), c: randTensor([3, 1], 48) },
    });
  }
});

test('Where routes the gradient by the condition, with broadcasting', async () => {
  await checkGrad({
    build: (g) => {
      const a = g.input('a', 'float32', [3, 4]);
      const c = g.op1('Greater', [a, g.scalar(0)]);
      return g.op1('Where', [c, a, g.input('b', 'float32', [4])]);
    },
    wrt: ['a', 'b'],
    feeds: { a: randTensor([3, 4], 49), b: randTensor([4], 50) },
    eps: 1e-3,
  });
});

test('Cast float→float passes the gradient; integer casts stop it', async () => {
  const r = await checkGrad({
    build: (g) => {
      const x = g.input('x', 'float32', [2, 3]);
      const floor = g.op1('Cast', [g.op1('Cast', [x], { to: attr.int(7) })], { to: attr.int(1) });
      return g.add(g.op1('Cast', [x], { to: attr.int(1) }), floor);
    },
    wrt: ['x'],
    feeds: { x: { dtype: 'float32', dims: [2, 3], data: new Float32Array([0.3, 1.4, -2.2, 3.3, 0.6, -0.7]) } },
  });
  // only the float path carries a gradient: dL/dx = r, so the backward graph holds no Cast to int64
  const casts = r.graph.nodes.filter((n) => n.opType === 'Cast' && n.name.includes('_grad'));
  assert.equal(casts.length, 0);
});
