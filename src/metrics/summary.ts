/**
 * Mean ± sd over seeds (reports' cells). Kept apart from bootstrap.ts so that reading results does not load mathjs,
 * which costs one to two seconds of start-up.
 */

/** Summary of one metric over seeds. */
export interface MeanSd {
  /** Number of finite values. */
  n: number;
  mean: number;
  /** Sample standard deviation (n − 1 in the denominator); NaN when n < 2 (no spread can be estimated). */
  sd: number;
  min: number;
  max: number;
}

/** Mean ± sample sd of the finite values (NaN fields when there are none). */
export function meanSd(values: readonly number[]): MeanSd {
  const v = values.filter(Number.isFinite);
  const n = v.length;
  if (n === 0) return { n: 0, mean: Number.NaN, sd: Number.NaN, min: Number.NaN, max: Number.NaN };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const sd = n < 2 ? Number.NaN : Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  return { n, mean, sd, min: Math.min(...v), max: Math.max(...v) };
}
