import { test } from 'node:test';
import assert from 'node:assert/strict';
import { command } from '../../src/cli/bench-ssl.js';
import { benchSsl } from '../../src/bench/ssl.js';
import { QcbError } from '../../src/errors.js';
import { quietLog } from '../ssl/_pretrain-case.js';

test('bench ssl: one row per method with throughput and loss overhead (structure only, never timings)', async () => {
  const r = await benchSsl({ methods: ['deepclusterv2'], batch: 4, size: 32, steps: 1, kmeansImages: 600 });
  assert.equal(r.rows.length, 1);
  const row = r.rows[0];
  assert.equal(row.method, 'deepclusterv2');
  for (const v of [row.images_per_second, row.step_seconds, row.baseline_step_seconds, row.compile_seconds])
    assert.ok(Number.isFinite(v) && v > 0);
  assert.ok(Number.isFinite(row.loss_overhead_percent));
  assert.ok(Number.isFinite(row.kmeans_overhead_percent!) && row.kmeans_overhead_percent! >= 0);
  await assert.rejects(
    command.run(['--methods', 'swaw'], { log: quietLog }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_UNKNOWN_NAME',
  );
});
