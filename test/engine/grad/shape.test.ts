import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GraphBuilder } from '../../../src/engine/ir/builder.js';
import type { Dim } from '../../../src/engine/ir/graph.js';
import { checkGrad, int64, randTensor } from './_check.js';

async function one(
  shape: Dim[],
  feed: number[],
  build: (b: GraphBuilder, x: string) => string,
  extra: Record<string, ReturnType<typeof randTensor>> = {},
) {
  return checkGrad({
    build: (b) => build(b, b.input('x', 'float32', shape)),
    wrt: ['x'],
    feeds: { x: randTensor(feed, 71), ...extra },
  });
}

test('Transpose, Reshape, Flatten with a symbolic batch', async () => {
  await one(['N', 3, 4, 2], [2, 3, 4, 2], (b, x) => b.transpose(x, [0, 2, 3, 1]));
  await one(['N', 3, 4], [2, 3, 4], (b, x) => b.op1('Transpose', [x]));
  await one(['N', 3, 4], [2, 3, 4], (b, x) => b.reshape(x, [0, 2, -1]));
  await one(['N', 3, 2, 2], [2, 3, 2, 2], (b, x) => b.flatten(x, 1));
});

test('Squeeze and Unsqueeze with opset-13 axes inputs; Identity', async () => {
  await one(['N', 1, 4, 1], [2, 1, 4, 1], (b, x) => b.op1('Squeeze', [x, b.ints([1, -1])]));
  await one(['N', 4], [2, 4], (b, x) => b.op1('Unsqueeze', [x, b.ints([1, 3])]));
  await one([2, 4], [2, 4], (b, x) => b.identity(x));
});

test('Concat (static and symbolic sizes along the axis) and Split (one output unused)', async () => {
  await checkGrad({
    build: (b) => b.concat([b.input('a', 'float32', [2, 3]), b.input('c', 'float32', [2, 2])], 1),
    wrt: ['a', 'c'],
    feeds: { a: randTensor([2, 3], 72), c: randTensor([2, 2], 73) },
  });
  await checkGrad({
    build: (b) => b.concat([b.input('a', 'float32', ['N', 3]), b.input('c', 'float32', ['M', 3])], 0),
    wrt: ['a', 'c'],
    feeds: { a: randTensor([2, 3], 72), c: randTensor([4, 3], 73) },
    looseShapes: true, // inferShapes gives Split outputs fresh symbols when the sizes are symbolic
  });
  const r = await one(['N', 6], [2, 6], (b, x) => {
    const [p, , q] = b.op('Split', [x, b.ints([1, 2, 3])], { axis: 1 }, 3);
    return b.concat([q, p], 1);
  });
  const g = r.grads.x.data as Float32Array;
  assert.equal(g[1], 0, 'the unused middle piece gets a zero gradient');
});

test('Slice with unit steps, negative indices, steps 2 and −1', async () => {
  await one(['N', 6, 5], [2, 6, 5], (b, x) => b.op1('Slice', [x, b.ints([1, -4]), b.ints([5, 100]), b.ints([1, 2])]));
  await one(['N', 7, 5], [2, 7, 5], (b, x) =>
    b.op1('Slice', [x, b.ints([0, 4]), b.ints([7, 0]), b.ints([1, 2]), b.ints([2, -1])]),
  );
  await one([2, 7, 5], [2, 7, 5], (b, x) =>
    b.op1('Slice', [x, b.ints([-1]), b.ints([-100]), b.ints([1]), b.ints([-3])]),
  );
});

test('Gather along axis 0 and 1 with repeated and negative indices; scalar index', async () => {
  await checkGrad({
    build: (b) => b.op1('Gather', [b.input('x', 'float32', [5, 3]), b.input('i', 'int64', [2, 2])], { axis: 0 }),
    wrt: ['x'],
    feeds: { x: randTensor([5, 3], 74), i: int64([0, 4, -1, 0], [2, 2]) },
  });
  await checkGrad({
    build: (b) => b.op1('Gather', [b.input('x', 'float32', ['N', 5, 3]), b.input('i', 'int64', [3])], { axis: 1 }),
    wrt: ['x'],
    feeds: { x: randTensor([2, 5, 3], 75), i: int64([1, 1, -2]) },
  });
  await one(['N', 5, 3], [2, 5, 3], (b, x) => b.op1('Gather', [x, b.constant(int64([2], []), 'idx')], { axis: 1 }));
});

test('Expand and constant Pad (positive and negative pads)', async () => {
  await one(['N', 1, 3], [2, 1, 3], (b, x) => b.op1('Expand', [x, b.ints([1, 4, 3])]));
  await one(['N', 3, 4], [2, 3, 4], (b, x) => b.op1('Pad', [x, b.ints([0, 1, -1, 0, 2, 1])]));
});

test('Slice whose bounds are computed from a static dim (Shape → Gather → Div → Mul, as torch.chunk exports)', async () => {
  // ShuffleNet v2 exported without constant folding: the channel split's bounds are shape arithmetic that shape
  // inference knows statically; the gradient rule reads them as constants.
  const r = await one(['N', 6, 2], [2, 6, 2], (b, x) => {
    const c = b.op1('Gather', [b.op1('Shape', [x]), b.constant(int64([1], [1]), 'one')], { axis: 0 });
    const half = b.op1('Div', [c, b.constant(int64([2], [1]), 'two')]);
    const end = b.op1('Mul', [half, b.constant(int64([1], [1]), 'unit')]);
    return b.op1('Slice', [x, b.constant(int64([0], [1]), 'zero'), end, b.constant(int64([1], [1]), 'axis')]);
  });
  const g = r.grads.x.data as Float32Array;
  // x is 2×6×2: channels 3–5 are outside the slice and get zero gradient
  for (let n = 0; n < 2; n++) for (let i = 6; i < 12; i++) assert.equal(g[n * 12 + i], 0);
});
