/**
 * DeepClusterV2 (Caron et al., NeurIPS 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
 * Assignments", §C; solo-learn solo/methods/deepclusterv2.py, solo/losses/deepclusterv2.py):
 *
 *   z_v = normalize(projector(f_v));  p_v = z_v Cᵀ / τ  (C: K×D centroids, not trained);
 *   L = mean_v CE(p_v, a),  a the k-means cluster of the image, rows without a cluster ignored.
 *
 * Machinery (TypeScript): a memory bank of both views' normalised embeddings of every image of the pretraining set;
 * before each epoch, spherical k-means (10 iterations, 500 prototypes) on the bank of view 1 gives the centroids C
 * and each image's assignment a. Before the first epoch the bank is filled by a forward pass over the set
 * (`init_memory` of the original implementation, facebookresearch/swav main_deepclusterv2.py), so that epoch 0
 * trains on real assignments (solo-learn's epoch 0 has none).
 */
import { QcbError } from '../errors.js';
import type { Tensor } from '../engine/ir/graph.js';
import { sphericalKMeans } from './kmeans.js';
import { l2normalize } from './ops.js';
import { MLP2_BN } from './projector.js';
import type { SslLoss, SslLossContext, SslMachinery, SslMachineryOptions, SslMethod } from './types.js';

export const DC_CENTROIDS = 'dc_centroids';
export const DC_ASSIGN = 'dc_assign';
export const DC_EMBEDDINGS = 'dc_embeddings';

/** The DeepClusterV2 graph; see module doc. Feeds: centroids K×D, one-hot assignments N×K (zero row: ignored). */
export function deepClusterLoss(ctx: SslLossContext): SslLoss {
  const { b, n, dim } = ctx;
  const k = ctx.hp.num_prototypes;
  const tau = ctx.hp.temperature;
  const cent = b.input(DC_CENTROIDS, 'float32', [k, dim]);
  const onehot = b.input(DC_ASSIGN, 'float32', [n, k]);
  const z = l2normalize(b, b.concat([ctx.z1, ctx.z2], 0)); // 2N×D
  const zOut = b.identity(z, DC_EMBEDDINGS);
  const logp = b.logSoftmax(b.mul(b.gemm(z, cent, undefined, { transB: true }), b.scalar(1 / tau)), 1); // 2N×K
  const targets = b.concat([onehot, onehot], 0);
  const picked = b.reduceSum(b.mul(logp, targets), undefined, false);
  const valid = b.op1('Max', [b.reduceSum(targets, undefined, false), b.scalar(1)]);
  const loss = b.neg(b.div(picked, valid));
  return {
    loss,
    feeds: [
      { name: DC_CENTROIDS, dtype: 'float32', shape: [k, dim] },
      { name: DC_ASSIGN, dtype: 'float32', shape: [n, k] },
    ],
    params: [],
    outputs: [zOut],
  };
}

/** Memory bank + k-means; see module doc. */
export function deepClusterMachinery(o: SslMachineryOptions): SslMachinery {
  const k = o.hp.num_prototypes;
  const iters = o.hp.kmeans_iters;
  const d = o.dim;
  const m = o.datasetSize;
  if (k > m) {
    throw new QcbError('QCB_USAGE', `DeepClusterV2 has ${k} prototypes but only ${m} images to cluster`, {
      key: 'pretrain.methods.deepclusterv2.num_prototypes',
      value: k,
      allowed: `at most ${m}`,
      fix: 'lower num_prototypes or pretrain on more images (--max-images)',
    });
  }
  const bank = [new Float32Array(m * d), new Float32Array(m * d)];
  const filled = new Uint8Array(m);
  let centroids: Float32Array = new Float32Array(k * d);
  let assignments = new Int32Array(m).fill(-1);
  let kmeansSeconds = 0;
  let lastObjective: number[] = [];
  return {
    needsInitialMemory: true,
    beforeEpoch(epoch) {
      const t0 = performance.now();
      // cluster only filled rows (all of them after the initial pass)
      const rows: number[] = [];
      for (let i = 0; i < m; i++) if (filled[i]) rows.push(i);
      const x = new Float32Array(rows.length * d);
      rows.forEach((r, i) => {
        x.set(bank[0].subarray(r * d, r * d + d), i * d);
      });
      const res = sphericalKMeans(x, rows.length, d, k, iters, (o.seed * 1000003 + epoch) >>> 0);
      centroids = res.centroids;
      assignments = new Int32Array(m).fill(-1);
      rows.forEach((r, i) => {
        assignments[r] = res.assignments[i];
      });
      lastObjective = res.objective;
      kmeansSeconds += (performance.now() - t0) / 1000;
    },
    feeds(step) {
      const oh = new Float32Array(o.n * k);
      step.positions.forEach((p, i) => {
        const a = assignments[p];
        if (a >= 0) oh[i * k + a] = 1;
      });
      return {
        [DC_CENTROIDS]: { dtype: 'float32', dims: [k, d], data: centroids },
        [DC_ASSIGN]: { dtype: 'float32', dims: [o.n, k], data: oh },
      };
    },
    afterStep(step, outputs) {
      const z = outputs[DC_EMBEDDINGS];
      step.positions.forEach((p, i) => {
        bank[0].set(z.subarray(i * d, i * d + d), p * d);
        bank[1].set(z.subarray((o.n + i) * d, (o.n + i) * d + d), p * d);
        filled[p] = 1;
      });
    },
    state(): Record<string, Tensor> {
      return {
        bank0: { dtype: 'float32', dims: [m, d], data: bank[0] },
        bank1: { dtype: 'float32', dims: [m, d], data: bank[1] },
        filled: { dtype: 'uint8', dims: [m], data: filled },
      };
    },
    restore(s) {
      bank[0].set(s.bank0.data as Float32Array);
      bank[1].set(s.bank1.data as Float32Array);
      filled.set(s.filled.data as Uint8Array);
    },
    stats() {
      return {
        kmeans_seconds: kmeansSeconds,
        kmeans_objective_first: lastObjective[0] ?? NaN,
        kmeans_objective_last: lastObjective[lastObjective.length - 1] ?? NaN,
      };
    },
  };
}

export const deepClusterV2: SslMethod = {
  name: 'deepclusterv2',
  label: 'DeepClusterV2',
  paper:
    'Caron, Misra, Mairal, Goyal, Bojanowski, Joulin: Unsupervised Learning of Visual Features by Contrasting Cluster Assignments (NeurIPS 2020), DeepCluster-v2',
  family: 'clustering',
  description: 'ResNet18 pretrained with DeepClusterV2 (Caron et al. 2018/2020)',
  defaults: { num_prototypes: 500, kmeans_iters: 10, temperature: 0.1, proj_hidden_dim: 2048, proj_output_dim: 128 },
  sources: {
    num_prototypes: 'Masud et al. 2022 §3.2: "500 prototypes"',
    kmeans_iters: 'Masud et al. 2022 §3.2: "10 K-means iterations"',
    temperature: 'solo-learn deepclusterv2.yaml temperature 0.1',
    proj_hidden_dim: 'Masud et al. 2022 §3.2 (2048-d); solo-learn deepclusterv2.yaml',
    proj_output_dim: 'solo-learn deepclusterv2.yaml (128)',
    projector: 'solo-learn solo/methods/deepclusterv2.py: Linear-BN-ReLU-Linear, output L2-normalised',
    memory: 'memory bank of both views of every image; filled before epoch 0 by a forward pass (original init_memory)',
    heads: 'one prototype set (the paper gives one number, 500), solo-learn default is three heads of 3000',
  },
  projector: MLP2_BN,
  buildLoss: deepClusterLoss,
  machinery: deepClusterMachinery,
};
