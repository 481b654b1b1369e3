/**
 * Barlow Twins (Zbontar et al., ICML 2021), as solo-learn's `barlow_loss_func`:
 *
 *   ẑ_v = BN(z_v) per view (affine-free, batch statistics, biased variance, ε 1e-5);
 *   C = ẑ1ᵀ ẑ2 / N (D×D cross-correlation);
 *   L = scale · ( Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij² ),  λ = 0.0051, scale = 0.024.
 *
 * Written without any D×D tensor: Σ_{i≠j} C_ij² = Σ C² − Σ_i C_ii², with C_ii = Σ_b ẑ1_bi ẑ2_bi / N and
 * Σ C² = Σ (ẑ1ẑ1ᵀ)⊙(ẑ2ẑ2ᵀ) / N² (N×N Gram matrices). L = 0 exactly at C = I (the paper's optimum).
 */
import { groupBatchNorm } from './ops.js';
import { MLP3_BN } from './projector.js';
import type { SslLoss, SslLossContext, SslMethod } from './types.js';

/** The Barlow Twins graph; see module doc. z1, z2: N×D. */
export function barlowLoss(ctx: SslLossContext): SslLoss {
  const { b, n, dim } = ctx;
  const { lamb, scale_loss: scale } = ctx.hp;
  const z1 = groupBatchNorm(b, ctx.z1, 1, n, dim);
  const z2 = groupBatchNorm(b, ctx.z2, 1, n, dim);
  const diag = b.mul(b.reduceSum(b.mul(z1, z2), [0], false), b.scalar(1 / n)); // D
  const onDiag = b.reduceSum(b.pow(b.sub(diag, b.scalar(1)), b.scalar(2)), undefined, false);
  // Σ_ij C_ij² = ‖ẑ1ᵀẑ2‖²_F / N² = Σ (ẑ1ẑ1ᵀ) ⊙ (ẑ2ẑ2ᵀ) / N²: two N×N Gram matrices instead of the D×D matrix
  // (N ≪ D = 2048), the same value at O(N²D) instead of O(ND²)
  const g1 = b.gemm(z1, z1, undefined, { transB: true });
  const g2 = b.gemm(z2, z2, undefined, { transB: true });
  const all2 = b.mul(b.reduceSum(b.mul(g1, g2), undefined, false), b.scalar(1 / (n * n)));
  const diag2 = b.reduceSum(b.mul(diag, diag), undefined, false);
  const offDiag = b.sub(all2, diag2);
  const loss = b.mul(b.add(onDiag, b.mul(offDiag, b.scalar(lamb))), b.scalar(scale));
  return { loss, feeds: [], params: [], outputs: [] };
}

export const barlowTwins: SslMethod = {
  name: 'barlow_twins',
  label: 'Barlow Twins',
  paper:
    'Zbontar, Jing, Misra, LeCun, Deny: Barlow Twins: Self-Supervised Learning via Redundancy Reduction (ICML 2021)',
  family: 'non-contrastive',
  description: 'ResNet18 pretrained with Barlow Twins (Zbontar et al. 2021)',
  defaults: { lamb: 0.0051, scale_loss: 0.024, proj_hidden_dim: 2048, proj_output_dim: 2048 },
  sources: {
    lamb: 'Zbontar et al. 2021 (λ = 5.1e-3); solo-learn barlow.yaml lamb 0.0051',
    scale_loss: 'solo-learn barlow.yaml scale_loss 0.024',
    proj_hidden_dim: 'Masud et al. 2022 §3.2 (2048-d); solo-learn barlow.yaml',
    proj_output_dim: 'solo-learn barlow.yaml (2048)',
    projector: 'solo-learn solo/methods/barlow_twins.py: Linear-BN-ReLU-Linear-BN-ReLU-Linear',
    loss: 'solo-learn solo/losses/barlow.py barlow_loss_func (BatchNorm1d(affine=False) on each view)',
  },
  projector: MLP3_BN,
  buildLoss: barlowLoss,
};
