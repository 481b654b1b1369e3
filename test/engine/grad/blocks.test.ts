/**
 * Building blocks of the encoder families the engine promises to fine-tune (MobileNetV3, EfficientNet, DenseNet),
 * built in the IR and checked end to end: TF.js autodiff, finite differences and onnxruntime.
 */
import { test } from 'node:test';
import type { GraphBuilder } from '../../../src/engine/ir/builder.js';
import { attr } from '../../../src/engine/ir/graph.js';
import { checkGrad, randTensor } from './_check.js';

const P = (b: GraphBuilder, name: string, dims: number[], seed: number, s = 0.4) =>
  b.param(name, randTensor(dims, seed, s));

test('MobileNetV3 inverted residual: 1×1 expand, HardSwish, depthwise 3×3, squeeze-excite (HardSigmoid), 1×1 project, residual', async () => {
  await checkGrad({
    build: (b) => {
      const x = b.input('x', 'float32', ['N', 4, 6, 6]);
      let h = b.op1('HardSwish', [b.conv(x, P(b, 'e', [8, 4, 1, 1], 1), P(b, 'eb', [8], 2))]);
      h = b.conv(h, P(b, 'dw', [8, 1, 3, 3], 3), P(b, 'dwb', [8], 4), { group: 8, pads: [1, 1, 1, 1] });
      const s = b.globalAveragePool(h);
      const s1 = b.relu(b.conv(s, P(b, 'se1', [2, 8, 1, 1], 5), P(b, 'se1b', [2], 6)));
      const s2 = b.op1('HardSigmoid', [b.conv(s1, P(b, 'se2', [8, 2, 1, 1], 7), P(b, 'se2b', [8], 8))], {
        alpha: attr.float(1 / 6),
      });
      h = b.mul(h, s2);
      return b.add(x, b.conv(h, P(b, 'pr', [4, 8, 1, 1], 9)));
    },
    wrt: ['x', 'e', 'eb', 'dw', 'dwb', 'se1', 'se2', 'se2b', 'pr'],
    feeds: { x: randTensor([2, 4, 6, 6], 10) },
    tol: 3e-4,
    eps: 1e-3,
    fdTol: 3e-2,
  });
});

test('EfficientNet MBConv: SiLU (x·sigmoid x), strided depthwise 5×5 SAME_UPPER, squeeze-excite', async () => {
  await checkGrad({
    build: (b) => {
      const x = b.input('x', 'float32', ['N', 3, 8, 8]);
      const silu = (v: string) => b.mul(v, b.sigmoid(v));
      let h = silu(b.conv(x, P(b, 'e', [6, 3, 1, 1], 11)));
      h = silu(
        b.conv(h, P(b, 'dw', [6, 1, 5, 5], 12), undefined, { group: 6, strides: [2, 2], autoPad: 'SAME_UPPER' }),
      );
      const s = b.sigmoid(
        b.conv(silu(b.conv(b.globalAveragePool(h), P(b, 'red', [2, 6, 1, 1], 13))), P(b, 'x2', [6, 2, 1, 1], 14)),
      );
      return b.conv(b.mul(h, s), P(b, 'pr', [5, 6, 1, 1], 15));
    },
    wrt: ['x', 'e', 'dw', 'red', 'x2', 'pr'],
    feeds: { x: randTensor([2, 3, 8, 8], 16) },
    tol: 3e-4,
  });
});

test('DenseNet layer and transition: BN (inference), Relu, Concat of features, 1×1 conv, AveragePool 2×2', async () => {
  const pos = (dims: number[], seed: number) => {
    const t = randTensor(dims, seed);
    return { ...t, data: (t.data as Float32Array).map((v) => Math.abs(v) + 0.5) };
  };
  await checkGrad({
    build: (b) => {
      const x = b.input('x', 'float32', ['N', 4, 6, 6]);
      const bn = b.batchNorm(
        x,
        P(b, 'g', [4], 21),
        P(b, 'be', [4], 22),
        P(b, 'm', [4], 23, 0.2),
        b.param('v', pos([4], 24)),
      );
      const y = b.conv(b.relu(bn), P(b, 'w', [3, 4, 3, 3], 25), undefined, { pads: [1, 1, 1, 1] });
      const cat = b.concat([x, y], 1);
      const t = b.conv(cat, P(b, 't', [5, 7, 1, 1], 26));
      return b.averagePool(t, { kernel: [2, 2], strides: [2, 2] });
    },
    wrt: ['x', 'g', 'be', 'w', 't'],
    feeds: { x: randTensor([2, 4, 6, 6], 27) },
    tol: 3e-4,
    eps: 1e-3,
    fdTol: 3e-2,
  });
});
