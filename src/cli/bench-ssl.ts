/**
 * `qcbench bench ssl [--json]`: pretraining throughput per SSL method and the overhead of each loss (and its
 * non-differentiable machinery) over the encoder's own training step (target ≤ 10%).
 */
import { parseArgs } from 'node:util';
import { QcbError } from '../errors.js';
import { benchSsl } from '../bench/ssl.js';
import { SSL_METHODS } from '../ssl/registry.js';
import type { SslMethodName } from '../ssl/registry.js';
import { lookup } from '../util/suggest.js';
import type { Command } from './types.js';

function posInt(v: string | undefined, key: string, d: number | undefined): number | undefined {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new QcbError('QCB_USAGE', `${key} must be a positive integer, got '${v}'`, {
      key,
      value: v,
      allowed: 'a positive integer',
      fix: `e.g. ${key} 32`,
    });
  return n;
}

export const command: Command = {
  name: 'ssl',
  summary: 'SSL pretraining images/s per method and loss overhead over the encoder step',
  usage: `qcbench bench ssl [--json] [--batch 32] [--size 64] [--steps 5] [--threads T] [--methods a,b]

For each SSL method: one compiled pretraining step (ResNet18 + projector + loss + SGD momentum) on 2×batch
random views of size×size, timed (median of --steps after a warm-up) with the method's machinery (k-means
assignments, SwAV queue), against the same backbone + projector with a trivial loss, the two interleaved step by
step. Prints images/s (each image is two views, from wall time) and the loss overhead in percent (target ≤ 10%)
from process CPU time, which other processes' load disturbs far less than wall time (the wall-time overhead is in
--json); for DeepClusterV2 also the k-means cost per step (k-means on 10,000 embeddings once per epoch).

  --methods a,b   subset of: ${Object.keys(SSL_METHODS).join(', ')}
  --json          print the result as JSON`,
  async run(args, ctx) {
    const { values } = parseArgs({
      args,
      options: {
        json: { type: 'boolean', default: false },
        batch: { type: 'string' },
        size: { type: 'string' },
        steps: { type: 'string' },
        threads: { type: 'string' },
        methods: { type: 'string' },
      },
    });
    const methods = values.methods?.split(',').map((s) => {
      lookup(SSL_METHODS, s.trim(), 'SSL method', { key: '--methods' });
      return s.trim() as SslMethodName;
    });
    const r = await benchSsl({
      methods,
      batch: posInt(values.batch, '--batch', 32),
      size: posInt(values.size, '--size', 64),
      steps: posInt(values.steps, '--steps', 5),
      threads: posInt(values.threads, '--threads', undefined),
      onProgress: (m) => ctx.log.info(m),
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return 0;
    }
    const pct = (v: number | undefined) => (v === undefined ? '' : `${v.toFixed(1)}%`);
    const lines = [
      `SSL pretraining, ResNet18 ${r.size}×${r.size}, batch ${r.batch} (two views each)`,
      'method          img/s   step s   baseline s   loss overhead: CPU    wall   k-means/step (CPU)',
    ];
    for (const row of r.rows) {
      lines.push(
        [
          row.method.padEnd(14),
          row.images_per_second.toFixed(1).padStart(6),
          row.step_seconds.toFixed(3).padStart(8),
          row.baseline_step_seconds.toFixed(3).padStart(12),
          pct(row.loss_overhead_percent).padStart(20),
          pct(row.loss_overhead_wall_percent).padStart(7),
          pct(row.kmeans_overhead_percent).padStart(20),
        ].join(' '),
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
