/**
 * VICReg (Bardes, Ponce, LeCun, ICLR 2022), as solo-learn's `vicreg_loss_func`:
 *
 *   inv = mean((z1 − z2)²);
 *   var = mean_j relu(1 − √(Var_b z1_bj + 1e-4)) + (same for z2)          (unbiased variance);
 *   cov = Σ_{i≠j} Cov(z1)_ij² / D + Σ_{i≠j} Cov(z2)_ij² / D,  Cov = z̄ᵀz̄/(N−1);
 *   L = 25·inv + 25·var + 1·cov.
 *
 * The off-diagonal sum is Σ Cov² − Σ_j Cov_jj², with Σ Cov² from the N×N Gram matrix (no D×D tensor).
 */
import type { GraphBuilder } from '../engine/ir/builder.js';
import { colMean } from './ops.js';
import { MLP3_BN } from './projector.js';
import type { SslLoss, SslLossContext, SslMethod } from './types.js';

/** VICReg's three terms as graph values (scalars) for z1, z2: N×D. */
export function vicregTerms(
  b: GraphBuilder,
  z1: string,
  z2: string,
  n: number,
  dim: number,
): { inv: string; variance: string; cov: string } {
  const d = b.sub(z1, z2);
  const inv = b.reduceMean(b.mul(d, d), undefined, false);
  const one = b.scalar(1);
  const stdTerm = (z: string) => {
    const zc = b.sub(z, colMean(b, z));
    const v = b.mul(b.reduceSum(b.mul(zc, zc), [0], false), b.scalar(1 / (n - 1))); // D, unbiased
    const std = b.sqrt(b.add(v, b.scalar(1e-4)));
    return { zc, v, hinge: b.reduceMean(b.relu(b.sub(one, std)), undefined, false) };
  };
  const s1 = stdTerm(z1);
  const s2 = stdTerm(z2);
  const variance = b.add(s1.hinge, s2.hinge);
  const covTerm = (zc: string, v: string) => {
    // Σ_ij Cov_ij² = ‖z̄ᵀz̄‖²_F / (N−1)² = ‖z̄z̄ᵀ‖²_F / (N−1)²: the N×N Gram matrix instead of the D×D covariance
    // (N ≪ D = 2048), the same value at O(N²D) instead of O(ND²)
    const g = b.gemm(zc, zc, undefined, { transB: true }); // N×N
    const all2 = b.mul(b.reduceSum(b.mul(g, g), undefined, false), b.scalar(1 / ((n - 1) * (n - 1))));
    const off = b.sub(all2, b.reduceSum(b.mul(v, v), undefined, false));
    return b.mul(off, b.scalar(1 / dim));
  };
  const cov = b.add(covTerm(s1.zc, s1.v), covTerm(s2.zc, s2.v));
  return { inv, variance, cov };
}

/** The VICReg graph; see module doc. */
export function vicregLoss(ctx: SslLossContext): SslLoss {
  const { b } = ctx;
  const t = vicregTerms(b, ctx.z1, ctx.z2, ctx.n, ctx.dim);
  const loss = b.add(
    b.add(b.mul(t.inv, b.scalar(ctx.hp.sim_loss_weight)), b.mul(t.variance, b.scalar(ctx.hp.var_loss_weight))),
    b.mul(t.cov, b.scalar(ctx.hp.cov_loss_weight)),
  );
  return { loss, feeds: [], params: [], outputs: [] };
}

export const vicreg: SslMethod = {
  name: 'vicreg',
  label: 'VICReg',
  paper:
    'Bardes, Ponce, LeCun: VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning (ICLR 2022)',
  family: 'non-contrastive',
  description: 'ResNet18 pretrained with VICReg (Bardes et al. 2022)',
  defaults: {
    sim_loss_weight: 25,
    var_loss_weight: 25,
    cov_loss_weight: 1,
    proj_hidden_dim: 2048,
    proj_output_dim: 2048,
  },
  sources: {
    sim_loss_weight: 'Bardes et al. 2022 (λ = 25); solo-learn vicreg.yaml',
    var_loss_weight: 'Bardes et al. 2022 (μ = 25); solo-learn vicreg.yaml',
    cov_loss_weight: 'Bardes et al. 2022 (ν = 1); solo-learn vicreg.yaml',
    proj_hidden_dim: 'Masud et al. 2022 §3.2 (2048-d); solo-learn vicreg.yaml',
    proj_output_dim: 'solo-learn vicreg.yaml (2048)',
    projector: 'solo-learn solo/methods/vicreg.py: Linear-BN-ReLU-Linear-BN-ReLU-Linear',
    loss: 'solo-learn solo/losses/vicreg.py (variance ε 1e-4, unbiased variance and covariance)',
  },
  projector: MLP3_BN,
  buildLoss: vicregLoss,
};
