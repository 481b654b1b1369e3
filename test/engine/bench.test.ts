import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { benchEngine, classifierGraph } from '../../src/engine/bench.js';

const model = fileURLToPath(new URL('../../../shared/fixtures/onnx/resnet18_tv.onnx', import.meta.url));

test('classifierGraph resizes the ResNet18 input and adds a 10-class head with a scalar loss', () => {
  const g = classifierGraph(model, 96);
  assert.deepEqual(g.values.get('features')?.shape, ['batch', 512]);
  assert.deepEqual(g.inputs.map((i) => i.name), ['input', 'labels_onehot']);
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
