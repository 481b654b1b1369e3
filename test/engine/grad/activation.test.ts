import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attr } from '../../../src/engine/ir/graph.js';
import { checkGrad, randTensor } from './_check.js';

const shape = [3, 4, 5];

/** Values kept away from the kinks (0, ±3, clip bounds) so that finite differences are meaningful. */
function awayFromKinks(seed: number, kinks: number[]) {
  const t = randTensor(shape, seed, 2);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i++) for (const k of kinks) if (Math.abs(d[i] - k) < 0.05) d[i] = k + 0.1;
  return t;
}

async function unary(
  op: string,
  attrs: Record<string, ReturnType<typeof attr.int>> = {},
  kinks: number[] = [],
  extra?: (x: string) => string[],
) {
  return checkGrad({
    opset: op === 'Gelu' ? 20 : 17,
    build: (b) => {
      const x = b.input('x', 'float32', ['N', 4, 5]);
      return b.op1(op, extra ? [x, ...extra(x)] : [x], attrs);
    },
    wrt: ['x'],
    feeds: { x: awayFromKinks(31, kinks) },
    eps: 1e-2,
    tol: 2e-4,
  });
}

test('Relu, LeakyRelu, Elu, PRelu', async () => {
  await unary('Relu', {}, [0]);
  await unary('LeakyRelu', { alpha: attr.float(0.1) }, [0]);
  await unary('Elu', { alpha: attr.float(0.7) }, [0]);
  await checkGrad({
    build: (b) => b.op1('PRelu', [b.input('x', 'float32', shape), b.param('slope', randTensor([5], 3, 0.3))]),
    wrt: ['x', 'slope'],
    feeds: { x: awayFromKinks(32, [0]) },
  });
});

test('Sigmoid, Tanh, Softplus, Erf', async () => {
  await unary('Sigmoid');
  await unary('Tanh');
  await unary('Softplus');
  await unary('Erf');
});

test('HardSigmoid and HardSwish (zones on both sides of the linear part)', async () => {
  await unary('HardSigmoid', { alpha: attr.float(0.3), beta: attr.float(0.4) }, [-4 / 3, 2]);
  await unary('HardSigmoid', {}, [-2.5, 2.5]);
  await unary('HardSwish', {}, [-3, 3]);
});

test('Gelu exact and tanh approximation (opset-20 forward op; the backward uses no Gelu)', async () => {
  const r = await unary('Gelu');
  assert.ok(r.graph.nodes.filter((n) => n.opType === 'Gelu').length === 1, 'backward uses no Gelu op');
  await unary('Gelu', { approximate: attr.string('tanh') });
});

test('Softmax and LogSoftmax on the last and a middle axis', async () => {
  await unary('Softmax', { axis: attr.int(-1) });
  await unary('Softmax', { axis: attr.int(1) });
  await unary('LogSoftmax', { axis: attr.int(-1) });
  await unary('LogSoftmax', { axis: attr.int(1) });
});

test('Clip with min and max inputs, with max only', async () => {
  await checkGrad({
    build: (b) => b.op1('Clip', [b.input('x', 'float32', shape), b.scalar(-0.5), b.scalar(1.2)]),
    wrt: ['x'],
    feeds: { x: awayFromKinks(33, [-0.5, 1.2]) },
  });
  await checkGrad({
    build: (b) => b.op1('Clip', [b.input('x', 'float32', shape), '', b.scalar(0.7)]),
    wrt: ['x'],
    feeds: { x: awayFromKinks(34, [0.7]) },
  });
});

test('Dropout: inference mode is the identity, training mode scales by mask/(1−p)', async () => {
  await checkGrad({
    build: (b) => b.op('Dropout', [b.input('x', 'float32', shape), b.scalar(0.3)], {}, 1)[0],
    wrt: ['x'],
    feeds: { x: randTensor(shape, 35) },
    ort: false, // onnxruntime's mask is its own random draw: checked against TF.js and finite differences only
  });
  const training = { dtype: 'bool' as const, dims: [], data: new Uint8Array([1]) };
  const r = await checkGrad({
    build: (b) =>
      b.op(
        'Dropout',
        [b.input('x', 'float32', shape), b.scalar(0.3), b.constant(training, 'train')],
        { seed: 3 },
        1,
      )[0],
    wrt: ['x'],
    feeds: { x: randTensor(shape, 36) },
    ort: false,
  });
  const g = r.grads.x.data as Float32Array;
  const zeros = g.filter((v) => v === 0).length;
  assert.ok(zeros > 0 && zeros < g.length, 'some elements dropped, some kept');
  assert.ok(r.graph.nodes.find((n) => n.opType === 'Dropout')?.outputs[1], 'mask exposed as a second output');
});
