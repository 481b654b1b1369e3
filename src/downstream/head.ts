/**
 * The classification head of the paper's downstream tasks (§3.3: "a single dense layer with 2 output classes"):
 * its settings, class indexing and softmax scores. The head's graph (PyTorch `nn.Linear` initialisation, softmax
 * cross-entropy) and the step schedule live in src/engine/train/head.ts and schedule.ts; shuffles in util/random.
 */
import { makeOptimizer, type Optimizer } from '../engine/train/optim/index.js';
import { QcbError } from '../errors.js';
import { DEFAULT_CLASSES } from '../metrics/classification.js';

/** Class order of every head: index 0 normal, index 1 abnormal (the positive class, whose probability is the score). */
export const CLASSES: readonly string[] = DEFAULT_CLASSES;

/** Schedule and optimiser settings of a head training (paper §3.3). */
export interface HeadTrainSettings {
  epochs: number;
  batch_size: number;
  /** Name in the engine's optimizer registry (src/engine/train/optim: sgd, lars, adamw); the paper's is sgd. */
  optimizer: string;
  lr: number;
  /** SGD's and LARS's momentum; AdamW has none (its moments use the engine's β1 0.9, β2 0.999) and ignores it. */
  momentum: number;
  /** Weight decay: SGD's and LARS's coupled L2 term, AdamW's decoupled decay (lr·wd·p). */
  weight_decay: number;
  /** Epochs after which the learning rate is multiplied by `gamma`. */
  milestones: number[];
  gamma: number;
}

/**
 * The optimizer a head trains with (protocol `tasks.<task>.optimizer`, every accepted name acts): the engine's
 * registry entry with the task's momentum and weight decay; AdamW takes only the weight decay (it has no momentum
 * term), LARS keeps the engine's defaults for its trust coefficient and the bias/norm exclusion.
 * @throws QCB_UNKNOWN_NAME for a name the registry does not have
 */
export function headOptimizer(s: Pick<HeadTrainSettings, 'optimizer' | 'momentum' | 'weight_decay'>): Optimizer {
  const opts: Record<string, unknown> =
    s.optimizer === 'adamw' ? { weightDecay: s.weight_decay } : { momentum: s.momentum, weightDecay: s.weight_decay };
  return makeOptimizer(s.optimizer, opts);
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

/**
 * The error of a head training that diverged (an exploding loss or non-finite parameters: a diverged head would
 * predict one class and pass for a result, so it fails its cell instead); the fix is a lower `tasks.<task>.lr`.
 */
export function headDiverged(task: string, at: { epoch: number; step?: number }, why: string, lr: number): QcbError {
  const where = at.step === undefined ? `after epoch ${at.epoch + 1}` : `at epoch ${at.epoch + 1}, step ${at.step + 1}`;
  return new QcbError('QCB_DIVERGED', `${task} training diverged ${where}: ${why}`, {
    key: `tasks.${task}.lr`,
    value: lr,
    fix: `lower the learning rate (\`tasks.${task}.lr\`, now ${lr}), e.g. tenfold`,
  });
}
