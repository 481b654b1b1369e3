import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadImageNetEncoder } from '../../src/encoders/imagenet.js';
import { loadOnnxEncoder } from '../../src/encoders/onnx-file.js';
import { resnet18Graph } from '../../src/encoders/resnet18.js';
import { writeSafetensors } from '../../src/encoders/safetensors.js';
import { WEIGHTS } from '../../src/encoders/weights.js';
import { GraphBuilder, randn, zeros } from '../../src/engine/ir/builder.js';
import type { Tensor } from '../../src/engine/ir/graph.js';
import { exportOnnx } from '../../src/engine/onnx/export.js';
import { importOnnx } from '../../src/engine/onnx/import.js';
import { maxRelError, readReference } from '../../src/engine/onnx/reference.js';
import { loadSession, ortF32 } from '../../src/engine/runtime/session.js';
import { QcbError } from '../../src/errors.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));

function weightsDirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-weights-'));
  for (const [to, from] of Object.entries(files)) copyFileSync(join(FIX, from), join(dir, to));
  return dir;
}

async function features(g: Parameters<typeof loadSession>[0], x: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await loadSession(g, { intraOpNumThreads: 1 });
  return (await s.run({ input: ortF32(x, dims) }, ['features'])).features.data as Float32Array;
}

test('imagenet: fixture ONNX files load under the expected names and give the features torch computed', async () => {
  const dir = weightsDirWith({
    'resnet18.onnx': 'resnet18_tv.onnx',
    'vgg16.onnx': 'vgg_small_tv.onnx',
    'convnext_tiny.onnx': 'convnext_small_tv.onnx',
  });
  const expect = {
    resnet18: ['resnet18_tv', 512],
    vgg16: ['vgg_small_tv', 128],
    convnext_tiny: ['convnext_small_tv', 192],
  } as const;
  for (const [name, [fix, dim]] of Object.entries(expect)) {
    const eg = await loadImageNetEncoder(name as keyof typeof WEIGHTS, { cropSize: 64, seed: 0, weightsDir: dir });
    assert.equal(eg.dim, dim, name);
    assert.deepEqual(eg.graph.values.get('features')!.shape, ['N', dim]);
    assert.equal(eg.inputSize, undefined, `${name} takes the crop size`);
    assert.equal(eg.source.weights, 'imagenet');
    const ref = readReference(join(FIX, `${fix}.ref.json`));
    const got = await features(eg.graph, ref.input.data, ref.input.shape);
    assert.ok(maxRelError(got, ref.features.data) < 1e-4, `${name}: features differ from torch`);
  }
});

test('imagenet: a 64×64 export is relaxed to other crop sizes (global pool) and keeps its width', async () => {
  const eg = loadOnnxEncoder(join(FIX, 'resnet18_tv.onnx'), 32);
  assert.deepEqual(eg.graph.inputs[0].shape, ['N', 3, 32, 32]);
  const f = await features(eg.graph, randn([2, 3, 32, 32], 1, 3).data as Float32Array, [2, 3, 32, 32]);
  assert.equal(f.length, 2 * 512);
  assert.ok(f.every(Number.isFinite));
});

test('imagenet: a classifier (GlobalAveragePool → Flatten → Gemm) is cut at the pooled features', async () => {
  const g = importOnnx(join(FIX, 'resnet18_tv.onnx'));
  const b = new GraphBuilder(g);
  const w = b.param('fc.weight', randn([10, 512], 0.05, 4));
  const bias = b.param('fc.bias', zeros([10]));
  g.outputs = [];
  b.output(b.gemm('features', w, bias, { transB: true }), 'logits');
  b.build();
  const dir = mkdtempSync(join(tmpdir(), 'qcb-cls-'));
  writeFileSync(join(dir, 'resnet18.onnx'), exportOnnx(g));
  const eg = loadOnnxEncoder(join(dir, 'resnet18.onnx'), 64);
  assert.equal(eg.info.cut, 'classifier-cut');
  assert.equal(eg.dim, 512);
  assert.ok(!eg.graph.initializers.has('fc.weight'), 'the classifier is pruned');
  const ref = readReference(join(FIX, 'resnet18_tv.ref.json'));
  const got = await features(eg.graph, ref.input.data, ref.input.shape);
  assert.ok(maxRelError(got, ref.features.data) < 1e-4);
});

test('imagenet: a VGG-style head (map with spatial extent → Flatten → MLP) is replaced by a global average pool', async () => {
  const b = new GraphBuilder('vggish');
  const x = b.input('images', 'float32', ['batch', 3, 16, 16]);
  const c = b.relu(b.conv(x, b.param('c.weight', randn([8, 3, 3, 3], 0.3, 5)), undefined, { pads: [1, 1, 1, 1] }));
  const p = b.averagePool(b.maxPool(c, { kernel: [2, 2], strides: [2, 2] }), { kernel: [1, 1] });
  const flat = b.flatten(p);
  const h = b.relu(b.gemm(flat, b.param('fc1.weight', randn([32, 8 * 64], 0.05, 6)), undefined, { transB: true }));
  b.output(b.gemm(h, b.param('fc2.weight', randn([5, 32], 0.05, 7)), undefined, { transB: true }), 'logits');
  const dir = mkdtempSync(join(tmpdir(), 'qcb-vgg-'));
  writeFileSync(join(dir, 'm.onnx'), exportOnnx(b.build()));
  const eg = loadOnnxEncoder(join(dir, 'm.onnx'), 24);
  assert.equal(eg.info.cut, 'pooled-before-flatten');
  assert.equal(eg.dim, 8);
  assert.equal(eg.graph.inputs[0].name, 'input');
  const f = await features(eg.graph, randn([3, 3, 24, 24], 1, 8).data as Float32Array, [3, 3, 24, 24]);
  assert.equal(f.length, 3 * 8);
  assert.ok(
    f.every((v) => v >= 0),
    'mean of ReLU outputs',
  );
});

test('imagenet: missing weights throw QCB_WEIGHTS_MISSING naming the folder and the fix command', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-empty-'));
  await assert.rejects(
    loadImageNetEncoder('convnext_tiny', { cropSize: 64, seed: 0, weightsDir: dir }),
    (e: unknown) => {
      assert.ok(e instanceof QcbError);
      assert.equal(e.code, 'QCB_WEIGHTS_MISSING');
      assert.match(e.context.fix!, /qcbench weights fetch convnext_tiny/);
      assert.ok(e.message.includes(dir));
      return true;
    },
  );
});

test('imagenet: timm/torchvision safetensors map onto the engine ResNet18 by state_dict name', async () => {
  const { graph, result } = resnet18Graph({ seed: 11, cropSize: 32 });
  const sd = new Map<string, Tensor>();
  for (const n of [...result.params, ...result.buffers]) sd.set(n, graph.initializers.get(n)!);
  sd.set('fc.weight', randn([1000, 512], 0.01, 1));
  sd.set('fc.bias', zeros([1000]));
  const dir = mkdtempSync(join(tmpdir(), 'qcb-st-'));
  writeSafetensors(join(dir, WEIGHTS.resnet18.safetensors), sd);
  const eg = await loadImageNetEncoder('resnet18', { cropSize: 32, seed: 0, weightsDir: dir });
  assert.equal(eg.source.format, 'safetensors');
  assert.deepEqual(eg.source.unused_tensors, ['fc.weight', 'fc.bias']);
  assert.deepEqual(
    eg.graph.initializers.get('layer3.0.conv1.weight')!.data,
    graph.initializers.get('layer3.0.conv1.weight')!.data,
  );
  assert.equal(eg.params!.length, 60);
  assert.equal(eg.bnNodes!.length, 20);
  // a truncated download is a format error, not a crash
  const bytes = readFileSync(join(dir, WEIGHTS.resnet18.safetensors));
  writeFileSync(join(dir, WEIGHTS.resnet18.safetensors), bytes.subarray(0, bytes.length - 1000));
  await assert.rejects(
    loadImageNetEncoder('resnet18', { cropSize: 32, seed: 0, weightsDir: dir }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FILE_FORMAT',
  );
});

test('imagenet: an export with a hard-coded flatten size keeps its input size; crops are resized to it', async () => {
  const { extractFeatures } = await import('../../src/encoders/features.js');
  const b = new GraphBuilder('fixed');
  const x = b.input('x', 'float32', ['batch', 3, 16, 16]);
  const c = b.relu(
    b.conv(x, b.param('c.weight', randn([2, 3, 3, 3], 0.3, 5)), undefined, { pads: [1, 1, 1, 1], strides: [2, 2] }),
  );
  b.output(b.reshape(c, [-1, 2 * 8 * 8]), 'features');
  const dir = mkdtempSync(join(tmpdir(), 'qcb-fixed-'));
  writeFileSync(join(dir, 'f.onnx'), exportOnnx(b.build()));
  const eg = loadOnnxEncoder(join(dir, 'f.onnx'), 32);
  assert.equal(eg.inputSize, 16);
  assert.equal(eg.dim, 128);
  const crops = { data: Uint8Array.from({ length: 2 * 3 * 32 * 32 }, (_, i) => i % 251), n: 2, channels: 3, size: 32 };
  const f = await extractFeatures(eg, { mean: [0, 0, 0], std: [1, 1, 1] }, crops, { threads: 1 });
  assert.equal(f.rows, 2);
  assert.equal(f.data.length, 2 * 128);
});
