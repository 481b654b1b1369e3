/**
 * SwAV (Caron et al., NeurIPS 2020), as solo-learn's solo/methods/swav.py and solo/losses/swav.py:
 *
 *   z_v = normalize(projector(f_v));  p_v = z_v Ŵᵀ  (Ŵ = W row-normalised: `weight_norm` with g = 1, as solo-learn);
 *   q_v = Sinkhorn-Knopp([p_v; p_queue_v]) first N rows (ε 0.05, 3 iterations, no gradient);
 *   L = ½ [ CE(q_1, softmax(p_2/τ)) + CE(q_2, softmax(p_1/τ)) ],  CE(q, ·) = −mean_i Σ_k q_ik log softmax_ik, τ 0.1.
 *
 * The queue (2 × 2560 × D, per view) holds past embeddings (TypeScript machinery, fed each step, with a 0/1 weight
 * per slot so that unfilled slots are excluded); it is used from epoch `start_queue_at_epoch` (0 here, see
 * its `defaults` below). The prototypes are excluded from the update during the first epoch
 * (`freeze_prototypes_epochs` 1: solo-learn sets their gradient to None). Sinkhorn runs inside the training step
 * (sinkhornGraph) on scores whose gradient is stopped, so the codes need no second forward pass.
 */
import { randn } from '../engine/ir/builder.js';
import type { Tensor } from '../engine/ir/graph.js';
import { l2normalize, rows, stopGradientUnit } from './ops.js';
import { MLP2_BN } from './projector.js';
import { sinkhornGraph } from './sinkhorn.js';
import type { SslLoss, SslLossContext, SslMachinery, SslMachineryOptions, SslMethod } from './types.js';

export const SWAV_PROTOTYPES = 'prototypes.weight';
export const SWAV_QUEUE = 'swav_queue';
export const SWAV_QUEUE_WEIGHT = 'swav_queue_weight';
export const SWAV_EMBEDDINGS = 'swav_embeddings';

/** The SwAV graph; see module doc. Feeds: queue 2×Q×D and its slot weights Q×1 (when queue_size > 0). */
export function swavLoss(ctx: SslLossContext): SslLoss {
  const { b, n, dim } = ctx;
  const k = ctx.hp.num_prototypes;
  const qs = ctx.hp.queue_size;
  const tau = ctx.hp.temperature;
  // nn.Linear default init of the prototype layer's weight direction; only the direction matters (weight_norm)
  const w = b.param(SWAV_PROTOTYPES, randn([k, dim], 1 / Math.sqrt(dim), (ctx.seed ^ 0x5a5a) >>> 0));
  const wn = l2normalize(b, w);
  const z = l2normalize(b, b.concat([ctx.z1, ctx.z2], 0)); // 2N×D
  const zOut = b.identity(z, SWAV_EMBEDDINGS);
  const p = b.gemm(z, wn, undefined, { transB: true }); // 2N×K
  const pv = [rows(b, p, 0, n), rows(b, p, n, 2 * n)];
  const feeds: SslLoss['feeds'] = [];
  let queue: string | undefined;
  let qWeight: string | undefined;
  if (qs > 0) {
    queue = b.input(SWAV_QUEUE, 'float32', [2, qs, dim]);
    qWeight = b.input(SWAV_QUEUE_WEIGHT, 'float32', [qs, 1]);
    feeds.push(
      { name: SWAV_QUEUE, dtype: 'float32', shape: [2, qs, dim] },
      { name: SWAV_QUEUE_WEIGHT, dtype: 'float32', shape: [qs, 1] },
    );
  }
  const sk = { epsilon: ctx.hp.epsilon, iters: ctx.hp.sinkhorn_iters };
  const codes = pv.map((pvv, v) => {
    let s = pvv;
    let weight: string | undefined;
    if (queue && qWeight) {
      const qv = b.reshape(b.op1('Gather', [queue, b.ints([v])], { axis: 0 }), [qs, dim]);
      s = b.concat([pvv, b.gemm(qv, wn, undefined, { transB: true })], 0);
      weight = b.concat(
        [
          b.constant({ dtype: 'float32', dims: [n, 1], data: new Float32Array(n).fill(1) }, 'swav_batch_weight'),
          qWeight,
        ],
        0,
      );
    }
    const q = sinkhornGraph(b, stopGradientUnit(b, s), sk, k, weight);
    return queue ? rows(b, q, 0, n) : q;
  });
  const ce = (q: string, pred: string) =>
    b.reduceSum(b.mul(q, b.logSoftmax(b.mul(pred, b.scalar(1 / tau)), 1)), undefined, false);
  const total = b.add(ce(codes[0], pv[1]), ce(codes[1], pv[0]));
  const loss = b.mul(total, b.scalar(-1 / (2 * n)));
  return {
    loss,
    feeds,
    params: [w],
    outputs: [zOut],
    frozenFirstEpochs: { params: [w], epochs: ctx.hp.freeze_prototypes_epochs },
  };
}

/** The queue; see module doc. */
export function swavMachinery(o: SslMachineryOptions): SslMachinery {
  const qs = o.hp.queue_size;
  const d = o.dim;
  const start = o.hp.start_queue_at_epoch;
  const queue = new Float32Array(2 * qs * d);
  const weight = new Float32Array(qs);
  let head = 0;
  return {
    feeds(step): Record<string, Tensor> {
      if (qs === 0) return {};
      // before the queue is in use every slot weighs 0 (it still fills, as solo-learn's)
      const w = step.epoch >= start ? weight : new Float32Array(qs);
      return {
        [SWAV_QUEUE]: { dtype: 'float32', dims: [2, qs, d], data: queue },
        [SWAV_QUEUE_WEIGHT]: { dtype: 'float32', dims: [qs, 1], data: w },
      };
    },
    afterStep(_step, outputs) {
      if (qs === 0) return;
      const z = outputs[SWAV_EMBEDDINGS];
      for (let i = 0; i < o.n; i++) {
        queue.set(z.subarray(i * d, i * d + d), head * d);
        queue.set(z.subarray((o.n + i) * d, (o.n + i) * d + d), (qs + head) * d);
        weight[head] = 1;
        head = (head + 1) % qs;
      }
    },
    state(): Record<string, Tensor> {
      return {
        queue: { dtype: 'float32', dims: [2, qs, d], data: queue },
        weight: { dtype: 'float32', dims: [qs], data: weight },
        head: { dtype: 'float32', dims: [1], data: Float32Array.of(head) },
      };
    },
    restore(s) {
      queue.set(s.queue.data as Float32Array);
      weight.set(s.weight.data as Float32Array);
      head = (s.head.data as Float32Array)[0];
    },
  };
}

export const swav: SslMethod = {
  name: 'swav',
  label: 'SwAV',
  paper:
    'Caron, Misra, Mairal, Goyal, Bojanowski, Joulin: Unsupervised Learning of Visual Features by Contrasting Cluster Assignments (NeurIPS 2020)',
  family: 'clustering',
  description: 'ResNet18 pretrained with SwAV (Caron et al. 2020)',
  defaults: {
    num_prototypes: 500,
    queue_size: 2560,
    epsilon: 0.05,
    sinkhorn_iters: 3,
    temperature: 0.1,
    freeze_prototypes_epochs: 1,
    start_queue_at_epoch: 0,
    proj_hidden_dim: 2048,
    proj_output_dim: 128,
  },
  sources: {
    num_prototypes: 'Masud et al. 2022 §3.2: "the number of prototypes to 500"',
    queue_size: 'Masud et al. 2022 §3.2: "a queue size of 2560"',
    epsilon: 'solo-learn swav.yaml sk_epsilon 0.05',
    sinkhorn_iters: 'solo-learn swav.yaml sk_iters 3',
    temperature: 'solo-learn swav.yaml temperature 0.1',
    freeze_prototypes_epochs: 'solo-learn swav.yaml freeze_prototypes_epochs 1',
    start_queue_at_epoch: 'qcbench: 0 (the paper trains 5 epochs; solo-learn starts at 15 of 400)',
    proj_hidden_dim: 'Masud et al. 2022 §3.2 (2048-d); solo-learn swav.yaml',
    proj_output_dim: 'solo-learn swav.yaml (128)',
    projector: 'solo-learn solo/methods/swav.py: Linear-BN-ReLU-Linear, output L2-normalised',
    prototypes:
      'solo-learn: weight_norm(Linear(D, K, bias=False)) with g fixed at 1, i.e. rows L2-normalised in every forward',
  },
  projector: MLP2_BN,
  buildLoss: swavLoss,
  machinery: swavMachinery,
};
