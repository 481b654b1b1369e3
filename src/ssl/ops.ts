/**
 * Small graph helpers the SSL losses share (all differentiable by the engine's autodiff unless stated).
 */
import type { GraphBuilder } from '../engine/ir/builder.js';

/** Rows [start, end) of a 2-D value (Slice along axis 0). */
export function rows(b: GraphBuilder, x: string, start: number, end: number): string {
  return b.op1('Slice', [x, b.ints([start]), b.ints([end]), b.ints([0])], {}, 'rows');
}

/** Row-wise L2 normalisation x / max(‖x‖, 1e-12), as `F.normalize(x, dim=-1)`. N×D → N×D. */
export function l2normalize(b: GraphBuilder, x: string, eps = 1e-12): string {
  const norm = b.reduceL2(x, [1], true);
  return b.div(x, b.op1('Max', [norm, b.scalar(eps)]));
}

/** Mean over the batch axis (axis 0), keepdims: N×D → 1×D. */
export function colMean(b: GraphBuilder, x: string): string {
  return b.reduceMean(x, [0], true);
}

/**
 * Batch normalisation in training mode of a G·N×D batch with statistics per group of N rows — solo-learn forwards
 * each view separately, so BatchNorm1d sees one view at a time. Biased variance, as PyTorch normalises with.
 * Optional affine γ, β (D). Returns G·N×D.
 */
export function groupBatchNorm(
  b: GraphBuilder,
  x: string,
  groups: number,
  n: number,
  dim: number,
  eps = 1e-5,
  gamma?: string,
  beta?: string,
): string {
  const g = b.reshape(x, [groups, n, dim]);
  const mean = b.reduceMean(g, [1], true);
  const xc = b.sub(g, mean);
  const variance = b.reduceMean(b.mul(xc, xc), [1], true);
  let y = b.div(xc, b.sqrt(b.add(variance, b.scalar(eps))));
  if (gamma) y = b.mul(y, gamma);
  if (beta) y = b.add(y, beta);
  return b.reshape(y, [groups * n, dim]);
}

/**
 * A value equal to `x` (to within 2⁻²⁵ absolute for |x| ≤ 1) through which no gradient flows: Round is
 * piecewise constant, so the engine's autodiff passes nothing back — `torch.no_grad()` for the codes that
 * SwAV's Sinkhorn-Knopp computes from the current scores inside the training step. Only for values in [−1, 1]
 * (cosine similarities): scaling by 2²⁴ keeps every float32 bit above 2⁻²⁴.
 */
export function stopGradientUnit(b: GraphBuilder, x: string): string {
  const s = 2 ** 24;
  return b.mul(b.op1('Round', [b.mul(x, b.scalar(s))]), b.scalar(1 / s));
}
