/**
 * Statistics for reporting: seeded bootstrap percentile intervals, mean ± sd over seeds, quantiles.
 * Quantiles use mathjs `quantileSeq` (linear interpolation between order statistics, numpy's default "type 7").
 */
import { createRequire } from 'node:module';
import { mulberry32 } from '../util/random.js';

type QuantileSeq = (values: number[], p: number) => number;
let quantileSeqFn: QuantileSeq | undefined;

/**
 * mathjs's `quantileSeq`, loaded on first use: importing mathjs takes seconds, and every command that reaches the
 * metrics (`validate`, `status`, `--help` of `run`) would otherwise pay it at start-up. Its CommonJS build is
 * required synchronously so that `quantile` stays synchronous.
 */
function quantileSeq(values: number[], p: number): number {
  quantileSeqFn ??= (createRequire(import.meta.url)('mathjs') as { quantileSeq: QuantileSeq }).quantileSeq;
  return quantileSeqFn(values, p);
}

/**
 * Quantile `p` ∈ [0, 1] of the finite values (linear interpolation, numpy default). NaN if none is finite.
 */
export function quantile(values: readonly number[], p: number): number {
  const v = values.filter(Number.isFinite);
  if (v.length === 0) return Number.NaN;
  return Number(quantileSeq(v, p));
}

export interface BootstrapOptions {
  /** Number of resamples (default 1000). */
  resamples?: number;
  /** PRNG seed (default 0): the same seed and data give the same interval. */
  seed?: number;
  /** Confidence level (default 0.95 → the 2.5% and 97.5% percentiles). */
  level?: number;
  /**
   * Stratum of each sample (e.g. its true class). When given, each resample draws with replacement within each
   * stratum, keeping stratum sizes: a binary test set then always keeps both classes, so the AUC stays defined.
   */
  strata?: readonly number[];
}

/**
 * Percentile bootstrap interval of one or more statistics of a sample of size `n`.
 * @param statistic maps the resampled indices (length n) to K values (e.g. accuracy, F1, AUC)
 * @returns K intervals `[lo, hi]`; resamples where a statistic is not finite are left out of that statistic's
 *   interval (e.g. an AUC on a one-class resample); NaN bounds if none is finite.
 */
export function bootstrapCI(
  n: number,
  statistic: (indices: Int32Array) => number[],
  opts: BootstrapOptions = {},
): [number, number][] {
  const resamples = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const rng = mulberry32(opts.seed ?? 0);
  const groups = groupIndices(n, opts.strata);
  const draws: number[][] = [];
  const idx = new Int32Array(n);
  for (let r = 0; r < resamples; r++) {
    let k = 0;
    for (const g of groups) {
      for (let i = 0; i < g.length; i++) idx[k++] = g[Math.floor(rng() * g.length)];
    }
    const values = statistic(idx);
    values.forEach((v, j) => {
      (draws[j] ??= []).push(v);
    });
  }
  const alpha = (1 - level) / 2;
  return draws.map((d) => [quantile(d, alpha), quantile(d, 1 - alpha)]);
}

function groupIndices(n: number, strata?: readonly number[]): number[][] {
  if (!strata) return [Array.from({ length: n }, (_, i) => i)];
  const byStratum = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const s = strata[i];
    const g = byStratum.get(s);
    if (g) g.push(i);
    else byStratum.set(s, [i]);
  }
  return [...byStratum.keys()].sort((a, b) => a - b).map((k) => byStratum.get(k)!);
}

/** Mean ± sd over seeds lives in summary.ts (no mathjs, so reports start fast); re-exported for convenience. */
export { type MeanSd, meanSd } from './summary.js';
