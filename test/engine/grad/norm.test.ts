import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GraphBuilder } from '../../../src/engine/ir/builder.js';
import { attr } from '../../../src/engine/ir/graph.js';
import { checkGrad, randTensor } from './_check.js';

function bnParams(b: GraphBuilder, C: number) {
  const abs = (t: ReturnType<typeof randTensor>) => ({
    ...t,
    data: (t.data as Float32Array).map((v) => Math.abs(v) + 0.5),
  });
  return [
    b.param('scale', randTensor([C], 11)),
    b.param('bias', randTensor([C], 12)),
    b.param('mean', randTensor([C], 13, 0.3)),
    b.param('var', abs(randTensor([C], 14))),
  ];
}

test('BatchNormalization training mode (batch statistics, running-stat outputs)', async () => {
  const r = await checkGrad({
    build: (b) => {
      const x = b.input('x', 'float32', [4, 3, 5, 5]);
      const [s, bi, m, v] = bnParams(b, 3);
      return b.op(
        'BatchNormalization',
        [x, s, bi, m, v],
        { epsilon: attr.float(1e-5), momentum: attr.float(0.9), training_mode: 1 },
        3,
      )[0];
    },
    wrt: ['x', 'scale', 'bias'],
    feeds: { x: randTensor([4, 3, 5, 5], 1, 2) },
    tol: 3e-4,
  });
  // the gradient with respect to x of a batch-normalised output sums to zero per channel (mean removed)
  const g = r.grads.x.data as Float32Array;
  let s = 0;
  for (let n = 0; n < 4; n++) for (let i = 0; i < 25; i++) s += g[n * 75 + i];
  assert.ok(Math.abs(s) < 1e-3);
});

test('BatchNormalization training mode with a symbolic batch and on N×C features', async () => {
  await checkGrad({
    build: (b) => {
      const x = b.input('x', 'float32', ['N', 3, 4, 4]);
      const [s, bi, m, v] = bnParams(b, 3);
      return b.op('BatchNormalization', [x, s, bi, m, v], { training_mode: 1 }, 3)[0];
    },
    wrt: ['x', 'scale'],
    feeds: { x: randTensor([3, 3, 4, 4], 2) },
    tol: 3e-4,
  });
  await checkGrad({
    build: (b) => {
      const x = b.input('x', 'float32', [6, 4]);
      const [s, bi, m, v] = bnParams(b, 4);
      return b.op('BatchNormalization', [x, s, bi, m, v], { training_mode: 1 }, 3)[0];
    },
    wrt: ['x', 'scale', 'bias'],
    feeds: { x: randTensor([6, 4], 3) },
    tol: 3e-4,
  });
});

test('BatchNormalization inference mode: gradients for x, scale, bias, mean and var', async () => {
  await checkGrad({
    build: (b) => {
      const x = b.input('x', 'float32', [2, 3, 4, 4]);
      const [s, bi, m, v] = bnParams(b, 3);
      return b.batchNorm(x, s, bi, m, v);
    },
    wrt: ['x', 'scale', 'bias', 'mean', 'var'],
    feeds: { x: randTensor([2, 3, 4, 4], 4) },
  });
});

test('LayerNormalization over the last axis and over the last two axes', async () => {
  await checkGrad({
    build: (b) =>
      b.layerNorm(
        b.input('x', 'float32', ['N', 5, 8]),
        b.param('g', randTensor([8], 21)),
        b.param('beta', randTensor([8], 22)),
      ),
    wrt: ['x', 'g', 'beta'],
    feeds: { x: randTensor([2, 5, 8], 5) },
    tol: 3e-4,
  });
  await checkGrad({
    build: (b) =>
      b.layerNorm(b.input('x', 'float32', [2, 3, 4, 4]), b.param('g', randTensor([4, 4], 23)), undefined, -2),
    wrt: ['x', 'g'],
    feeds: { x: randTensor([2, 3, 4, 4], 6) },
    tol: 3e-4,
  });
});
