import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BUILTIN_MODEL, benchEngine, classifierGraph, resnet18ClassifierGraph } from '../../src/bench/engine.js';
import { inferenceGraph } from '../../src/engine/train/export-inference.js';
import { Sgd } from '../../src/engine/train/optim/sgd.js';
import { compileTrainStep } from '../../src/engine/train/compile.js';
import { QcbError } from '../../src/errors.js';

const model = fileURLToPath(new URL('../../../shared/fixtures/onnx/resnet18_tv.onnx', import.meta.url));

test('the default bench model is torchvision ResNet18 with BatchNorm + a 10-class head and a scalar loss', () => {
  const g = resnet18ClassifierGraph(32);
  assert.deepEqual(
    g.inputs.map((i) => [i.name, i.shape]),
    [
      ['input', ['N', 3, 32, 32]],
      ['labels_onehot', ['N', 10]],
    ],
  );
  assert.deepEqual(g.values.get('features')?.shape, ['N', 512]);
  assert.deepEqual(g.values.get('loss')?.shape, []);
  assert.equal(g.nodes.filter((n) => n.opType === 'BatchNormalization').length, 20);
  assert.equal(g.nodes.filter((n) => n.opType === 'Conv').length, 20);
  // torchvision layout: convolutions without bias
  assert.ok(g.nodes.filter((n) => n.opType === 'Conv').every((n) => n.inputs.length === 2));
  assert.ok(g.initializers.has('layer2.0.downsample.1.running_var'));
});

test('its training step trains every BatchNorm (running statistics carried) and the features model is BN inference', () => {
  const g = resnet18ClassifierGraph(32);
  const c = compileTrainStep({ graph: g, loss: 'loss', optimizer: new Sgd({ momentum: 0.9, weightDecay: 1e-4 }) });
  const stats = c.state.filter((s) => /running_(mean|var)$/.test(s.name));
  assert.equal(stats.length, 40);
  assert.ok(c.params.some((p) => p.name === 'bn1.weight') && c.params.some((p) => p.name === 'head.weight'));
  assert.ok(c.params.some((p) => p.name === 'conv1.weight'));
  const f = inferenceGraph(c.forward, { outputs: ['features'] });
  assert.deepEqual(
    f.inputs.map((i) => i.name),
    ['input'],
  );
  const bns = f.nodes.filter((n) => n.opType === 'BatchNormalization');
  assert.equal(bns.length, 20);
  assert.ok(bns.every((n) => !n.attrs.training_mode && n.outputs.length === 1));
});

test('classifierGraph (--model FILE) resizes the imported ResNet18 input and adds a 10-class head with a scalar loss', () => {
  const g = classifierGraph(model, 96);
  assert.deepEqual(g.values.get('features')?.shape, ['batch', 512]);
  assert.deepEqual(
    g.inputs.map((i) => i.name),
    ['input', 'labels_onehot'],
  );
  assert.deepEqual(g.inputs[0].shape, ['batch', 3, 96, 96]);
  assert.deepEqual(g.values.get('loss')?.shape, []);
});

test('bench engine measures training and features of the default BN ResNet18 on a tiny run (no timing asserted)', async () => {
  const r = await benchEngine({ batch: 2, size: 32, steps: 1, threads: 2, torch: false });
  assert.equal(r.model, BUILTIN_MODEL);
  assert.equal(r.bn_training_nodes, 20);
  assert.ok(r.train_img_s > 0 && Number.isFinite(r.train_img_s));
  assert.ok(r.features_img_s > 0);
  assert.ok(r.peak_rss_gb > 0.05);
  assert.equal(r.step_seconds.length, 1);
  assert.equal(r.torch, undefined);
});

test('bench engine --model benchmarks an imported ONNX file as it is (the fixture has BN folded)', async () => {
  const r = await benchEngine({ model, batch: 2, size: 32, steps: 1, threads: 2, torch: false });
  assert.equal(r.model, model);
  assert.equal(r.bn_training_nodes, 0);
  assert.ok(r.train_img_s > 0 && r.features_img_s > 0);
});

test('a batch of one is refused for BatchNorm in training mode', async () => {
  await assert.rejects(
    benchEngine({ batch: 1, size: 32, steps: 1, torch: false }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE' && e.context.key === '--batch',
  );
});

const torchPython = ['python3', '/usr/bin/python3'].find(
  (py) => spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0,
);

test('bench runs the same step in a PyTorch child process (ResNet18 with BatchNorm), in blocks or paired', {
  skip: torchPython ? false : 'no python3 with torch',
}, async () => {
  for (const paired of [false, true]) {
    const r = await benchEngine({ batch: 2, size: 32, steps: 2, threads: 1, torch: true, paired });
    assert.ok(r.torch && 'train_img_s' in r.torch, JSON.stringify(r.torch));
    assert.ok(r.torch.train_img_s > 0 && r.torch.features_img_s > 0 && r.torch.peak_rss_gb > 0);
    assert.ok(r.ratio_train! > 0 && r.ratio_features! > 0);
    if (!paired) {
      // blocks: the ratio is the ratio of the two medians
      const ratio = r.train_img_s / r.torch.train_img_s; // engine speed over PyTorch speed
      assert.ok(Math.abs(r.ratio_train! / ratio - 1) < 1e-9, `${r.ratio_train} vs ${ratio}`);
    }
  }
});
