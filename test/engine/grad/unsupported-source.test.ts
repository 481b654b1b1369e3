import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import p from 'onnx-proto';
import { appendBackward, supportedGradOps } from '../../../src/engine/grad/autodiff.js';
import { importOnnx } from '../../../src/engine/onnx/import.js';
import { cloneGraph, compileTrainStep } from '../../../src/engine/train/compile.js';
import { Sgd } from '../../../src/engine/train/optim/index.js';
import { verificationGraph } from '../../../src/engine/verify.js';
import { QcbError } from '../../../src/errors.js';

const { onnx } = p;
const dir = mkdtempSync(join(tmpdir(), 'qcb-unsup-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** features = Sin(x · w) (Sin has a shape rule but no gradient rule), loss = ReduceSum(features), saved to a file. */
function sinModel(): string {
  const f32 = (dims: number[]) => ({
    tensorType: { elemType: 1, shape: { dim: dims.map((d) => ({ dimValue: d })) } },
  });
  const m: p.onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [
        { opType: 'Mul', input: ['x', 'w'], output: ['xw'], name: 'scale' },
        { opType: 'Sin', input: ['xw'], output: ['features'], name: 'the_sine' },
        {
          opType: 'ReduceSum',
          input: ['features'],
          output: ['loss'],
          name: 'sum',
          attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
        },
      ],
      initializer: [{ name: 'w', dataType: 1, dims: [3], floatData: [0.5, 1, 2] }],
      input: [{ name: 'x', type: f32([2, 3]) }],
      output: [
        { name: 'features', type: f32([2, 3]) },
        { name: 'loss', type: f32([]) },
      ],
    },
  };
  const file = join(dir, 'sine-model.onnx');
  writeFileSync(file, onnx.ModelProto.encode(onnx.ModelProto.create(m as p.onnx.ModelProto)).finish());
  return file;
}

function isUnsupported(file: string) {
  return (e: unknown) => {
    assert.ok(e instanceof QcbError, `not a QcbError: ${e}`);
    assert.equal(e.code, 'QCB_ONNX_UNSUPPORTED_OP');
    assert.equal(e.context.file, file);
    assert.equal(e.context.key, 'the_sine');
    assert.equal(e.context.value, 'Sin');
    assert.equal(e.context.allowed, supportedGradOps().join(', '));
    const text = e.format();
    for (const s of [file, 'Sin', 'the_sine', 'Conv', 'BatchNormalization'])
      assert.ok(text.includes(s), `no '${s}' in\n${text}`);
    return true;
  };
}

test('importOnnx records the source file on the graph, and cloneGraph keeps it', () => {
  const file = sinModel();
  const g = importOnnx(file);
  assert.equal(g.source, file);
  assert.equal(cloneGraph(g).source, file);
});

test('autodiff of an imported graph names the model file, op type, node and supported ops without being told the file', () => {
  const file = sinModel();
  assert.throws(() => appendBackward(importOnnx(file), 'loss', ['w']), isUnsupported(file));
});

test('compileTrainStep of an imported graph with an op lacking a gradient rule names the model file', () => {
  const file = sinModel();
  assert.throws(
    () => compileTrainStep({ graph: importOnnx(file), loss: 'loss', optimizer: new Sgd({ momentum: 0.9 }) }),
    isUnsupported(file),
  );
});

test('encoder verification graph of such a model names the model file', () => {
  const file = sinModel();
  const g = importOnnx(file);
  g.outputs = g.outputs.filter((o) => o.name === 'features');
  assert.throws(() => verificationGraph(g, ['w']), isUnsupported(file));
  assert.throws(() => verificationGraph(importOnnx(file), ['w'], file), isUnsupported(file));
});
