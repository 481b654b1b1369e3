/**
 * End-to-end check of the backward graphs on real exported torchvision encoders (../shared/fixtures/onnx): our
 * gradients, run in onnxruntime, against what PyTorch computed for L = sum(features · r).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { appendBackward } from '../../../src/engine/grad/autodiff.js';
import { GraphBuilder } from '../../../src/engine/ir/builder.js';
import { inferShapes } from '../../../src/engine/ir/shapes.js';
import { importOnnx } from '../../../src/engine/onnx/import.js';
import { maxRelError, readReference } from '../../../src/engine/onnx/reference.js';
import { fromOrt, loadSession, ortF32 } from '../../../src/engine/runtime/session.js';

const fixtures = fileURLToPath(new URL('../../../../shared/fixtures/onnx/', import.meta.url));

async function verify(name: string) {
  const ref = readReference(`${fixtures}${name}.ref.json`);
  const g = importOnnx(`${fixtures}${name}.onnx`);
  const feat = g.outputs[0].name;
  const b = new GraphBuilder(g);
  const r = b.input('r', 'float32', g.values.get(feat)?.shape ?? ref.r.shape);
  const loss = b.op1('ReduceSum', [b.mul(feat, r)], { keepdims: 0 }, 'loss');
  inferShapes(g);
  const inputName = g.inputs[0].name;
  const wrt = [inputName, ...ref.weightGrads.keys()];
  const grads = appendBackward(g, loss, wrt);
  inferShapes(g);
  g.outputs = [
    { name: feat, dtype: 'float32' },
    ...wrt.map((w) => ({ name: grads.get(w) as string, dtype: 'float32' as const })),
  ];
  const s = await loadSession(g, { noCache: true });
  const out = await s.run({ [inputName]: ortF32(ref.input.data, ref.input.shape), r: ortF32(ref.r.data, ref.r.shape) });
  const f = fromOrt(out[feat]).data as Float32Array;
  assert.ok(maxRelError(f, ref.features.data) < 1e-4, `${name} features`);
  const errs: Record<string, number> = {};
  errs.grad_input = maxRelError(fromOrt(out[grads.get(inputName) as string]).data as Float32Array, ref.gradInput.data);
  for (const [w, t] of ref.weightGrads)
    errs[w] = maxRelError(fromOrt(out[grads.get(w) as string]).data as Float32Array, t.data);
  for (const [k, e] of Object.entries(errs)) assert.ok(e < 1e-3, `${name} ${k}: rel. error ${e}`);
  await s.session.release();
  return errs;
}

test('vgg_small_tv: grad_input and conv weight gradients match PyTorch within 1e-3', async () => {
  const e = await verify('vgg_small_tv');
  if (process.env.QCB_SHOW_ERRORS) console.log(e);
});

test('convnext_small_tv (depthwise conv, decomposed LayerNorm, Erf GELU, MatMul): gradients match PyTorch', async () => {
  const e = await verify('convnext_small_tv');
  if (process.env.QCB_SHOW_ERRORS) console.log(e);
});

test('resnet18_tv (strided convs, MaxPool, residual fan-out): gradients match PyTorch', async () => {
  const e = await verify('resnet18_tv');
  if (process.env.QCB_SHOW_ERRORS) console.log(e);
});
