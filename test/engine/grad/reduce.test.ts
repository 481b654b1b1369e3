import { test } from 'node:test';
import type { GraphBuilder } from '../../../src/engine/ir/builder.js';
import { checkGrad, randTensor } from './_check.js';

async function red(build: (b: GraphBuilder, x: string) => string, eps = 1e-2, opset = 17) {
  await checkGrad({
    opset,
    build: (b) => build(b, b.input('x', 'float32', ['N', 3, 4])),
    wrt: ['x'],
    feeds: { x: randTensor([2, 3, 4], 61) },
    eps,
  });
}

test('ReduceSum: axes input, keepdims 0/1, all axes, negative axes', async () => {
  await red((b, x) => b.reduceSum(x, [1], true));
  await red((b, x) => b.reduceSum(x, [0, -1], false));
  await red((b, x) => b.reduceSum(x, undefined, false));
});

test('ReduceMean over axes including the symbolic batch (opset 17 attribute and opset 18 input forms)', async () => {
  await red((b, x) => b.reduceMean(x, [0, 2], false));
  await red((b, x) => b.reduceMean(x, [-1], true));
  await red((b, x) => b.reduceMean(x, [1], false), 1e-2, 18);
});

test('ReduceMax, ReduceMin', async () => {
  await red((b, x) => b.reduceMax(x, [2], false), 1e-3);
  await red((b, x) => b.op1('ReduceMin', [x], { axes: [0, 1], keepdims: 1 }), 1e-3);
});

test('ReduceL2, ReduceSumSquare, ReduceLogSumExp', async () => {
  await red((b, x) => b.reduceL2(x, [1], false));
  await red((b, x) => b.op1('ReduceSumSquare', [x], { axes: [2], keepdims: 0 }));
  await red((b, x) => b.op1('ReduceLogSumExp', [x], { axes: [1], keepdims: 1 }));
});
