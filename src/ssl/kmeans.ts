/**
 * Spherical k-means for DeepClusterV2 (Caron et al. 2020; solo-learn solo/utils/kmeans.py `cluster_memory`):
 * embeddings are L2-normalised; centroids start as K distinct random rows; each iteration assigns every row to
 * the centroid of largest dot product (E step), then sets each non-empty centroid to the normalised mean of its
 * rows (M step; an empty cluster keeps its centroid); after the last iteration a final E step gives the
 * assignments. The objective Σ_i (1 − max_k x_i·c_k) never increases (both steps minimise it on the sphere).
 */
import { QcbError } from '../errors.js';
import { mulberry32 } from '../util/random.js';

export interface KMeansResult {
  /** K×D unit-norm centroids. */
  centroids: Float32Array;
  /** Cluster of each row (N). */
  assignments: Int32Array;
  /** Objective Σ(1 − x·c) after each E step (iters + 1 values). */
  objective: number[];
}

/** Σ-free helper: index of the best centroid for row i and its dot product. */
function assign(x: Float32Array, n: number, d: number, c: Float32Array, k: number, out: Int32Array): number {
  let obj = 0;
  for (let i = 0; i < n; i++) {
    const xo = i * d;
    let best = -Infinity;
    let bi = 0;
    for (let j = 0; j < k; j++) {
      const co = j * d;
      let s = 0;
      for (let t = 0; t < d; t++) s += x[xo + t] * c[co + t];
      if (s > best) {
        best = s;
        bi = j;
      }
    }
    out[i] = bi;
    obj += 1 - best;
  }
  return obj;
}

/**
 * Clusters N×D rows (expected L2-normalised) into K clusters.
 * @throws QCB_USAGE when K > N (not enough rows to initialise the centroids)
 */
export function sphericalKMeans(
  x: Float32Array,
  n: number,
  d: number,
  k: number,
  iters: number,
  seed: number,
): KMeansResult {
  if (k > n) {
    throw new QcbError('QCB_USAGE', `k-means needs at least as many embeddings as prototypes (${n} < ${k})`, {
      key: 'pretrain.methods.deepclusterv2.num_prototypes',
      value: k,
      allowed: `at most ${n} (images in the pretraining set)`,
      fix: 'lower num_prototypes or pretrain on more images (--max-images)',
    });
  }
  // K distinct random rows (partial Fisher–Yates)
  const rnd = mulberry32(seed);
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rnd() * (n - i));
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  const c = new Float32Array(k * d);
  for (let j = 0; j < k; j++) c.set(x.subarray(idx[j] * d, idx[j] * d + d), j * d);
  const a = new Int32Array(n);
  const objective: number[] = [];
  const sums = new Float64Array(k * d);
  const counts = new Int32Array(k);
  for (let it = 0; ; it++) {
    objective.push(assign(x, n, d, c, k, a));
    if (it === iters) break;
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const j = a[i];
      counts[j]++;
      for (let t = 0; t < d; t++) sums[j * d + t] += x[i * d + t];
    }
    for (let j = 0; j < k; j++) {
      if (counts[j] === 0) continue;
      let norm = 0;
      for (let t = 0; t < d; t++) norm += sums[j * d + t] ** 2;
      norm = Math.sqrt(norm);
      if (norm === 0) continue;
      for (let t = 0; t < d; t++) c[j * d + t] = sums[j * d + t] / norm;
    }
  }
  return { centroids: c, assignments: a, objective };
}
