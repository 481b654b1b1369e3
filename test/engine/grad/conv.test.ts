import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GraphBuilder } from '../../../src/engine/ir/builder.js';
import type { Dim } from '../../../src/engine/ir/graph.js';
import { checkGrad, randTensor } from './_check.js';

interface ConvCase {
  x: number[];
  w: number[];
  bias?: boolean;
  attrs?: Record<string, number | number[] | string>;
  op?: 'Conv' | 'ConvTranspose';
  batch?: Dim;
}

async function conv(c: ConvCase) {
  const op = c.op ?? 'Conv';
  return checkGrad({
    build: (b: GraphBuilder) => {
      const x = b.input('x', 'float32', [c.batch ?? c.x[0], ...c.x.slice(1)]);
      const w = b.param('w', randTensor(c.w, 2, 0.5));
      const ins = [x, w];
      if (c.bias)
        ins.push(b.param('b', randTensor([op === 'Conv' ? c.w[0] : c.w[1] * ((c.attrs?.group as number) ?? 1)], 3)));
      return b.op1(op, ins, c.attrs ?? {});
    },
    wrt: c.bias ? ['x', 'w', 'b'] : ['x', 'w'],
    feeds: { x: randTensor(c.x, 1) },
  });
}

test('Conv 3×3 pad 1 with bias: dX, dW, dB match TF.js, finite differences and onnxruntime', async () => {
  const r = await conv({ x: [2, 3, 6, 6], w: [4, 3, 3, 3], bias: true, attrs: { pads: [1, 1, 1, 1] } });
  // stride 1: dX is a Conv with the flipped, transposed W (no ConvTranspose); a 6×6 plane ≥ K = 4 output channels:
  // dW by a one-hot depthwise im2col Conv and a per-image MatMul
  const ops = r.graph.nodes.map((n) => n.opType);
  assert.ok(!ops.includes('ConvTranspose') && !ops.includes('Gemm') && ops.includes('MatMul'));
  assert.equal(ops.filter((o) => o === 'Conv').length, 3);
});

test('Conv dW on a small output plane (Ho·Wo < K): k² slices and one Gemm, also with groups', async () => {
  const r = await conv({ x: [2, 3, 3, 3], w: [16, 3, 3, 3], bias: true, attrs: { pads: [1, 1, 1, 1] } });
  assert.ok(r.graph.nodes.some((n) => n.opType === 'Gemm'));
  await conv({ x: [2, 4, 4, 3], w: [12, 2, 3, 3], attrs: { group: 2, pads: [1, 0, 1, 1], strides: [2, 1] } });
});

test('Conv stride 2 with asymmetric pads', async () => {
  await conv({ x: [2, 3, 7, 8], w: [4, 3, 3, 3], attrs: { strides: [2, 2], pads: [0, 1, 2, 0] } });
});

test('Conv stride 3 leaving unused tail rows (output_padding / extra pad path)', async () => {
  await conv({ x: [1, 2, 9, 10], w: [3, 2, 2, 2], attrs: { strides: [3, 4] } });
});

test('Conv groups = 2', async () => {
  await conv({ x: [2, 4, 6, 6], w: [6, 2, 3, 3], bias: true, attrs: { group: 2, pads: [1, 1, 1, 1] } });
});

test('Conv depthwise (group = C = K) with stride 2', async () => {
  const r = await conv({ x: [2, 4, 7, 7], w: [4, 1, 3, 3], attrs: { group: 4, pads: [1, 1, 1, 1], strides: [2, 2] } });
  assert.ok(!r.graph.nodes.some((n) => n.opType === 'Gemm'), 'depthwise dW uses Mul+ReduceSum, no GEMM');
});

test('Conv depthwise stride 1 (dX: depthwise Conv with the flipped kernel)', async () => {
  await conv({ x: [2, 4, 6, 6], w: [4, 1, 3, 3], bias: true, attrs: { group: 4, pads: [1, 1, 1, 1] } });
  await conv({ x: [2, 4, 6, 6], w: [4, 1, 5, 5], attrs: { group: 4, pads: [2, 1, 2, 3] } });
});

test('Conv depthwise with stride, dilation, asymmetric pads and unused tail rows', async () => {
  await conv({
    x: [2, 3, 10, 8],
    w: [3, 1, 3, 3],
    attrs: { group: 3, strides: [2, 3], dilations: [2, 1], pads: [1, 0, 0, 2] },
  });
  await conv({ x: [1, 2, 9, 9], w: [4, 1, 2, 2], attrs: { group: 2, strides: [3, 3] } });
});

test('Conv depthwise with channel multiplier 2', async () => {
  await conv({ x: [2, 3, 6, 6], w: [6, 1, 3, 3], attrs: { group: 3, pads: [1, 1, 1, 1] } });
});

test('Conv dilations 2, with and without stride', async () => {
  await conv({ x: [1, 2, 9, 9], w: [3, 2, 3, 3], attrs: { dilations: [2, 2], pads: [2, 2, 2, 2] } });
  await conv({ x: [1, 2, 10, 9], w: [3, 2, 3, 3], attrs: { dilations: [2, 1], strides: [2, 2], pads: [1, 0, 0, 1] } });
});

test('Conv auto_pad SAME_UPPER and SAME_LOWER with stride 2', async () => {
  await conv({ x: [1, 2, 7, 6], w: [3, 2, 4, 3], attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] } });
  await conv({ x: [1, 2, 7, 6], w: [3, 2, 4, 3], attrs: { auto_pad: 'SAME_LOWER', strides: [2, 2] } });
});

test('Conv 1×1 stride 2: dW is one MatMul (large plane) or one Gemm (small plane), no kernel offsets', async () => {
  let r = await conv({ x: [2, 5, 6, 6], w: [3, 5, 1, 1], bias: true, attrs: { strides: [2, 2] } });
  // forward Conv only (dX of a strided conv is a ConvTranspose; no im2col Conv, no Concat)
  assert.equal(r.graph.nodes.filter((n) => n.opType === 'Concat' || n.opType === 'Conv').length, 1);
  assert.equal(r.graph.nodes.filter((n) => n.opType === 'MatMul').length, 1);
  r = await conv({ x: [2, 5, 4, 4], w: [8, 5, 1, 1], attrs: { strides: [2, 2] } });
  assert.equal(r.graph.nodes.filter((n) => n.opType === 'Gemm').length, 1);
});

test('Conv with a symbolic batch dimension N', async () => {
  const r = await conv({ x: [3, 2, 5, 5], w: [4, 2, 3, 3], bias: true, batch: 'N', attrs: { pads: [1, 1, 1, 1] } });
  const dx = r.graph.nodes.filter((n) => n.opType === 'Conv')[1];
  assert.deepEqual(r.graph.values.get(dx.outputs[0])?.shape, ['N', 2, 5, 5]);
  await conv({ x: [3, 2, 6, 5], w: [4, 2, 3, 3], batch: 'N', attrs: { pads: [1, 1, 1, 1], strides: [2, 2] } });
});

test('ConvTranspose stride 2, pads 1, output_padding 1, bias', async () => {
  await conv({
    op: 'ConvTranspose',
    x: [2, 3, 4, 4],
    w: [3, 2, 3, 3],
    bias: true,
    attrs: { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] },
  });
});

test('ConvTranspose groups 2 and dilation 2', async () => {
  await conv({
    op: 'ConvTranspose',
    x: [1, 4, 4, 5],
    w: [4, 3, 2, 2],
    attrs: { group: 2, dilations: [2, 2], strides: [1, 2] },
  });
});

test('Conv1d and MaxPool1d / AveragePool1d (spatial rank 1)', async () => {
  await conv({ x: [2, 3, 9], w: [4, 3, 3], bias: true, attrs: { strides: [2], pads: [1, 0] } });
  await conv({ x: [2, 3, 9], w: [4, 3, 3], attrs: { pads: [1, 1] } });
  for (const op of ['MaxPool', 'AveragePool']) {
    await checkGrad({
      build: (b) =>
        b.op1(op, [b.input('x', 'float32', ['N', 3, 9])], { kernel_shape: [3], strides: [2], pads: [1, 1] }),
      wrt: ['x'],
      feeds: { x: randTensor([2, 3, 9], 9) },
      eps: 1e-3,
    });
  }
});
