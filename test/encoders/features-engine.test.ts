import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadOnnxEncoder } from '../../src/encoders/onnx-file.js';
import { extractFeatures, setFeatureEngine } from '../../src/encoders/features.js';
import { maxRelError } from '../../src/engine/onnx/reference.js';
import { synthCrops } from '../downstream/synth-crops.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));
const PRE = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

// `eval --engine tfjs`: frozen features from the TF.js interpreter agree with onnxruntime's on real crops.
for (const name of ['vgg_small_tv', 'convnext_small_tv']) {
  test(`extractFeatures on the TF.js interpreter matches onnxruntime (${name})`, async () => {
    const S = 24;
    const { crops } = synthCrops(10, S, 5);
    const eg = loadOnnxEncoder(join(FIX, `${name}.onnx`), S);
    const ort = await extractFeatures(eg, PRE, crops, { threads: 1, batchSize: 4 });
    const tfjs = await extractFeatures(eg, PRE, crops, { engine: 'tfjs', batchSize: 4 });
    assert.equal(tfjs.rows, crops.n);
    assert.equal(tfjs.cols, eg.dim);
    const e = maxRelError(tfjs.data, ort.data);
    assert.ok(e <= 1e-4, `max relative difference ${e}`);
    // the process-wide default (`eval --engine`) routes calls that name no engine
    const prev = setFeatureEngine('tfjs');
    try {
      const viaDefault = await extractFeatures(eg, PRE, crops, { batchSize: 4 });
      assert.deepEqual(viaDefault.data, tfjs.data);
    } finally {
      setFeatureEngine(prev);
    }
  });
}
