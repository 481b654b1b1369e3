/**
 * kNN downstream task (paper §3.3, task 1): k-nearest-neighbour classification (k = 5) of the frozen encoder's pooled
 * features, no training. Exact Euclidean neighbour search: `ml-knn`'s k-d tree for low-dimensional features, a plain
 * scan for encoder features (see KD_TREE_MAX_DIM); the vote is done here so that ties in distance and in votes
 * resolve deterministically and the abnormal score is available for the AUC.
 *
 * As a downstream task (`KNN_TASK`), "training" keeps the training features as the neighbour bank; a saved model is
 * the bank as `bank.f32` (N×D float32 little-endian) and its labels, k and normalisation as JSON.
 */
import { join } from 'node:path';
import KNN from 'ml-knn';
import { QcbError } from '../errors.js';
import { posInt } from '../protocol/fields.js';
import { writeFileAtomic } from '../util/fs.js';
import type { FeatureMatrix } from '../util/matrix.js';
import { f32Bytes, type Features, readF32 } from '../encoders/features.js';
import { type DownstreamTask, needFeatures } from './task.js';

export interface KnnOptions {
  /** Number of neighbours (paper: 5). */
  k?: number;
  /**
   * Feature preprocessing: `raw` (default, as the paper: Euclidean distance on the encoder output) or `l2` (each row
   * scaled to unit length first, i.e. cosine-distance ranking, common for SSL features).
   */
  normalize?: 'raw' | 'l2';
  /** Vote weights: `uniform` (default, as the paper) or `distance` (1/distance, as sklearn's weights='distance'). */
  weighting?: 'uniform' | 'distance';
  /** Class whose vote share is the score (default `abnormal` if present among the labels, else the second sorted label). */
  positiveClass?: string;
}

export interface KnnResult {
  /** Predicted label per test row. */
  pred: string[];
  /** Share of the (weighted) vote that went to the positive class per test row, in [0, 1]: the AUC score. */
  score: number[];
  /** Indices into the training rows of each test row's neighbours, nearest first (ties by index). */
  neighbours: number[][];
  /** The positive class used for `score`. */
  positiveClass: string;
  /** k actually used (min(k, training rows)). */
  k: number;
}

/** `k` when it is a positive integer. @throws QCB_USAGE otherwise */
function checkK(k: number): number {
  if (!Number.isInteger(k) || k < 1) {
    throw new QcbError('QCB_USAGE', 'k must be a positive integer', {
      key: 'k',
      value: k,
      allowed: 'an integer ≥ 1',
      fix: 'set tasks.knn.k to a positive integer (the paper uses 5)',
    });
  }
  return k;
}

/**
 * Classifies test rows by their k nearest training rows.
 * @param trainX N×D training features
 * @param trainY N labels
 * @param testX M×D test features
 * @returns predictions and positive-class scores for the M test rows. A vote tie (even k, or distance weights) goes to
 *   the class of the nearest neighbour.
 */
export function knnClassify(
  trainX: FeatureMatrix,
  trainY: readonly string[],
  testX: FeatureMatrix,
  opts: KnnOptions = {},
): KnnResult {
  const k0 = checkK(opts.k ?? 5);
  const l2 = (opts.normalize ?? 'raw') === 'l2';
  const train = toRows(trainX, l2, 'train');
  const test = toRows(testX, l2, 'test');
  if (train.length !== trainY.length) {
    throw new QcbError('QCB_FEED', `kNN got ${train.length} training rows but ${trainY.length} labels`, {
      key: 'labels',
      fix: 'give one label per training feature row',
    });
  }
  if (train.length === 0) {
    throw new QcbError('QCB_ANNOTATIONS', 'kNN has no training images', {
      key: 'budget',
      fix: 'use a label budget of at least one image per class',
    });
  }
  const d = train[0].length;
  for (const [name, rows] of [
    ['train', train],
    ['test', test],
  ] as const) {
    for (const r of rows) {
      if (r.length !== d) {
        throw new QcbError('QCB_FEED', `kNN ${name} features have ${r.length} columns, expected ${d}`, {
          key: `${name}X`,
          fix: 'compute training and test features with the same encoder',
        });
      }
    }
  }
  const labels = [...new Set(trainY)].sort();
  const positive = opts.positiveClass ?? (labels.includes('abnormal') ? 'abnormal' : labels[labels.length - 1]);
  const k = Math.min(k0, train.length);
  const search = d <= KD_TREE_MAX_DIM ? kdTreeSearch(train, k) : scanSearch(train, k);
  const weighting = opts.weighting ?? 'uniform';
  const pred: string[] = [];
  const score: number[] = [];
  const neighbours: number[][] = [];
  for (const row of test) {
    const found = search(row);
    const weights = voteWeights(
      found.map((f) => f.dist),
      weighting,
    );
    const votes = new Map<string, number>();
    let total = 0;
    found.forEach((f, j) => {
      votes.set(trainY[f.i], (votes.get(trainY[f.i]) ?? 0) + weights[j]);
      total += weights[j];
    });
    let best = trainY[found[0].i];
    let bestVotes = votes.get(best) ?? 0;
    for (const c of labels) {
      const v = votes.get(c) ?? 0;
      if (v > bestVotes + 1e-12) {
        best = c;
        bestVotes = v;
      }
    }
    pred.push(best);
    score.push(total > 0 ? (votes.get(positive) ?? 0) / total : 0);
    neighbours.push(found.map((f) => f.i));
  }
  return { pred, score, neighbours, positiveClass: positive, k };
}

/**
 * Above this many feature dimensions a k-d tree visits every node anyway, and ml-knn's tree then costs about 10× a
 * plain scan (it rebuilds a per-dimension object at each node: 28 s against 2.8 s for 1,300 queries of 512-d
 * features on 350 rows, both measured on a heavily loaded 2-core machine), so the exact scan below is used instead.
 * Both return the same neighbours (tested).
 */
export const KD_TREE_MAX_DIM = 16;

type Search = (q: number[]) => { i: number; dist: number }[];

/** ml-knn's k-d tree. The labels handed to ml-knn are row indices: its tree appends them to each point, so every
 * neighbour it returns carries the index of its training row. */
function kdTreeSearch(train: number[][], k: number): Search {
  const model = new KNN(
    train,
    train.map((_, i) => i),
    { k },
  );
  const n = train.length;
  return (q) => {
    // The tree returns some k of several rows tied at the k-th distance; ask for more until the tie is whole, so that
    // ties resolve by row index as in the scan.
    for (let m = k; ; m *= 2) {
      const found = model.kdTree
        .nearest(q, Math.min(m, n))
        .map(([p, dist]) => ({ i: p[p.length - 1], dist }))
        .sort((a, b) => a.dist - b.dist || a.i - b.i);
      if (found.length >= n || found[found.length - 1].dist > found[k - 1].dist) return found.slice(0, k);
    }
  };
}

/** Exact scan over all training rows (Euclidean distance computed as ml-knn does), keeping the k nearest, ties by index. */
function scanSearch(train: number[][], k: number): Search {
  const n = train.length;
  const d = train[0].length;
  const flat = new Float64Array(n * d);
  train.forEach((r, i) => {
    flat.set(r, i * d);
  });
  return (q) => {
    const best: { i: number; d2: number }[] = [];
    for (let i = 0; i < n; i++) {
      let d2 = 0;
      const off = i * d;
      for (let j = 0; j < d; j++) {
        const t = q[j] - flat[off + j];
        d2 += t * t;
      }
      if (best.length === k && d2 >= best[k - 1].d2) continue;
      let pos = best.length;
      while (pos > 0 && best[pos - 1].d2 > d2) pos--;
      best.splice(pos, 0, { i, d2 });
      if (best.length > k) best.pop();
    }
    return best.map((b) => ({ i: b.i, dist: Math.sqrt(b.d2) }));
  };
}

/** Uniform weights, or 1/distance; exact matches (distance 0) take all the weight, as in scikit-learn. */
function voteWeights(dist: number[], weighting: 'uniform' | 'distance'): number[] {
  if (weighting === 'uniform') return dist.map(() => 1);
  if (dist.some((x) => x === 0)) return dist.map((x) => (x === 0 ? 1 : 0));
  return dist.map((x) => 1 / x);
}

/** Plain number[] rows (ml-knn appends to each row), optionally L2-normalised; rejects non-finite values. */
function toRows(x: FeatureMatrix, l2: boolean, name: string): number[][] {
  let rows: number[][];
  if ('data' in x && 'rows' in x) {
    if (x.data.length !== x.rows * x.cols) {
      throw new QcbError('QCB_FEED', `kNN ${name} buffer has ${x.data.length} values, expected ${x.rows}×${x.cols}`, {
        key: `${name}X`,
        fix: 'pass the feature buffer with its true shape',
      });
    }
    rows = [];
    for (let r = 0; r < x.rows; r++) rows.push(Array.from({ length: x.cols }, (_, c) => x.data[r * x.cols + c]));
  } else {
    rows = (x as readonly ArrayLike<number>[]).map((r) => Array.from(r));
  }
  for (const r of rows) {
    let ss = 0;
    for (const v of r) {
      if (!Number.isFinite(v)) {
        throw new QcbError('QCB_FEED', `kNN ${name} features contain a non-finite value`, {
          key: `${name}X`,
          value: v,
          fix: 'check the encoder: its features must be finite (a NaN often means a diverged pretraining)',
        });
      }
      ss += v * v;
    }
    if (l2 && ss > 0) {
      const inv = 1 / Math.sqrt(ss);
      for (let i = 0; i < r.length; i++) r[i] *= inv;
    }
  }
  return rows;
}

/** A kNN "model": the neighbour bank (training features N×D), its N labels, k and the feature preprocessing. */
export interface KnnModel {
  bank: Features;
  labels: string[];
  /** As set (the classification uses min(k, N)). */
  k: number;
  normalize: 'raw' | 'l2';
}

/** The JSON part of a saved kNN model (the bank is `bank.f32`, rows×cols float32 little-endian). */
export interface KnnSaved {
  k: number;
  normalize: 'raw' | 'l2';
  labels: string[];
  rows: number;
  cols: number;
}

const BANK_FILE = 'bank.f32';

/** Paper §3.3 task 1: kNN with k = 5 on the encoder's pooled features (the protocol's `tasks.knn` defaults). */
export const KNN_DEFAULTS = { k: 5, normalize: false } as const;

/** kNN on frozen features (paper §3.3 task 1); settings `k` (default 5) and `normalize` (`l2` or true, else raw). */
export const KNN_TASK = {
  name: 'knn',
  label: 'kNN (k = 5)',
  description: 'k-nearest neighbours (k = 5) on frozen encoder features',
  frozen: true,
  settings: {
    k: posInt(KNN_DEFAULTS.k),
    normalize: { kind: 'bool', default: KNN_DEFAULTS.normalize },
  },
  // nothing to tune: the neighbour bank is the training set
  lineSearch: false,
  async train(ctx) {
    const bank = needFeatures(ctx.features, 'knn', 'training');
    const k = checkK(typeof ctx.settings?.k === 'number' ? ctx.settings.k : KNN_DEFAULTS.k);
    const n = ctx.settings?.normalize;
    const normalize = n === true || n === 'l2' ? 'l2' : 'raw';
    return {
      model: { bank, labels: [...ctx.train.labels], k, normalize },
      settings: { k: Math.min(k, bank.rows), normalize },
    };
  },
  async predict(m, input) {
    const r = knnClassify(m.bank, m.labels, needFeatures(input.features, 'knn', 'test'), {
      k: m.k,
      normalize: m.normalize,
    });
    return { pred: r.pred, score: r.score };
  },
  save(m, dir) {
    writeFileAtomic(join(dir, BANK_FILE), f32Bytes(m.bank.data));
    return { k: m.k, normalize: m.normalize, labels: [...m.labels], rows: m.bank.rows, cols: m.bank.cols };
  },
  load(dir, s) {
    const file = join(dir, BANK_FILE);
    const data = readF32(file);
    if (data.length !== s.rows * s.cols || s.labels.length !== s.rows)
      throw new QcbError(
        'QCB_FILE_TRUNCATED',
        `kNN bank ${file} holds ${data.length} values for ${s.labels.length} labels, expected ${s.rows}×${s.cols}`,
        {
          file,
          fix: 'delete the model folder: it is made again',
        },
      );
    return { bank: { data, rows: s.rows, cols: s.cols }, labels: s.labels, k: s.k, normalize: s.normalize };
  },
} satisfies DownstreamTask<KnnModel, KnnSaved>;
