/**
 * A quadratic classification head on frozen features (Fan et al. 2017 as a head on frozen encoder features): one second-order dense layer (Eq. 1) from the
 * standardised features N×D to class logits N×C, softmax cross-entropy, trained full-batch by AdamW through the
 * engine (one onnxruntime call per step). Its first-order twin (`order: 1`) is multinomial logistic regression, the
 * linear probe. The default `first-order` initialisation starts the head as that linear probe, so the quadratic
 * terms are only added where the data pays for them.
 *
 * Prediction runs in plain TypeScript (float64) from the trained weights: cheap for a single layer.
 */

import type { FeatureMatrix } from '../util/matrix.js';
import { GraphBuilder } from '../engine/ir/builder.js';
import { toOrt } from '../engine/runtime/session.js';
import { AdamW } from '../engine/train/optim/index.js';
import { Trainer } from '../engine/train/trainer.js';
import { QcbError } from '../errors.js';
import { type InitMode, keysOf, type LayerParams, type Order } from './analytic.js';
import { denseFromParams, initDense } from './quadratic.js';

export interface QuadraticHeadOptions {
  /** 2 (default) = quadratic head, 1 = the linear twin. */
  order?: Order;
  /** Default `first-order`: the head starts as a linear probe. */
  init?: InitMode;
  /** Full-batch AdamW steps (default 300). */
  steps?: number;
  /** Learning rate (default 0.02). */
  lr?: number;
  /** Decoupled weight decay (default 1e-3). */
  weightDecay?: number;
  seed?: number;
  /** Class whose probability is the score (default `abnormal` if present, else the second sorted label). */
  positiveClass?: string;
}

/** A trained head: standardisation, one layer, class names. */
export interface QuadraticHead {
  classes: string[];
  positiveClass: string;
  mean: Float64Array;
  std: Float64Array;
  layer: LayerParams;
  /** Final training loss (mean cross-entropy). */
  trainLoss: number;
}

export interface HeadPrediction {
  pred: string[];
  /** N×C class probabilities. */
  proba: number[][];
  /** Probability of the positive class per row (the AUC score). */
  score: number[];
}

function rowsOf(m: FeatureMatrix): { data: Float64Array; rows: number; cols: number } {
  if (Array.isArray(m)) {
    const rows = m.length;
    const cols = rows ? (m[0] as ArrayLike<number>).length : 0;
    const data = new Float64Array(rows * cols);
    (m as ArrayLike<number>[]).forEach((r, i) => {
      if (r.length !== cols)
        throw new QcbError('QCB_USAGE', `feature row ${i} has ${r.length} values, expected ${cols}`, {
          key: `features[${i}]`,
        });
      for (let j = 0; j < cols; j++) data[i * cols + j] = r[j];
    });
    return { data, rows, cols };
  }
  const f = m as { data: ArrayLike<number>; rows: number; cols: number };
  return { data: Float64Array.from(f.data), rows: f.rows, cols: f.cols };
}

/**
 * Trains the head.
 * @param trainX N×D features; @param trainY N labels (two or more classes)
 */
export async function fitQuadraticHead(
  trainX: FeatureMatrix,
  trainY: readonly string[],
  o: QuadraticHeadOptions = {},
): Promise<QuadraticHead> {
  const X = rowsOf(trainX);
  if (X.rows !== trainY.length || X.rows === 0) {
    throw new QcbError('QCB_USAGE', `quadratic head: ${X.rows} feature rows but ${trainY.length} labels`, {
      key: 'labels',
      fix: 'pass one label per feature row',
    });
  }
  const classes = [...new Set(trainY)].sort();
  if (classes.length < 2)
    throw new QcbError('QCB_USAGE', `quadratic head needs two or more classes, got ${classes.join(', ')}`, {
      key: 'labels',
      fix: 'annotate both normal and abnormal crops',
    });
  const positiveClass = o.positiveClass ?? (classes.includes('abnormal') ? 'abnormal' : classes[1]);
  const { rows: N, cols: D } = X;
  const C = classes.length;
  // standardise each feature (frozen features of different encoders differ in scale by orders of magnitude)
  const mean = new Float64Array(D);
  const std = new Float64Array(D);
  for (let i = 0; i < N; i++) for (let j = 0; j < D; j++) mean[j] += X.data[i * D + j] / N;
  for (let i = 0; i < N; i++) for (let j = 0; j < D; j++) std[j] += (X.data[i * D + j] - mean[j]) ** 2 / N;
  for (let j = 0; j < D; j++) std[j] = Math.sqrt(std[j]) || 1;
  const xs = new Float32Array(N * D);
  for (let i = 0; i < N; i++) for (let j = 0; j < D; j++) xs[i * D + j] = (X.data[i * D + j] - mean[j]) / std[j];
  const onehot = new Float32Array(N * C);
  trainY.forEach((y, i) => {
    onehot[i * C + classes.indexOf(y)] = 1;
  });

  const init = initDense({
    name: 'head',
    in: D,
    out: C,
    seed: o.seed ?? 1,
    init: o.init ?? 'first-order',
    order: o.order ?? 2,
    gain: 0.1,
  });
  const b = new GraphBuilder('quadratic-head');
  const x = b.input('x', 'float32', ['N', D]);
  const y = b.input('y', 'float32', ['N', C]);
  const { output: logits } = denseFromParams(b, x, init, 'head');
  const ce = b.neg(b.reduceMean(b.reduceSum(b.mul(b.logSoftmax(logits), y), [1], false), undefined, false));
  b.output(ce, 'loss');
  const tr = await Trainer.create({
    graph: b.build(),
    loss: 'loss',
    optimizer: new AdamW({ weightDecay: o.weightDecay ?? 1e-3 }),
  });
  const feeds = {
    x: toOrt({ dtype: 'float32', dims: [N, D], data: xs }),
    y: toOrt({ dtype: 'float32', dims: [N, C], data: onehot }),
  };
  const steps = o.steps ?? 300;
  let loss = Number.NaN;
  for (let s = 0; s < steps; s++) loss = (await tr.step(feeds, o.lr ?? 0.02)).loss;
  const params = tr.getParams();
  const layer: LayerParams = { ...init };
  for (const k of keysOf(init.order)) layer[k] = Float64Array.from(params.get(`head.${k}`)!.data as Float32Array);
  return { classes, positiveClass, mean, std, layer, trainLoss: loss };
}

/** Logits of one dense layer of either order (Eq. 1, no activation), float64. x N×in → N×out. */
export function denseLogits(L: LayerParams, x: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * L.out);
  for (let s = 0; s < n; s++)
    for (let j = 0; j < L.out; j++) {
      let r = L.br[j];
      let g = L.order === 2 ? L.bg[j] : 1;
      let q = L.order === 2 ? L.c[j] : 0;
      for (let k = 0; k < L.in; k++) {
        const v = x[s * L.in + k];
        r += L.wr[j * L.in + k] * v;
        if (L.order === 2) {
          g += L.wg[j * L.in + k] * v;
          q += L.wb[j * L.in + k] * v * v;
        }
      }
      out[s * L.out + j] = r * g + q;
    }
  return out;
}

/** Class predictions and probabilities for M×D test features. */
export function predictQuadraticHead(head: QuadraticHead, testX: FeatureMatrix): HeadPrediction {
  const X = rowsOf(testX);
  const D = head.mean.length;
  if (X.cols !== D && X.rows > 0)
    throw new QcbError('QCB_USAGE', `test features have ${X.cols} columns, the head was trained on ${D}`, {
      key: 'features',
      fix: 'use features of the same encoder',
    });
  const xs = new Float64Array(X.rows * D);
  for (let i = 0; i < X.rows; i++)
    for (let j = 0; j < D; j++) xs[i * D + j] = (X.data[i * D + j] - head.mean[j]) / head.std[j];
  const z = denseLogits(head.layer, xs, X.rows);
  const C = head.classes.length;
  const pi = head.classes.indexOf(head.positiveClass);
  const pred: string[] = [];
  const proba: number[][] = [];
  const score: number[] = [];
  for (let i = 0; i < X.rows; i++) {
    const row = Array.from(z.subarray(i * C, (i + 1) * C));
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, v) => a + v, 0);
    const p = e.map((v) => v / s);
    let best = 0;
    for (let c = 1; c < C; c++) if (p[c] > p[best]) best = c;
    pred.push(head.classes[best]);
    proba.push(p);
    score.push(pi >= 0 ? p[pi] : 0);
  }
  return { pred, proba, score };
}
