import assert from 'node:assert/strict';
import { test } from 'node:test';
import { extractFeatures } from '../../src/encoders/features.js';
import { resolveEncoder } from '../../src/encoders/registry.js';
import { CATALOG } from '../../src/runner/catalog.js';

test('soq-cnn and its first-order twin load as encoders: N×3×S×S → N×60, seeded, of different capacity', async () => {
  const crops = { data: new Uint8Array(4 * 3 * 32 * 32).map((_, i) => (i * 37) % 251), n: 4, channels: 3, size: 32 };
  const out: Record<string, Float32Array> = {};
  for (const name of ['soq-cnn', 'foq-cnn'] as const) {
    const enc = resolveEncoder(name);
    assert.equal(enc.kind, 'scratch');
    assert.equal(enc.dim, CATALOG.encoders[name].dim);
    const eg = await enc.load({ cropSize: 32, seed: 0 });
    const again = await enc.load({ cropSize: 32, seed: 0 });
    assert.equal(eg.dim, 60);
    const f = await extractFeatures(eg, enc.preprocess, crops, { threads: 1 });
    const g = await extractFeatures(again, enc.preprocess, crops, { threads: 1 });
    assert.equal(f.rows, 4);
    assert.equal(f.cols, 60);
    assert.deepEqual(f.data, g.data, 'same seed, same features');
    assert.ok(f.data.every(Number.isFinite));
    out[name] = f.data;
    const n = eg.params!.map((p) => eg.graph.initializers.get(p)!.data.length).reduce((a, b) => a + b, 0);
    out[`${name}:params`] = new Float32Array([n]);
  }
  // A quadratic layer has three weight sets where its twin has one.
  assert.ok(out['soq-cnn:params'][0] > 2.5 * out['foq-cnn:params'][0]);
});
