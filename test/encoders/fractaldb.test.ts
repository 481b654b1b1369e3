import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateFractalDb, renderInstance, sampleCategories } from '../../src/encoders/fractal/ifs.js';
import { loadFractalDbResNet18, pretrainFractalDb } from '../../src/encoders/fractaldb.js';
import { ENCODERS } from '../../src/encoders/registry.js';
import { Logger } from '../../src/util/log.js';

const quiet = new Logger({ quiet: true });

function diff(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]);
  return d / a.length;
}

test('fractal: images are deterministic by seed and distinct per category and per instance', () => {
  const a = generateFractalDb({ categories: 4, instances: 3, size: 32, seed: 5 });
  const b = generateFractalDb({ categories: 4, instances: 3, size: 32, seed: 5 });
  const c = generateFractalDb({ categories: 4, instances: 3, size: 32, seed: 6 });
  assert.deepEqual(a.images, b.images);
  assert.notDeepEqual(a.images, c.images);
  assert.deepEqual([...a.labels], [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
  const per = 3 * 32 * 32;
  const img = (k: number) => a.images.subarray(k * per, (k + 1) * per);
  // every image draws a visible attractor
  for (let k = 0; k < 12; k++) assert.ok(img(k).filter((v) => v > 0).length > 0.03 * per, `image ${k} is nearly empty`);
  // categories differ from each other; instances of a category vary
  for (let c1 = 0; c1 < 4; c1++)
    for (let c2 = c1 + 1; c2 < 4; c2++)
      assert.ok(diff(img(3 * c1), img(3 * c2)) > 5, `categories ${c1} and ${c2} look alike`);
  assert.ok(diff(img(0), img(1)) > 0, 'instances vary');
  // accepted systems meet the filling-rate filter
  for (const cat of a.categories) assert.ok(cat.fill >= 0.12);
  assert.deepEqual(renderInstance(a.categories[1], 2, 32, 9), renderInstance(sampleCategories(4, 5)[1], 2, 32, 9));
});

test('fractaldb: a short supervised pretraining lowers its loss, exports N×D features and is cached', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'qcb-fdb-'));
  const settings = { categories: 4, instances: 8, epochs: 4, batch_size: 8, width: 4, lr: 0.05, milestones: [] };
  const opts = { cropSize: 32, seed: 3, cacheDir, threads: 1, log: quiet, settings };
  const first = await pretrainFractalDb(opts);
  assert.equal(first.cached, false);
  const losses = first.record.loss.map((l) => l.loss);
  const head = losses.slice(0, 4).reduce((x, y) => x + y, 0) / 4;
  const tail = losses.slice(-4).reduce((x, y) => x + y, 0) / 4;
  assert.ok(tail < head, `loss did not fall: ${head.toFixed(3)} → ${tail.toFixed(3)}`);
  const again = await pretrainFractalDb(opts);
  assert.equal(again.cached, true);
  assert.equal(again.onnx, first.onnx);
  const eg = await loadFractalDbResNet18(opts);
  assert.equal(eg.dim, 32);
  assert.deepEqual(eg.graph.values.get('features')!.shape, ['N', 32]);
  assert.match(String(eg.source.pretraining), /synthetic fractals.*not ImageNet/);
  assert.deepEqual(eg.preprocess?.mean, [0.485, 0.456, 0.406]);
  assert.equal(ENCODERS['resnet18-fractaldb'].kind, 'supervised-synthetic');
  assert.doesNotMatch(ENCODERS['resnet18-fractaldb'].label, /imagenet/i);
});
