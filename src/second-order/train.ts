/**
 * Full-batch gradient-descent training of small fully connected networks (first or second order) on a 2-D
 * classification set, with two interchangeable backends that compute the same function and the same gradients:
 *
 * - `engine`: the network is an engine graph (quadratic.ts `mlpGraph`), one training step (forward, autodiff
 *   backward, SGD update) is one onnxruntime call through `Trainer`, float32;
 * - `analytic`: the float64 backpropagation of analytic.ts (the paper's Eqs. 5–11, corrected) in plain TypeScript.
 *
 * Measured (docs/second-order.md): an engine step costs about one onnxruntime call's overhead (≈1.2 ms here) almost
 * regardless of size, so the engine is faster except on the smallest network (2-3-2-1, a tie); it is the default.
 *
 * Inputs are mapped by x' = inputScale·(x − 0.5) before the network (default scale 8: the paper's [0.1, 0.9]² frame
 * becomes [−3.2, 3.2]²); with unscaled inputs in [0, 1] sigmoid networks trained by plain gradient descent stall on
 * most seeds. Curriculum (the paper's "divide-and-conquer … from the outer turn toward inner turn"): the loss first
 * covers stage-0 points only, and each further stage is added when the covered points are all classified or when
 * the stage's share of the iteration budget is used up.
 */

import { toOrt } from '../engine/runtime/session.js';
import { Sgd } from '../engine/train/optim/index.js';
import { Trainer } from '../engine/train/trainer.js';
import { QcbError } from '../errors.js';
import {
  type Activation,
  GradientDescent,
  type InitMode,
  initNet,
  type LossKind,
  lossAndGrads,
  type NetParams,
  type Order,
  predict,
  weightedLoss,
} from './analytic.js';
import { f32, mlpGraph, netFromTensors } from './quadratic.js';
import { concentricRings } from './rings.js';
import { type PlaneDataset, twoSpirals } from './spirals.js';

export type Backend = 'engine' | 'analytic';

export interface PlaneTrainConfig {
  /** Layer widths, e.g. [2, 20, 20, 1]. */
  sizes: number[];
  order: Order;
  activation?: Activation;
  init?: InitMode;
  gain?: number;
  loss?: LossKind;
  /** Step length η of Eq. 12 (the loss is summed over samples, so η is per-sum). */
  lr: number;
  /** Heavy-ball momentum μ (0 = the paper's plain steepest descent). */
  momentum?: number;
  /** Iteration budget (full-batch steps). */
  iterations: number;
  /** x' = inputScale·(x − 0.5) (default 8). */
  inputScale?: number;
  /** Outer-to-inner curriculum by `dataset.stage` (default false). */
  curriculum?: boolean;
  /** Stop once the training accuracy reaches `target` (default true). */
  stopAtTarget?: boolean;
  /** Accuracy that counts as converged (default 1: every point right). */
  target?: number;
  /** Default `engine`. */
  backend?: Backend;
  seed: number;
}

export interface PlaneTrainResult {
  /** Trained parameters (float64; engine-trained float32 values widened). */
  net: NetParams;
  /** Final training accuracy over all points (predicted class = output > 0.5). */
  accuracy: number;
  /** Best training accuracy seen during training. */
  bestAccuracy: number;
  /** Updates applied when the accuracy first reached the target; null if it never did. */
  iterationsToConverge: number | null;
  /** Updates applied in all. */
  iterations: number;
  /** Final loss over all points. */
  loss: number;
  backend: Backend;
  /** Wall time per iteration, ms (includes accuracy bookkeeping). */
  msPerIteration: number;
  /** Loss (over the points in the curriculum so far) every `ceil(iterations/100)` updates. */
  lossCurve: { iteration: number; loss: number; accuracy: number }[];
}

/** Inputs after the scaling x' = s·(x − 0.5). */
export function scaleInputs(x: ArrayLike<number>, s: number): Float64Array {
  return Float64Array.from(x as ArrayLike<number>, (v) => s * (v - 0.5));
}

/** Fraction of outputs on the right side of 0.5. */
export function accuracyOf(pred: ArrayLike<number>, y: ArrayLike<number>): number {
  let c = 0;
  for (let i = 0; i < y.length; i++) if ((pred[i] > 0.5 ? 1 : 0) === (y[i] > 0.5 ? 1 : 0)) c++;
  return y.length === 0 ? 0 : c / y.length;
}

function checkConfig(c: PlaneTrainConfig, ds: PlaneDataset): void {
  const bad = (key: string, value: unknown, allowed: string) =>
    new QcbError('QCB_USAGE', `second-order training: ${key} = ${JSON.stringify(value)} is not allowed`, {
      key,
      value,
      allowed,
      fix: `set ${key} to ${allowed}`,
    });
  if (!(c.lr > 0) || !Number.isFinite(c.lr)) throw bad('lr', c.lr, 'a positive number');
  if (!Number.isInteger(c.iterations) || c.iterations < 1) throw bad('iterations', c.iterations, 'a positive integer');
  if (c.momentum !== undefined && !(c.momentum >= 0 && c.momentum < 1))
    throw bad('momentum', c.momentum, 'a number in [0, 1)');
  if (c.sizes[0] !== 2 || c.sizes[c.sizes.length - 1] !== 1)
    throw bad('sizes', c.sizes, `2-…-1 for a 2-D binary set (${ds.name})`);
}

/** Trains one network on one data set from one seed. */
export async function trainPlane(ds: PlaneDataset, cfg: PlaneTrainConfig): Promise<PlaneTrainResult> {
  checkConfig(cfg, ds);
  const net = initNet(cfg.sizes, cfg.order, {
    seed: cfg.seed,
    init: cfg.init,
    gain: cfg.gain,
    activation: cfg.activation,
  });
  const x = scaleInputs(ds.x, cfg.inputScale ?? 8);
  const stages = cfg.curriculum ? Math.max(...ds.stage) + 1 : 1;
  const target = cfg.target ?? 1;
  const stop = cfg.stopAtTarget ?? true;
  const weights = new Float64Array(ds.n);
  let stage = 0;
  const setStage = (s: number) => {
    stage = s;
    for (let i = 0; i < ds.n; i++) weights[i] = !cfg.curriculum || ds.stage[i] <= s ? 1 : 0;
  };
  setStage(cfg.curriculum ? 0 : stages - 1);
  const stageEnd = (s: number) => Math.round((cfg.iterations * (s + 1)) / stages);
  const covered = (pred: ArrayLike<number>) => {
    for (let i = 0; i < ds.n; i++) if (weights[i] !== 0 && (pred[i] > 0.5 ? 1 : 0) !== ds.y[i]) return false;
    return true;
  };
  const every = Math.max(1, Math.ceil(cfg.iterations / 100));
  const lossCurve: PlaneTrainResult['lossCurve'] = [];
  let best = 0;
  let conv: number | null = null;
  let done = 0;
  let lastAcc = 0;
  let lastLoss = Number.NaN;
  // one iteration: `pred` and `loss` come from the parameters before update number `it + 1`
  const observe = (it: number, pred: ArrayLike<number>, loss: number): boolean => {
    const acc = accuracyOf(pred, ds.y);
    lastAcc = acc;
    lastLoss = loss;
    best = Math.max(best, acc);
    if (it % every === 0) lossCurve.push({ iteration: it, loss, accuracy: acc });
    if (acc >= target && conv === null) conv = it;
    if (stage < stages - 1 && (covered(pred) || it >= stageEnd(stage))) setStage(stage + 1);
    return stop && conv !== null;
  };
  const t0 = performance.now();
  const backend = cfg.backend ?? 'engine';
  let trained: NetParams;
  if (backend === 'analytic') {
    const gd = new GradientDescent({ lr: cfg.lr, momentum: cfg.momentum ?? 0 });
    for (let it = 0; ; it++) {
      const r = lossAndGrads(net, x, ds.y, ds.n, cfg.loss ?? 'sse', weights);
      if (!Number.isFinite(r.loss)) throw nanLoss(it, cfg);
      if (observe(it, r.pred, r.loss) || it >= cfg.iterations) break;
      gd.step(net, r.grads);
      done = it + 1;
    }
    trained = net;
  } else {
    const graph = mlpGraph(net, { loss: cfg.loss });
    const tr = await Trainer.create(
      { graph, loss: 'loss', optimizer: new Sgd({ momentum: cfg.momentum ?? 0 }), extraOutputs: ['pred'] },
      { intraOpNumThreads: 1 },
    );
    const xT = toOrt(f32(x, [ds.n, 2]));
    const yT = toOrt(f32(ds.y, [ds.n, 1]));
    const wT = toOrt(f32(weights, [ds.n, 1]));
    const wData = wT.data as Float32Array;
    let measured: NetParams | undefined;
    for (let it = 0; ; it++) {
      wData.set(weights);
      if (it >= cfg.iterations) {
        // evaluate the final parameters without another update
        const p = predict(netFromTensors(net, tr.getParams()), x, ds.n);
        observe(it, p, weightedLoss(1, cfg.loss ?? 'sse', p, ds.y, ds.n, weights));
        break;
      }
      // the step updates the parameters after computing `pred`: keep the ones `pred` was computed from
      const before = stop ? netFromTensors(net, tr.getParams()) : undefined;
      const r = await tr.step({ x: xT, y: yT, w: wT }, cfg.lr);
      if (observe(it, r.outputs.pred.data as Float32Array, r.loss)) {
        measured = before;
        break;
      }
      done = it + 1;
    }
    trained = measured ?? netFromTensors(net, tr.getParams());
  }
  const ms = (performance.now() - t0) / Math.max(1, done + 1);
  return {
    net: trained,
    accuracy: lastAcc,
    bestAccuracy: best,
    iterationsToConverge: conv,
    iterations: done,
    loss: lastLoss,
    backend,
    msPerIteration: ms,
    lossCurve,
  };
}

/** One network of a paper experiment with its training defaults. */
export interface PlaneNetwork {
  /** Short id used in file names and JSON (`second-order-2-20-20-1`). */
  id: string;
  config: Omit<PlaneTrainConfig, 'seed' | 'backend'>;
}

/** A paper experiment: a data set, the networks compared on it and what counts as solved. */
export interface PlaneTask {
  title: string;
  dataset: () => PlaneDataset;
  /** Training accuracy that counts as converged (rings: every point; spirals: ≥ 99%, as Fan et al. 2017 report). */
  target: number;
  networks: PlaneNetwork[];
}

const net = (
  order: Order,
  sizes: number[],
  c: Partial<PlaneNetwork['config']> & { lr: number; iterations: number },
): PlaneNetwork => ({
  id: `${order === 2 ? 'second' : 'first'}-order-${sizes.join('-')}`,
  config: { sizes, order, inputScale: 8, momentum: 0, init: 'random', ...c },
});

/**
 * The paper's two experiments (§III-A, §III-B) with the defaults we found to work (docs/second-order.md):
 * plain summed-SSE gradient descent, sigmoid everywhere, inputs scaled by 8 about the centre.
 */
export const PLANE_TASKS = {
  spirals: {
    title: 'two spirals (Eqs. 13–20), 194 points',
    dataset: () => twoSpirals(),
    target: 0.99,
    networks: [
      net(2, [2, 20, 20, 1], { lr: 0.001, momentum: 0.9, iterations: 15000, curriculum: true }),
      net(1, [2, 20, 20, 1], { lr: 0.001, momentum: 0.9, iterations: 15000, curriculum: true }),
    ],
  },
  rings: {
    title: 'four concentric rings × 60 points, alternating classes',
    dataset: () => concentricRings(),
    target: 1,
    networks: [
      net(2, [2, 3, 2, 1], { lr: 0.01, iterations: 3000, init: 'first-order' }),
      net(1, [2, 20, 10, 1], { lr: 0.01, iterations: 3000 }),
    ],
  },
} satisfies Record<string, PlaneTask>;

export type PlaneTaskName = keyof typeof PLANE_TASKS;

function nanLoss(it: number, cfg: PlaneTrainConfig): QcbError {
  return new QcbError('QCB_NAN_LOSS', `the loss became NaN or infinite at iteration ${it} (lr ${cfg.lr})`, {
    key: 'lr',
    value: cfg.lr,
    fix: 'lower the learning rate or the input scale',
  });
}
