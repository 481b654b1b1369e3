import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Dim } from '../../../src/engine/ir/graph.js';
import { checkGrad, randTensor } from './_check.js';

async function pool(op: string, x: number[], attrs: Record<string, number | number[] | string> = {}, batch?: Dim) {
  return checkGrad({
    build: (b) => b.op1(op, [b.input('x', 'float32', [batch ?? x[0], ...x.slice(1)])], attrs),
    wrt: ['x'],
    feeds: { x: randTensor(x, 5) },
    // finite differences across a max switch are meaningless: eps well below the typical gap between values
    eps: op === 'MaxPool' || op === 'GlobalMaxPool' ? 1e-3 : 1e-2,
  });
}

test('MaxPool 3×3 stride 2 pad 1 (ResNet stem)', async () => {
  const r = await pool('MaxPool', [2, 3, 8, 8], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  assert.ok(r.graph.nodes.some((n) => n.opType === 'ScatterElements'));
});

test('MaxPool 2×2 stride 2, asymmetric pads, ceil_mode', async () => {
  await pool('MaxPool', [1, 2, 7, 7], { kernel_shape: [2, 2], strides: [2, 2] });
  await pool('MaxPool', [1, 2, 7, 6], { kernel_shape: [3, 2], strides: [2, 2], pads: [0, 1, 1, 0] });
  await pool('MaxPool', [1, 2, 7, 7], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 });
});

test('MaxPool with auto_pad SAME_UPPER, dilations and symbolic batch', async () => {
  await pool('MaxPool', [2, 2, 7, 7], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' }, 'N');
  await pool('MaxPool', [1, 2, 9, 9], { kernel_shape: [2, 2], dilations: [2, 2] });
});

test('AveragePool with and without count_include_pad, asymmetric pads, ceil_mode', async () => {
  await pool('AveragePool', [2, 3, 6, 6], { kernel_shape: [2, 2], strides: [2, 2] });
  await pool('AveragePool', [1, 2, 7, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 0, 1, 2] });
  await pool('AveragePool', [1, 2, 7, 7], {
    kernel_shape: [3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    count_include_pad: 1,
  });
  await pool('AveragePool', [1, 2, 7, 7], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 });
});

test('AveragePool auto_pad SAME_LOWER with symbolic batch', async () => {
  await pool('AveragePool', [2, 2, 5, 6], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_LOWER' }, 'N');
});

test('GlobalAveragePool and GlobalMaxPool, static and symbolic batch', async () => {
  await pool('GlobalAveragePool', [2, 3, 4, 5]);
  await pool('GlobalAveragePool', [3, 3, 4, 5], {}, 'N');
  await pool('GlobalMaxPool', [2, 3, 4, 5]);
});
