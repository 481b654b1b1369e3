import { QcbError } from '../errors.js';

/**
 * Parses a shard option `i/n` (0-based i, 0 ≤ i < n; surrounding whitespace allowed), as every sharded command
 * (`run`, `data crops`, `qc apply`) takes it, so that one SLURM array or Kubernetes indexed Job line works for all.
 * @param text the option value, e.g. `3/16`
 * @param key the option named in the error, e.g. `--shard`
 * @throws QcbError QCB_USAGE (exit 2) naming the key, the value and the fix when `text` is not `i/n` with 0 ≤ i < n
 */
export function parseShard(text: string, key: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!m || count < 1 || index >= count) {
    throw new QcbError('QCB_USAGE', `${key} must be i/n with 0 ≤ i < n, got '${text}'`, {
      key,
      value: text,
      allowed: 'i/n with 0 ≤ i < n (0-based)',
      fix: `e.g. ${key} 0/4 … ${key} 3/4 (SLURM: ${key} $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)`,
    });
  }
  return { index, count };
}
