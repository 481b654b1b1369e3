import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENCODERS as BASE, resolveEncoder as resolveBase } from '../../src/encoders/registry.js';
import { IMAGENET_PREPROCESS } from '../../src/encoders/types.js';
import { importOnnx } from '../../src/engine/onnx/import.js';
import { exportOnnx } from '../../src/engine/onnx/export.js';
import { loadSession, ortF32 } from '../../src/engine/runtime/session.js';
import { randn } from '../../src/engine/ir/builder.js';
import { QcbError } from '../../src/errors.js';
import { ENCODERS, resolveEncoder } from '../../src/runner/catalog.js';
import { SSL_METHODS } from '../../src/ssl/registry.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));

test('registry: the catalogue is the encoder registry plus one encoder per SSL method, in the paper order', () => {
  assert.deepEqual(Object.keys(ENCODERS), [
    'vgg16',
    'resnet18',
    'convnext_tiny',
    'simclr',
    'barlow_twins',
    'vicreg',
    'deepclusterv2',
    'swav',
    'random-resnet18',
    'resnet18-fractaldb',
    'soq-cnn',
    'foq-cnn',
    'cp-quality',
  ]);
  for (const [name, e] of Object.entries(ENCODERS)) {
    assert.equal(e.name, name);
    assert.ok(e.label && e.description, name);
    assert.equal(e.preprocess.mean.length, 3);
    if (Object.hasOwn(BASE, name)) assert.equal(e, BASE[name as keyof typeof BASE]);
  }
  for (const m of Object.keys(SSL_METHODS)) assert.equal(ENCODERS[m].kind, 'ssl');
  // the base resolver knows no SSL name; the catalogue's does
  assert.throws(
    () => resolveBase('simclr'),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_UNKNOWN_NAME',
  );
  assert.equal(resolveEncoder('simclr').kind, 'ssl');
  assert.deepEqual(
    ['vgg16', 'resnet18', 'convnext_tiny'].map((n) => [ENCODERS[n].dim, ENCODERS[n].preprocess]),
    [
      [512, IMAGENET_PREPROCESS],
      [512, IMAGENET_PREPROCESS],
      [768, IMAGENET_PREPROCESS],
    ],
  );
});

test('registry: unknown names suggest the closest; SSL names need the pretraining output', async () => {
  assert.throws(
    () => resolveEncoder('convnext'),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_UNKNOWN_NAME' && /convnext_tiny/.test(e.context.fix!),
  );
  await assert.rejects(
    ENCODERS.simclr.load({ cropSize: 32, seed: 0 }),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_FILE_NOT_FOUND' &&
      /qcbench pretrain --method simclr/.test(e.context.fix!),
  );
  const eg = await ENCODERS.swav.load({ cropSize: 64, seed: 0, pretrained: join(FIX, 'resnet18_tv.onnx') });
  assert.equal(eg.dim, 512);
  assert.equal(eg.source.method, 'swav');
});

test('registry: any ONNX file is an encoder; qcbench metadata sets its kind, label and normalisation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-reg-'));
  copyFileSync(join(FIX, 'convnext_small_tv.onnx'), join(dir, 'mine.onnx'));
  const e = resolveEncoder(join(dir, 'mine.onnx'));
  assert.equal(e.name, 'mine');
  assert.equal(e.kind, 'tl');
  assert.deepEqual(e.preprocess, IMAGENET_PREPROCESS);
  const eg = await e.load({ cropSize: 32, seed: 0 });
  assert.equal(eg.dim, 192);
  const g = importOnnx(join(FIX, 'vgg_small_tv.onnx'));
  const meta = {
    'qcbench.kind': 'ssl',
    'qcbench.label': 'My SimCLR',
    'qcbench.preprocess.mean': '[0.1,0.2,0.3]',
    'qcbench.preprocess.std': '[0.5,0.5,0.5]',
  };
  writeFileSync(join(dir, 'ssl.onnx'), exportOnnx(g, { metadata: meta }));
  const s = resolveEncoder(join(dir, 'ssl.onnx'));
  assert.equal(s.kind, 'ssl');
  assert.equal(s.label, 'My SimCLR');
  assert.deepEqual(s.preprocess, { mean: [0.1, 0.2, 0.3], std: [0.5, 0.5, 0.5] });
  assert.throws(
    () => resolveEncoder(join(dir, 'nope.onnx')),
    (e2: unknown) => e2 instanceof QcbError && e2.code === 'QCB_FILE_NOT_FOUND',
  );
});

test('random-resnet18: the untrained control is torchvision-initialised, seeded, N×512', async () => {
  const a = await ENCODERS['random-resnet18'].load({ cropSize: 32, seed: 4 });
  const b = await ENCODERS['random-resnet18'].load({ cropSize: 32, seed: 4 });
  const c = await ENCODERS['random-resnet18'].load({ cropSize: 32, seed: 5 });
  assert.equal(a.dim, 512);
  assert.equal(a.params!.length, 60);
  assert.equal(a.bnNodes!.length, 20);
  assert.deepEqual(a.graph.initializers.get('conv1.weight')!.data, b.graph.initializers.get('conv1.weight')!.data);
  assert.notDeepEqual(a.graph.initializers.get('conv1.weight')!.data, c.graph.initializers.get('conv1.weight')!.data);
  assert.equal(ENCODERS['random-resnet18'].kind, 'control');
  const s = await loadSession(a.graph, { intraOpNumThreads: 1 });
  const f = (
    await s.run({ input: ortF32(randn([2, 3, 32, 32], 1, 1).data as Float32Array, [2, 3, 32, 32]) }, ['features'])
  ).features;
  assert.deepEqual(f.dims, [2, 512]);
});
