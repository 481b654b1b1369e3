import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import p from 'onnx-proto';
import { importOnnx } from '../../../src/engine/onnx/import.js';
import { QcbError } from '../../../src/errors.js';

const { onnx } = p;
const dir = mkdtempSync(join(tmpdir(), 'qcb-initcount-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** y = x + w, with `w` (dims [2, 3]) written as the given TensorProto fields; saved to a file. */
function modelFile(tag: string, w: p.onnx.ITensorProto, dtype = 1): string {
  const m: p.onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [{ opType: 'Add', input: ['x', 'w'], output: ['y'], name: 'add' }],
      initializer: [{ name: 'w', dataType: dtype, dims: [2, 3], ...w }],
      input: [
        { name: 'x', type: { tensorType: { elemType: dtype, shape: { dim: [{ dimValue: 2 }, { dimValue: 3 }] } } } },
      ],
      output: [
        { name: 'y', type: { tensorType: { elemType: dtype, shape: { dim: [{ dimValue: 2 }, { dimValue: 3 }] } } } },
      ],
    },
  };
  const file = join(dir, `${tag}.onnx`);
  writeFileSync(file, onnx.ModelProto.encode(onnx.ModelProto.create(m as p.onnx.ModelProto)).finish());
  return file;
}

function expectCountError(file: string, field: string, expected: number, found: number) {
  assert.throws(
    () => importOnnx(file),
    (e: unknown) => {
      assert.ok(e instanceof QcbError, `not a QcbError: ${e}`);
      assert.equal(e.code, 'QCB_ONNX_PARSE');
      assert.equal(e.exitCode, 2);
      assert.equal(e.context.file, file);
      assert.equal(e.context.key, 'w');
      assert.deepEqual(e.context.value, { expected, found, field });
      assert.match(e.message, /initializer 'w'/);
      assert.match(e.message, new RegExp(`should hold ${expected} .* in ${field} but holds ${found}`));
      assert.match(e.context.fix ?? '', /re-export the model/);
      assert.match(e.format(), new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      return true;
    },
  );
}

test('exact typed lists and raw_data import', () => {
  const a = importOnnx(modelFile('ok-list', { floatData: [1, 2, 3, 4, 5, 6] }));
  assert.deepEqual(Array.from(a.initializers.get('w')!.data as Float32Array), [1, 2, 3, 4, 5, 6]);
  const raw = new Uint8Array(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer);
  const b = importOnnx(modelFile('ok-raw', { rawData: raw }));
  assert.deepEqual(Array.from(b.initializers.get('w')!.data as Float32Array), [1, 2, 3, 4, 5, 6]);
});

test('a short float_data list is an error naming file, initializer, expected vs found (not zero-padded)', () => {
  expectCountError(modelFile('short-float', { floatData: [1, 2, 3, 4] }), 'float_data', 6, 4);
});

test('a long float_data list is a QCB_ONNX_PARSE error, not a RangeError', () => {
  expectCountError(modelFile('long-float', { floatData: [1, 2, 3, 4, 5, 6, 7, 8] }), 'float_data', 6, 8);
});

test('int64_data, int32_data and double_data of the wrong length are errors too', () => {
  expectCountError(modelFile('short-i64', { int64Data: [1, 2, 3] }, 7), 'int64_data', 6, 3);
  expectCountError(modelFile('long-i64', { int64Data: [1, 2, 3, 4, 5, 6, 7] }, 7), 'int64_data', 6, 7);
  expectCountError(modelFile('long-i32', { int32Data: [1, 2, 3, 4, 5, 6, 7] }, 6), 'int32_data', 6, 7);
  expectCountError(modelFile('short-f64', { doubleData: [1] }, 11), 'double_data', 6, 1);
});

test('raw_data whose byte length is not count × element size is an error (short, long, or not whole elements)', () => {
  const f32 = (k: number) => new Uint8Array(k);
  expectCountError(modelFile('raw-short', { rawData: f32(20) }), 'raw_data', 24, 20);
  expectCountError(modelFile('raw-long', { rawData: f32(28) }), 'raw_data', 24, 28);
  expectCountError(modelFile('raw-ragged', { rawData: f32(25) }), 'raw_data', 24, 25);
  expectCountError(modelFile('raw-i64-short', { rawData: new Uint8Array(40) }, 7), 'raw_data', 48, 40);
});
