import assert from 'node:assert/strict';
import { test } from 'node:test';
import p from 'onnx-proto';
import { fromArray } from '../../../src/engine/ir/builder.js';
import { exportOnnx } from '../../../src/engine/onnx/export.js';
import { importOnnx } from '../../../src/engine/onnx/import.js';
import { loadSession, toOrt } from '../../../src/engine/runtime/session.js';
import { QcbError } from '../../../src/errors.js';

const { onnx } = p;
const T = onnx.AttributeProto.AttributeType;

/** A hand-written ModelProto as other exporters write it: typed-list initializers (int64 as Long), opset-10 attributes. */
function model(opts: { external?: boolean; opset?: number } = {}): Uint8Array {
  const m: p.onnx.IModelProto = {
    irVersion: 6,
    opsetImport: [{ domain: '', version: opts.opset ?? 10 }],
    graph: {
      name: 'g',
      node: [
        { opType: 'Add', input: ['x', 'bias'], output: ['a'], name: 'add' },
        { opType: 'Reshape', input: ['a', 'shape'], output: ['r'], name: 'reshape' },
        {
          opType: 'ReduceSum',
          input: ['r'],
          output: ['s'],
          name: 'sum',
          attribute: [
            { name: 'axes', type: T.INTS, ints: [1] },
            { name: 'keepdims', type: T.INT, i: 0 },
          ],
        },
        {
          opType: 'Unsqueeze',
          input: ['s'],
          output: ['u'],
          name: 'unsq',
          attribute: [{ name: 'axes', type: T.INTS, ints: [1] }],
        },
        {
          opType: 'Clip',
          input: ['u'],
          output: ['y'],
          name: 'clip',
          attribute: [
            { name: 'min', type: T.FLOAT, f: 0 },
            { name: 'max', type: T.FLOAT, f: 30 },
          ],
        },
      ],
      initializer: [
        {
          name: 'bias',
          dataType: 1,
          dims: [3],
          floatData: [1, 2, 3],
          ...(opts.external
            ? { dataLocation: 1, externalData: [{ key: 'location', value: 'w.bin' }], floatData: [] }
            : {}),
        },
        { name: 'shape', dataType: 7, dims: [2], int64Data: [-1, 6] },
      ],
      input: [
        { name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'N' }, { dimValue: 3 }] } } } },
      ],
      output: [
        { name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'M' }, { dimValue: 1 }] } } } },
      ],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(m as p.onnx.ModelProto)).finish();
}

test('imports typed-list initializers (float_data, int64_data decoded as Long) and infers shapes through Reshape(-1)', () => {
  const g = importOnnx(model());
  assert.deepEqual(Array.from(g.initializers.get('bias')!.data as Float32Array), [1, 2, 3]);
  assert.deepEqual(Array.from(g.initializers.get('shape')!.data as BigInt64Array), [-1n, 6n]);
  assert.equal(g.opset, 10);
  assert.deepEqual(g.values.get('r')?.shape, ['N*3/6', 6]);
  assert.deepEqual(g.values.get('y')?.shape, ['N*3/6', 1]);
});

test('an opset-10 model upgraded to 17 (attrs → inputs) computes the same in onnxruntime', async () => {
  const { upgradeOpset } = await import('../../../src/engine/ir/opset.js');
  const { inferShapes } = await import('../../../src/engine/ir/shapes.js');
  const x = fromArray([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [4, 3]);
  const before = await loadSession(model(), { noCache: true });
  const want = (await before.run({ x: toOrt(x) })).y.data as Float32Array;
  const g = importOnnx(model());
  upgradeOpset(g, 17);
  inferShapes(g);
  assert.equal(g.opset, 17);
  assert.ok(!g.nodes.find((n) => n.opType === 'ReduceSum')!.attrs.axes);
  assert.equal(g.nodes.find((n) => n.opType === 'Clip')!.inputs.length, 3);
  const after = await loadSession(exportOnnx(g), { noCache: true });
  const got = (await after.run({ x: toOrt(x) })).y.data as Float32Array;
  assert.deepEqual(Array.from(got), Array.from(want));
  // x + bias reshaped to 2×6: row sums 27 and 63, clipped to [0, 30]
  assert.deepEqual(Array.from(got), [27, 30]);
});

test('external tensor data is refused with QCB_ONNX_PARSE naming the tensor and the fix', () => {
  assert.throws(
    () => importOnnx(model({ external: true }), { file: 'm.onnx' }),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_ONNX_PARSE' &&
      e.context.key === 'bias' &&
      /external/.test(e.message) &&
      /save_as_external_data/.test(e.context.fix ?? ''),
  );
});
