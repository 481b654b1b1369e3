import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/engine/ir/builder.js';
import { exportOnnx } from '../../src/engine/onnx/export.js';
import { verifyEncoder } from '../../src/engine/verify.js';

const enc = (shape: number[], data: number[]) => ({
  shape,
  data: Buffer.from(new Float32Array(data).buffer).toString('base64'),
});

/**
 * A 2×2/2 max pool of a 1×1×4×4 image: window 0 has a near-tie (1 and 1 + 2⁻²³·8, relative gap ≈ 9.5e-7), window 1
 * an exact tie (a copied maximum: deterministic, not reported), window 2 a clear maximum, window 3 only negatives.
 */
function tieCase(): { onnx: string; ref: string } {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-verify-ties-'));
  const b = new GraphBuilder('pool_ties');
  const x = b.input('input', 'float32', ['N', 1, 4, 4]);
  const y = b.maxPool(x, { kernel: [2, 2], strides: [2, 2] });
  b.output(b.flatten(y, 1), 'features');
  const onnx = join(dir, 'pool.onnx');
  writeFileSync(onnx, exportOnnx(b.build()));
  const near = Math.fround(1 + 8 * 2 ** -23);
  // rows of the 4×4 image; windows: [0,1]×[0,1], [0,1]×[2,3], [2,3]×[0,1], [2,3]×[2,3]
  const img = [1, 0.2, 3, 3, near, 0.5, 0.1, 2, 5, 0.3, -1, -2, 0.4, 0.6, -3, -4];
  const r = [0.5, -1, 2, 1.5];
  // first-index rule (onnxruntime and PyTorch): window 0 → the larger value at (1,0), window 1 → (0,2)
  const grad = new Array(16).fill(0);
  grad[4] = r[0];
  grad[2] = r[1];
  grad[8] = r[2];
  grad[10] = r[3];
  const ref = join(dir, 'pool.ref.json');
  writeFileSync(
    ref,
    JSON.stringify({
      input: enc([1, 1, 4, 4], img),
      features: enc([1, 4], [near, 3, 5, -1]),
      r: enc([1, 4], r),
      grad_input: enc([1, 1, 4, 4], grad),
      weight_grads: {},
    }),
  );
  return { onnx, ref };
}

for (const engine of ['onnxruntime', 'tfjs'] as const) {
  test(`verify (${engine}) reports MaxPool windows whose two largest values nearly tie, not exact copies`, async () => {
    const { onnx, ref } = tieCase();
    const r = await verifyEncoder(onnx, ref, { intraOpNumThreads: 1 }, { engine });
    assert.equal(r.features, 0);
    assert.equal(r.nearTies.length, 1, JSON.stringify(r.nearTies));
    assert.equal(r.nearTies[0].windows, 1);
    const gap = (Math.fround(1 + 8 * 2 ** -23) - 1) / Math.fround(1 + 8 * 2 ** -23);
    assert.ok(Math.abs(r.nearTies[0].minRelGap - gap) < 1e-9, `${r.nearTies[0].minRelGap} vs ${gap}`);
    if (engine === 'onnxruntime') assert.equal(r.ok, true, JSON.stringify(r.items));
  });
}
