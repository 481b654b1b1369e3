/**
 * The classification head of the paper's downstream tasks (§3.3: "a single dense layer with 2 output classes") and
 * what training it needs: PyTorch `nn.Linear` initialisation, softmax cross-entropy as ONNX ops, the step schedule
 * (`MultiStepLR`), seeded shuffling, class indexing and softmax scores.
 */
import { QcbError } from '../errors.js';
import { type GraphBuilder, mulberry32 } from '../engine/ir/builder.js';
import type { Tensor } from '../engine/ir/graph.js';
import { DEFAULT_CLASSES } from '../metrics/classification.js';

/** Class order of every head: index 0 normal, index 1 abnormal (the positive class, whose probability is the score). */
export const CLASSES: readonly string[] = DEFAULT_CLASSES;

/** Schedule and optimiser settings of a head training (paper §3.3). */
export interface HeadTrainSettings {
  epochs: number;
  batch_size: number;
  lr: number;
  momentum: number;
  weight_decay: number;
  /** Epochs after which the learning rate is multiplied by `gamma`. */
  milestones: number[];
  gamma: number;
}

/**
 * PyTorch `nn.Linear(inF, outF)` default initialisation: weight and bias ~ U(−1/√inF, 1/√inF) (kaiming_uniform with
 * a = √5 reduces to this bound for the weight). Weight outF×inF (used with Gemm transB), bias outF. Seeded.
 */
export function linearInit(inF: number, outF: number, seed: number): { weight: Tensor; bias: Tensor } {
  const rnd = mulberry32(seed);
  const bound = 1 / Math.sqrt(inF);
  const w = new Float32Array(outF * inF);
  for (let i = 0; i < w.length; i++) w[i] = (2 * rnd() - 1) * bound;
  const bi = new Float32Array(outF);
  for (let i = 0; i < outF; i++) bi[i] = (2 * rnd() - 1) * bound;
  return {
    weight: { dtype: 'float32', dims: [outF, inF], data: w },
    bias: { dtype: 'float32', dims: [outF], data: bi },
  };
}

/**
 * Appends logits = features·Wᵀ + b (features N×D → logits N×K), parameters `<prefix>weight` K×D, `<prefix>bias` K.
 */
export function appendLinearHead(
  b: GraphBuilder,
  features: string,
  inF: number,
  classes: number,
  seed: number,
  prefix = 'head.',
): { logits: string; params: string[] } {
  const { weight, bias } = linearInit(inF, classes, seed);
  const w = b.param(`${prefix}weight`, weight);
  const bb = b.param(`${prefix}bias`, bias);
  const logits = b.gemm(features, w, bb, { transB: true });
  return { logits, params: [w, bb] };
}

/** Mean softmax cross-entropy: −mean_n Σ_k y[n,k]·log softmax(logits)[n,k] (y one-hot N×K) → scalar. */
export function appendCrossEntropy(b: GraphBuilder, logits: string, onehot: string): string {
  const lsm = b.logSoftmax(logits, -1);
  const perRow = b.reduceSum(b.mul(lsm, onehot), [1], false);
  return b.neg(b.reduceMean(perRow, undefined, false));
}

/** `MultiStepLR`: base·gamma^(number of milestones ≤ epoch), epochs counted from 0. */
export function multiStepLr(base: number, epoch: number, milestones: readonly number[], gamma: number): number {
  let lr = base;
  for (const m of milestones) if (epoch >= m) lr *= gamma;
  return lr;
}

/** Seeded Fisher–Yates permutation of 0…n−1. */
export function permutation(n: number, seed: number): number[] {
  const rnd = mulberry32(seed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Class indices of labels (normal 0, abnormal 1). @throws QCB_ANNOTATIONS for another label */
export function classIndices(labels: readonly string[], classes: readonly string[] = CLASSES): Int32Array {
  const out = new Int32Array(labels.length);
  labels.forEach((l, i) => {
    const k = classes.indexOf(l);
    if (k < 0) {
      throw new QcbError('QCB_ANNOTATIONS', `label '${l}' is not one of the classes`, {
        key: 'label',
        value: l,
        allowed: classes.join(', '),
        fix: 'label every annotated crop normal or abnormal',
      });
    }
    out[i] = k;
  });
  return out;
}

/** One-hot rows (N×K float32) for the given rows of `y`. */
export function oneHot(y: Int32Array, rows: readonly number[], k: number): Float32Array {
  const out = new Float32Array(rows.length * k);
  rows.forEach((r, i) => {
    out[i * k + y[r]] = 1;
  });
  return out;
}

/** Softmax probability of class `pos` per row of N×K logits. */
export function softmaxScores(logits: Float32Array, k: number, pos = 1): number[] {
  const n = logits.length / k;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[i * k + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(logits[i * k + j] - m);
    out.push(Math.exp(logits[i * k + pos] - m) / s);
  }
  return out;
}

/** Predicted labels and abnormal scores from N×K logits (argmax; ties go to the lower index). */
export function predictionsFromLogits(
  logits: Float32Array,
  classes: readonly string[] = CLASSES,
): { pred: string[]; score: number[] } {
  const k = classes.length;
  const score = softmaxScores(logits, k, classes.indexOf('abnormal') >= 0 ? classes.indexOf('abnormal') : k - 1);
  const pred: string[] = [];
  for (let i = 0; i < logits.length / k; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + best]) best = j;
    pred.push(classes[best]);
  }
  return { pred, score };
}
