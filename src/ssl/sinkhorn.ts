/**
 * Sinkhorn-Knopp for SwAV's codes (Caron et al., NeurIPS 2020, §3.1; solo-learn solo/utils/sinkhorn_knopp.py):
 * from prototype scores S (B×K) compute Q = exp(S/ε), scaled so the whole matrix sums to 1, then alternately
 * normalise per prototype (each prototype's total weight 1/K) and per sample (each sample's weight 1/B), `iters`
 * times, and finally multiply by B so that each sample's codes sum to 1 (an assignment). ε 0.05, 3 iterations.
 *
 * Two forms of the same algorithm: `sinkhorn` in TypeScript (float64), and `sinkhornGraph`, which emits it as ONNX
 * ops inside the training step (so the codes of the current batch cost no second forward pass); the pretraining
 * loop uses the graph form with the gradient stopped (codes are targets, computed under `torch.no_grad()` in
 * solo-learn). Rows may carry a weight 0/1 (an unfilled queue slot is excluded: weight 0, codes 0). The global
 * maximum is subtracted before the exponential, which the first normalisation cancels exactly.
 */
import type { GraphBuilder } from '../engine/ir/builder.js';

export interface SinkhornOptions {
  epsilon: number;
  iters: number;
}

/**
 * Codes for B×K scores (row-major). `rowWeight` (B values of 0/1, default all 1) excludes rows.
 * @returns B×K codes: each included row sums to 1, each column to ≈ B'/K (B' included rows), exactly so as iters → ∞
 */
export function sinkhorn(
  scores: ArrayLike<number>,
  b: number,
  k: number,
  o: SinkhornOptions,
  rowWeight?: ArrayLike<number>,
): Float64Array {
  const q = new Float64Array(b * k);
  let max = -Infinity;
  for (let i = 0; i < b * k; i++)
    if ((!rowWeight || rowWeight[Math.floor(i / k)] > 0) && scores[i] > max) max = scores[i];
  let total = 0;
  let bValid = 0;
  for (let i = 0; i < b; i++) {
    const w = rowWeight ? rowWeight[i] : 1;
    if (w > 0) bValid++;
    for (let j = 0; j < k; j++) {
      const v = w > 0 ? Math.exp((scores[i * k + j] - max) / o.epsilon) : 0;
      q[i * k + j] = v;
      total += v;
    }
  }
  for (let i = 0; i < q.length; i++) q[i] /= total;
  const col = new Float64Array(k);
  for (let it = 0; it < o.iters; it++) {
    col.fill(0);
    for (let i = 0; i < b; i++) for (let j = 0; j < k; j++) col[j] += q[i * k + j];
    for (let i = 0; i < b; i++) for (let j = 0; j < k; j++) q[i * k + j] /= col[j] * k;
    for (let i = 0; i < b; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += q[i * k + j];
      const d = s > 0 ? s * bValid : 1;
      for (let j = 0; j < k; j++) q[i * k + j] /= d;
    }
  }
  for (let i = 0; i < q.length; i++) q[i] *= bValid;
  return q;
}

/**
 * The same algorithm as graph ops on a B×K value (no gradient stopping here: pass scores that carry none).
 * @param rowWeight optional B×1 value of 0/1 row weights
 * @returns B×K codes
 */
export function sinkhornGraph(
  g: GraphBuilder,
  scores: string,
  o: SinkhornOptions,
  k: number,
  rowWeight?: string,
): string {
  const max = g.reduceMax(scores, undefined, true);
  let q = g.exp(g.mul(g.sub(scores, max), g.scalar(1 / o.epsilon)));
  if (rowWeight) q = g.mul(q, rowWeight);
  q = g.div(q, g.reduceSum(q, undefined, true));
  // number of included rows B'
  const bValid = rowWeight
    ? g.reduceSum(rowWeight, undefined, true)
    : g.cast(g.op1('Gather', [g.op1('Shape', [scores]), g.ints([0])], { axis: 0 }), 'float32');
  const tiny = g.scalar(1e-30);
  for (let it = 0; it < o.iters; it++) {
    q = g.div(q, g.mul(g.reduceSum(q, [0], true), g.scalar(k)));
    q = g.div(q, g.mul(g.op1('Max', [g.reduceSum(q, [1], true), tiny]), bValid));
  }
  return g.mul(q, bValid);
}
