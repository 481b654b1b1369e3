import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { benchEngine, classifierGraph } from '../../src/engine/bench.js';

const model = fileURLToPath(new URL('../../../shared/fixtures/onnx/resnet18_tv.onnx', import.meta.url));

test('classifierGraph resizes the ResNet18 input and adds a 10-class head with a scalar loss', () => {
  const g = classifierGraph(model, 96);
  assert.deepEqual(g.values.get('features')?.shape, ['batch', 512]);
  assert.deepEqual(
    g.inputs.map((i) => i.name),
    ['input', 'labels_onehot'],
  );
  assert.deepEqual(g.inputs[0].shape, ['batch', 3, 96, 96]);
  assert.deepEqual(g.values.get('loss')?.shape, []);
});

test('bench engine measures training and features on a tiny ResNet18 run (no timing asserted)', async () => {
  const r = await benchEngine({ model, batch: 2, size: 64, steps: 1, threads: 2, torch: false });
  assert.ok(r.train_img_s > 0 && Number.isFinite(r.train_img_s));
  assert.ok(r.features_img_s > 0);
  assert.ok(r.peak_rss_gb > 0.05);
  assert.equal(r.step_seconds.length, 1);
  assert.equal(r.torch, undefined);
});

const torchPython = ['python3', '/usr/bin/python3'].find(
  (py) => spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0,
);

test('bench interleaves a PyTorch child process step by step where torch is installed', {
  skip: torchPython ? false : 'no python3 with torch',
}, async () => {
  const r = await benchEngine({ model, batch: 1, size: 32, steps: 1, threads: 1, torch: true });
  assert.ok(r.torch && 'train_img_s' in r.torch, JSON.stringify(r.torch));
  assert.ok(r.torch.train_img_s > 0 && r.torch.features_img_s > 0 && r.torch.peak_rss_gb > 0);
  assert.ok(r.ratio_train! > 0 && r.ratio_features! > 0);
});
