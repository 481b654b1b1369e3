import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchQc, QC_TARGET_CROPS_PER_S } from '../../src/bench/qc.js';

test('bench qc measures forward and apply throughput of an exported classifier (small crops)', async () => {
  const r = await benchQc({ encoder: 'random-resnet18', size: 32, crops: 96, batch: 32, threads: 2 });
  assert.equal(r.encoder, 'random-resnet18');
  assert.equal(r.size, 32);
  assert.ok(r.forward_crops_per_s > 0 && Number.isFinite(r.forward_crops_per_s));
  assert.ok(r.apply_crops_per_s > 0 && Number.isFinite(r.apply_crops_per_s));
  assert.equal(r.meets_target, r.apply_crops_per_s >= QC_TARGET_CROPS_PER_S);
  assert.ok(Math.abs(r.bbbc022_hours - 2.1e6 / r.apply_crops_per_s / 3600) < 1e-9);
  assert.ok(r.peak_rss_gb > 0.01 && r.model_mb > 1, `${r.peak_rss_gb} GB, ${r.model_mb} MB`);
});
