/**
 * What to label next (active learning for the annotation page): first a diverse sample — k-means clusters of the
 * crops' features, one crop per cluster, the smallest clusters first, so that rare artefacts (a few saturated or
 * debris crops among thousands of normal cells) are shown in the first screens; then the crops the labels so far
 * are least sure about, by a distance-weighted kNN vote among the labelled crops (margin sampling; Settles 2009,
 * "Active Learning Literature Survey", §3.1). Once one class has its target count (the paper's 240 + 240, §3.1),
 * the crops most likely of the class still short come first, so the set fills without looking at every crop.
 *
 * Pure: features in, crop indices out; no store, no files.
 */
import type { Label } from '../data/annotations.js';
import { QcbError } from '../errors.js';
import { Rng } from '../util/random.js';
import { type Features, selectFeatureRows } from '../encoders/features.js';

/** A crop's label (the annotations' `label`). */
export type BinaryLabel = Label;

/** Column-wise z-scores of N×D features (constant columns become 0), so that no feature's unit dominates distances. */
export function standardize(f: Features): Features {
  const { rows: n, cols: d } = f;
  const out = new Float32Array(n * d);
  for (let j = 0; j < d; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += f.data[i * d + j];
    const mean = n ? s / n : 0;
    let v = 0;
    for (let i = 0; i < n; i++) v += (f.data[i * d + j] - mean) ** 2;
    const sd = n ? Math.sqrt(v / n) : 0;
    const inv = sd > 1e-12 ? 1 / sd : 0;
    for (let i = 0; i < n; i++) out[i * d + j] = (f.data[i * d + j] - mean) * inv;
  }
  return { data: out, rows: n, cols: d };
}

function dist2(x: Float32Array, i: number, c: Float32Array | Float64Array, j: number, d: number): number {
  let s = 0;
  const a = i * d;
  const b = j * d;
  for (let t = 0; t < d; t++) {
    const u = x[a + t] - c[b + t];
    s += u * u;
  }
  return s;
}

/** Euclidean k-means result: K×D centroids and the cluster of each of the N rows. */
export interface Clusters {
  centroids: Float64Array;
  assignments: Int32Array;
  k: number;
}

/**
 * Euclidean k-means (Lloyd) with k-means++ seeding (Arthur & Vassilvitskii 2007): each next centre is drawn with
 * probability ∝ its squared distance to the nearest centre so far, which is what gives small, far-away groups (rare
 * artefacts) a centre of their own. Deterministic by seed. K is clipped to N.
 * @param x N×D rows (standardised)
 */
export function kmeans(x: Features, k: number, iters: number, seed: number): Clusters {
  const { rows: n, cols: d } = x;
  const K = Math.max(1, Math.min(k, n));
  const c = new Float64Array(K * d);
  const a = new Int32Array(n);
  if (n === 0) return { centroids: c, assignments: a, k: 0 };
  const rng = new Rng(seed);
  const near = new Float64Array(n).fill(Infinity);
  let first = rng.int(n);
  for (let j = 0; j < K; j++) {
    for (let t = 0; t < d; t++) c[j * d + t] = x.data[first * d + t];
    let total = 0;
    for (let i = 0; i < n; i++) {
      near[i] = Math.min(near[i], dist2(x.data, i, c, j, d));
      total += near[i];
    }
    if (j + 1 === K) break;
    if (total <= 0) {
      first = rng.int(n); // all rows coincide with a centre: any row will do
      continue;
    }
    let u = rng.next() * total;
    first = n - 1;
    for (let i = 0; i < n; i++) {
      u -= near[i];
      if (u <= 0) {
        first = i;
        break;
      }
    }
  }
  const sums = new Float64Array(K * d);
  const counts = new Int32Array(K);
  for (let it = 0; it <= iters; it++) {
    let moved = 0;
    for (let i = 0; i < n; i++) {
      let best = Infinity;
      let bj = 0;
      for (let j = 0; j < K; j++) {
        const s = dist2(x.data, i, c, j, d);
        if (s < best) {
          best = s;
          bj = j;
        }
      }
      if (a[i] !== bj || it === 0) moved++;
      a[i] = bj;
    }
    if (it === iters || moved === 0) break;
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      counts[a[i]]++;
      for (let t = 0; t < d; t++) sums[a[i] * d + t] += x.data[i * d + t];
    }
    // an empty cluster keeps its centre
    for (let j = 0; j < K; j++) if (counts[j]) for (let t = 0; t < d; t++) c[j * d + t] = sums[j * d + t] / counts[j];
  }
  return { centroids: c, assignments: a, k: K };
}

/**
 * The diverse sample: per cluster the crop nearest its centroid, smallest clusters first (ties by cluster index).
 * @returns crop indices (rows of `x`), one per non-empty cluster
 */
export function diverseSample(x: Features, clusters: number, seed: number): number[] {
  const km = kmeans(x, clusters, 25, seed);
  const d = x.cols;
  const best = new Int32Array(km.k).fill(-1);
  const bestD = new Float64Array(km.k).fill(Infinity);
  const size = new Int32Array(km.k);
  for (let i = 0; i < x.rows; i++) {
    const j = km.assignments[i];
    size[j]++;
    const s = dist2(x.data, i, km.centroids, j, d);
    if (s < bestD[j]) {
      bestD[j] = s;
      best[j] = i;
    }
  }
  return Array.from({ length: km.k }, (_, j) => j)
    .filter((j) => best[j] >= 0)
    .sort((p, q) => size[p] - size[q] || p - q)
    .map((j) => best[j]);
}

/** How sure the labels so far are about one unlabelled crop. */
export interface Certainty {
  index: number;
  /** Distance-weighted share of abnormal among its k nearest labelled crops, in [0, 1]. */
  pAbnormal: number;
  /** |2p − 1|: 0 = a tie (least sure), 1 = unanimous. */
  margin: number;
  /** Distance to the nearest labelled crop (standardised units): larger = less like anything labelled. */
  nearest: number;
}

/**
 * kNN certainty of `candidates` given the labelled rows (weights 1/(distance + ε), k nearest).
 * @param x N×D standardised features; `labelled` indices into its rows with `labels` alongside
 */
export function knnCertainty(
  x: Features,
  labelled: readonly number[],
  labels: readonly BinaryLabel[],
  candidates: readonly number[],
  k = 5,
): Certainty[] {
  const d = x.cols;
  const K = Math.min(k, labelled.length);
  const out: Certainty[] = [];
  const dist = new Float64Array(labelled.length);
  const order = labelled.map((_, j) => j);
  for (const i of candidates) {
    for (let j = 0; j < labelled.length; j++) dist[j] = Math.sqrt(dist2(x.data, i, x.data, labelled[j], d));
    order.sort((p, q) => dist[p] - dist[q] || labelled[p] - labelled[q]);
    let ab = 0;
    let tot = 0;
    for (let r = 0; r < K; r++) {
      const w = 1 / (dist[order[r]] + 1e-6);
      tot += w;
      if (labels[order[r]] === 'abnormal') ab += w;
    }
    const p = tot > 0 ? ab / tot : 0.5;
    out.push({ index: i, pAbnormal: p, margin: Math.abs(2 * p - 1), nearest: K ? dist[order[0]] : Infinity });
  }
  return out;
}

export interface ProposerOptions {
  /** Clusters of the diverse sample (default 40, clipped to the crop count). */
  clusters?: number;
  /** Neighbours of the kNN vote (default 5, as the paper's kNN task). */
  k?: number;
  seed?: number;
  /** Wanted crops per class (default the paper's 240 + 240). */
  targets?: Record<BinaryLabel, number>;
  /** Rank at most this many unlabelled crops per call, drawn evenly (default all; bounds the cost on huge stores). */
  maxCandidates?: number;
  /** Cluster at most this many crops, drawn evenly, for the diverse sample (default 20,000: k-means stays seconds). */
  maxClustered?: number;
}

/**
 * Proposes crops to label. Construct once per store (standardises the features and computes the diverse sample),
 * then call {@link Proposer.next} with the labels so far.
 */
export class Proposer {
  readonly x: Features;
  readonly diverse: number[];
  private readonly o: Required<ProposerOptions>;

  /** @param features N×D features of every crop of the store (row i = crop index i) */
  constructor(features: Features, opts: ProposerOptions = {}) {
    if (features.rows === 0) {
      throw new QcbError('QCB_STORE', 'nothing to propose: the crop store is empty', {
        fix: 'check the extraction log and skipped.csv of the store',
      });
    }
    this.o = {
      clusters: opts.clusters ?? 40,
      k: opts.k ?? 5,
      seed: opts.seed ?? 1,
      targets: opts.targets ?? { normal: 240, abnormal: 240 },
      maxCandidates: opts.maxCandidates ?? Number.POSITIVE_INFINITY,
      maxClustered: opts.maxClustered ?? 20_000,
    };
    this.x = standardize(features);
    const n = this.x.rows;
    if (n <= this.o.maxClustered) this.diverse = diverseSample(this.x, this.o.clusters, this.o.seed);
    else {
      const rows = evenly(n, this.o.maxClustered);
      this.diverse = diverseSample(selectFeatureRows(this.x, rows), this.o.clusters, this.o.seed).map((j) => rows[j]);
    }
  }

  /**
   * The next `n` crops to show: diverse-sample crops not yet seen, then (once both classes have labels) the least
   * certain crops — or, when one class has reached its target, the crops most likely of the other class; with one
   * class only, the crops farthest from everything labelled.
   * @param labels crop index → label so far; `exclude` crops skipped or already on screen
   */
  next(n: number, labels: ReadonlyMap<number, BinaryLabel>, exclude: ReadonlySet<number> = new Set()): number[] {
    const seen = (i: number) => labels.has(i) || exclude.has(i);
    const out = this.diverse.filter((i) => !seen(i)).slice(0, n);
    if (out.length >= n) return out;
    const taken = new Set(out);
    let cand: number[] = [];
    for (let i = 0; i < this.x.rows; i++) if (!seen(i) && !taken.has(i)) cand.push(i);
    if (cand.length > this.o.maxCandidates) cand = evenly(cand.length, this.o.maxCandidates).map((j) => cand[j]);
    const idx = [...labels.keys()];
    const lab = idx.map((i) => labels.get(i) as BinaryLabel);
    const count = { normal: 0, abnormal: 0 };
    for (const l of lab) count[l]++;
    const cert = knnCertainty(this.x, idx, lab, cand, this.o.k);
    const t = this.o.targets;
    const needAb = count.abnormal < t.abnormal;
    const needNo = count.normal < t.normal;
    let key: (c: Certainty) => number; // smaller first
    if (idx.length === 0 || count.normal === 0 || count.abnormal === 0) key = (c) => -c.nearest;
    else if (needAb && !needNo) key = (c) => -c.pAbnormal;
    else if (needNo && !needAb) key = (c) => c.pAbnormal;
    else key = (c) => c.margin;
    cert.sort((p, q) => key(p) - key(q) || q.nearest - p.nearest || p.index - q.index);
    for (const c of cert) {
      if (out.length >= n) break;
      out.push(c.index);
    }
    return out;
  }
}

/** `m` of the indices 0 … n−1, evenly spaced (all of them when m ≥ n). */
function evenly(n: number, m: number): number[] {
  if (m >= n) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: m }, (_, j) => Math.floor((j * n) / m));
}
