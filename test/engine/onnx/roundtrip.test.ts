import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exportOnnx } from '../../../src/engine/onnx/export.js';
import { importOnnx } from '../../../src/engine/onnx/import.js';
import { maxRelError, readReference } from '../../../src/engine/onnx/reference.js';
import { loadSession, ortF32 } from '../../../src/engine/runtime/session.js';
import { QcbError } from '../../../src/errors.js';

const fixtures = fileURLToPath(new URL('../../../../shared/fixtures/onnx/', import.meta.url));

for (const name of ['resnet18_tv', 'vgg_small_tv', 'convnext_small_tv']) {
  test(`${name}: import → export → onnxruntime matches the torch features within 1e-5 × max|ref|`, async () => {
    const g = importOnnx(join(fixtures, `${name}.onnx`));
    const bytes = exportOnnx(g);
    const ref = readReference(join(fixtures, `${name}.ref.json`));
    const s = await loadSession(bytes, { noCache: true });
    const out = await s.run({ input: ortF32(ref.input.data, ref.input.shape) });
    const f = out.features;
    assert.deepEqual([...f.dims], ref.features.shape);
    const err = maxRelError(f.data as Float32Array, ref.features.data);
    assert.ok(err <= 1e-5, `relative error ${err}`);
    await s.session.release();
  });
}

test('export keeps initializers, opset and symbolic batch; re-import gives the same graph interface', () => {
  const g = importOnnx(join(fixtures, 'vgg_small_tv.onnx'));
  const g2 = importOnnx(exportOnnx(g));
  assert.equal(g2.opset, g.opset);
  assert.deepEqual(g2.inputs, g.inputs);
  assert.deepEqual(
    g2.outputs.map((o) => [o.name, o.shape]),
    [['features', ['batch', 128]]],
  );
  assert.equal(g2.initializers.size, g.initializers.size);
  for (const [k, t] of g.initializers) assert.deepEqual(g2.initializers.get(k)!.data, t.data, k);
});

test('Identity of an initializer is folded into a separate copy (torch dedups equal parameters)', () => {
  const g = importOnnx(join(fixtures, 'vgg_small_tv.onnx'));
  assert.ok(!g.nodes.some((n) => n.opType === 'Identity'));
  const a = g.initializers.get('0.11.bias')!;
  const b = g.initializers.get('0.13.bias')!;
  assert.deepEqual(b.data, a.data);
  assert.notEqual(b.data, a.data);
  const kept = importOnnx(join(fixtures, 'vgg_small_tv.onnx'), { foldIdentity: false });
  assert.equal(kept.nodes.filter((n) => n.opType === 'Identity').length, 2);
});

test('convnext Constant nodes become initializers', () => {
  const g = importOnnx(join(fixtures, 'convnext_small_tv.onnx'));
  assert.ok(!g.nodes.some((n) => n.opType === 'Constant'));
  assert.ok(g.initializers.size > 33);
});

test('a truncated or garbage ONNX file gives QCB_ONNX_PARSE naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-onnx-'));
  const full = readFileSync(join(fixtures, 'vgg_small_tv.onnx'));
  const cut = join(dir, 'cut.onnx');
  writeFileSync(cut, full.subarray(0, Math.floor(full.length * 0.6)));
  assert.throws(
    () => importOnnx(cut),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ONNX_PARSE' && e.context.file === cut,
  );
  const junk = join(dir, 'junk.onnx');
  writeFileSync(junk, 'this is not a protobuf at all, just text\n');
  assert.throws(
    () => importOnnx(junk),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ONNX_PARSE',
  );
  assert.throws(
    () => importOnnx(join(dir, 'missing.onnx')),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FILE_NOT_FOUND',
  );
});
