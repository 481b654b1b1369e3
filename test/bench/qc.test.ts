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

test('bench qc measures the int8 copy in the same run: kernels, agreement, profile', async () => {
  const r = await benchQc({ encoder: 'random-resnet18', size: 32, crops: 64, batch: 32, threads: 2 });
  const q = r.int8!;
  assert.ok(q, 'int8 figures');
  assert.ok(q.forward_crops_per_s > 0 && q.apply_crops_per_s > 0);
  assert.ok(Math.abs(q.speedup_apply - q.apply_crops_per_s / r.apply_crops_per_s) < 1e-9);
  assert.ok(q.model_mb < r.model_mb / 3, `int8 ${q.model_mb} MB vs fp32 ${r.model_mb} MB`);
  assert.equal(q.integer_kernels['com.microsoft.QLinearConv'], 20);
  assert.ok(q.spearman > 0.5, `Spearman ${q.spearman}`);
  assert.equal(q.labelled, null);
  assert.ok(
    q.profile.some((p) => p.op === 'QLinearConv'),
    JSON.stringify(q.profile),
  );
  assert.ok(
    r.profile.some((p) => p.op.includes('Conv')),
    JSON.stringify(r.profile),
  );
  const fp = await benchQc({ encoder: 'random-resnet18', size: 32, crops: 32, batch: 32, threads: 1, fp32Only: true });
  assert.equal(fp.int8, undefined);
});
