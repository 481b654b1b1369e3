import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveEncoder } from '../../src/runner/catalog.js';
import { type CropSet, extractFeatures, int8Encoder } from '../../src/encoders/features.js';
import { integerKernels, optimizedOpTypes } from '../../src/engine/quantize/index.js';
import { exportOnnx } from '../../src/engine/onnx/export.js';
import { spearman } from '../../src/metrics/rank.js';
import { mulberry32 } from '../../src/util/random.js';

test('int8 frozen features: integer kernels, close to fp32, one quantised encoder per graph, onnxruntime only', async () => {
  const S = 32;
  const enc = resolveEncoder('random-resnet18');
  const eg = await enc.load({ cropSize: S, seed: 0, threads: 2 });
  const rnd = mulberry32(5);
  const n = 48;
  // smooth blobs (not white noise): activations with structure, as crops have
  const data = new Uint8Array(n * 3 * S * S);
  for (let k = 0; k < n; k++) {
    const cx = rnd() * S;
    const cy = rnd() * S;
    const r = 4 + rnd() * 8;
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < S; y++)
        for (let x = 0; x < S; x++) {
          const v = 255 * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r)) * (0.5 + c / 4) + rnd() * 20;
          data[((k * 3 + c) * S + y) * S + x] = Math.min(255, v);
        }
  }
  const crops: CropSet = { data, n, channels: 3, size: S };
  const a = await extractFeatures(eg, enc.preprocess, crops, { threads: 2 });
  const b = await extractFeatures(eg, enc.preprocess, crops, { threads: 2, precision: 'int8' });
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.data.length; i++) {
    num += (a.data[i] - b.data[i]) ** 2;
    den += a.data[i] ** 2;
  }
  const rel = Math.sqrt(num / den);
  assert.ok(rel < 0.15, `relative feature error ${rel}`);
  assert.ok(spearman(a.data, b.data) > 0.95);
  const q1 = await int8Encoder(eg, enc.preprocess, crops);
  const q2 = await int8Encoder(eg, enc.preprocess, { ...crops, n: 8 });
  assert.equal(q1, q2, 'calibrated once per encoder graph');
  assert.equal(q1.report.int8_ops.Conv, 20);
  assert.equal(q1.report.samples, n);
  const k = integerKernels(await optimizedOpTypes(exportOnnx(q1.graph)));
  assert.equal(k['com.microsoft.QLinearConv'], 20);
  await assert.rejects(
    extractFeatures(eg, enc.preprocess, crops, { engine: 'tfjs', precision: 'int8' }),
    (e: Error & { code?: string }) => e.code === 'QCB_USAGE' && /onnxruntime only/.test(e.message),
  );
});
