/**
 * SimCLR (Chen et al., ICML 2020): NT-Xent over the 2N L2-normalised embeddings of both views, as solo-learn's
 * `simclr_loss_func`:
 *
 *   z = normalize([z1; z2]) (2N×D);  s_ij = z_i·z_j / τ;
 *   L = −(1/2N) Σ_i log( exp(s_i,p(i)) / Σ_{j≠i} exp(s_ij) ),  p(i) the other view of image i.
 *
 * τ = 0.07 (Masud et al. 2022 §3.2). The loss is symmetric in the two views (swapping z1 and z2 permutes the rows).
 */
import { l2normalize } from './ops.js';
import { MLP2 } from './projector.js';
import type { SslLoss, SslLossContext, SslMethod } from './types.js';

/** The NT-Xent graph; see module doc. z1, z2: N×D. */
export function ntXentLoss(ctx: SslLossContext): SslLoss {
  const { b, n } = ctx;
  const tau = ctx.hp.temperature;
  const z = l2normalize(b, b.concat([ctx.z1, ctx.z2], 0));
  const sim = b.mul(b.gemm(z, z, undefined, { transB: true }), b.scalar(1 / tau));
  // self-similarity excluded from the denominator (−1e9 on the diagonal), positives picked by a mask
  const m = 2 * n;
  const selfMask = new Float32Array(m * m);
  const posMask = new Float32Array(m * m);
  for (let i = 0; i < m; i++) {
    selfMask[i * m + i] = -1e9;
    posMask[i * m + ((i + n) % m)] = 1;
  }
  const logits = b.add(sim, b.constant({ dtype: 'float32', dims: [m, m], data: selfMask }, 'simclr_self_mask'));
  const logp = b.logSoftmax(logits, 1);
  const picked = b.reduceSum(
    b.mul(logp, b.constant({ dtype: 'float32', dims: [m, m], data: posMask }, 'simclr_pos_mask')),
    undefined,
    false,
  );
  const loss = b.mul(picked, b.scalar(-1 / m));
  return { loss, feeds: [], params: [], outputs: [] };
}

export const simclr: SslMethod = {
  name: 'simclr',
  label: 'SimCLR',
  paper:
    'Chen, Kornblith, Norouzi, Hinton: A Simple Framework for Contrastive Learning of Visual Representations (ICML 2020)',
  family: 'contrastive',
  description: 'ResNet18 pretrained with SimCLR (Chen et al. 2020) on the screen',
  defaults: { temperature: 0.07, proj_hidden_dim: 2048, proj_output_dim: 2048 },
  sources: {
    temperature: 'Masud et al. 2022 §3.2: "a temperature of 0.07 for the unsupervised loss"',
    proj_hidden_dim: 'Masud et al. 2022 §3.2 (2048-d FC layers); solo-learn simclr.yaml',
    proj_output_dim: 'solo-learn simclr.yaml (2048)',
    projector: 'solo-learn solo/methods/simclr.py: Linear-ReLU-Linear',
    loss: 'solo-learn solo/losses/simclr.py simclr_loss_func (positives: the other view; negatives: all other 2N−2)',
  },
  projector: MLP2,
  buildLoss: ntXentLoss,
};
