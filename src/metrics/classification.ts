/**
 * Classification metrics of the paper (Masud et al. 2022, §3.4): accuracy, F1 and ROC AUC, each a support-weighted
 * average over the two classes (normal / abnormal), in percent. Support of a class = its number of test images.
 *
 * What is computed, exactly (matches scikit-learn 1.x):
 * - accuracy = correct / n × 100 (`accuracy_score`). Its "weighted average over classes" is the same number: the
 *   support-weighted mean of per-class recall is Σ_c (n_c/n)·(tp_c/n_c) = Σ tp_c / n.
 * - F1 = Σ_c (n_c/n)·F1_c with F1_c = 2·tp_c / (2·tp_c + fp_c + fn_c), and F1_c = 0 when the class is neither
 *   predicted nor present (`f1_score(average='weighted', zero_division=0)`).
 * - AUC = Σ_c (n_c/n)·AUC_c, where AUC_c is the one-vs-rest ROC AUC of class c. With two classes and one score s for
 *   the abnormal class, class normal is scored by 1 − s, its ROC curve is the mirror image and AUC_normal =
 *   AUC_abnormal; the weighted average is therefore the plain AUC, which is also what
 *   `roc_auc_score(y, s, average='weighted')` returns on 1-D binary scores (sklearn ignores `average` there).
 *   The AUC is the Mann–Whitney U statistic divided by n_pos·n_neg, with midranks for tied scores, so a tie
 *   between a positive and a negative counts one half (identical to the trapezoidal area under the ROC curve).
 *   It is undefined (NaN) when the test set holds one class only (sklearn raises there).
 *
 * The paper's own AUCs sit very close to its accuracies, which suggests they were computed from hard predictions;
 * we use the abnormal score (kNN vote fraction, softmax probability), the usual meaning of ROC AUC. Pass the hard
 * predictions as scores (0/1) to reproduce the other reading.
 */
import { QcbError } from '../errors.js';
import type { CellMetrics, Prediction } from '../results/schema.js';
import { bootstrapCI } from './bootstrap.js';

/** Default class names, in the order used for confusion matrices (negative first, positive = abnormal). */
export const DEFAULT_CLASSES = ['normal', 'abnormal'] as const;

/** Confusion matrix, rows = true class, columns = predicted class, in `classes` order (K×K counts). */
export function confusionMatrix(
  yTrue: readonly string[],
  yPred: readonly string[],
  classes: readonly string[],
): number[][] {
  checkSameLength(yTrue, yPred);
  const index = new Map(classes.map((c, i) => [c, i]));
  const m = classes.map(() => classes.map(() => 0));
  for (let i = 0; i < yTrue.length; i++) {
    const t = index.get(yTrue[i]);
    const p = index.get(yPred[i]);
    if (t === undefined || p === undefined) {
      const bad = t === undefined ? yTrue[i] : yPred[i];
      throw new QcbError('QCB_ANNOTATIONS', `label '${bad}' is not one of the classes`, {
        key: 'label',
        value: bad,
        allowed: classes.join(', '),
        fix: 'use the same two class names in the annotations and the predictions',
      });
    }
    m[t][p]++;
  }
  return m;
}

/** Accuracy in percent: correct / n × 100 (= support-weighted mean recall). NaN for an empty set. */
export function accuracy(yTrue: readonly string[], yPred: readonly string[]): number {
  checkSameLength(yTrue, yPred);
  if (yTrue.length === 0) return Number.NaN;
  let ok = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) ok++;
  return (100 * ok) / yTrue.length;
}

/** Per-class precision, recall, F1 (fractions) and support from a confusion matrix (rows true, columns predicted). */
export function perClass(confusion: readonly (readonly number[])[]): {
  precision: number[];
  recall: number[];
  f1: number[];
  support: number[];
} {
  const k = confusion.length;
  const precision: number[] = [];
  const recall: number[] = [];
  const f1: number[] = [];
  const support: number[] = [];
  for (let c = 0; c < k; c++) {
    const tp = confusion[c][c];
    let rowSum = 0;
    let colSum = 0;
    for (let j = 0; j < k; j++) {
      rowSum += confusion[c][j];
      colSum += confusion[j][c];
    }
    const fn = rowSum - tp;
    const fp = colSum - tp;
    precision.push(colSum > 0 ? tp / colSum : 0);
    recall.push(rowSum > 0 ? tp / rowSum : 0);
    // zero_division=0: a class neither present nor predicted has F1 0 (its weight is 0 anyway).
    f1.push(2 * tp + fp + fn > 0 ? (2 * tp) / (2 * tp + fp + fn) : 0);
    support.push(rowSum);
  }
  return { precision, recall, f1, support };
}

/** Support-weighted F1 in percent (sklearn `f1_score(average='weighted')`). NaN for an empty set. */
export function weightedF1(yTrue: readonly string[], yPred: readonly string[], classes: readonly string[]): number {
  return weightedF1FromConfusion(confusionMatrix(yTrue, yPred, classes));
}

/** Support-weighted F1 in percent from a K×K confusion matrix. */
export function weightedF1FromConfusion(confusion: readonly (readonly number[])[]): number {
  const { f1, support } = perClass(confusion);
  const n = support.reduce((a, b) => a + b, 0);
  if (n === 0) return Number.NaN;
  let s = 0;
  for (let c = 0; c < f1.length; c++) s += support[c] * f1[c];
  return (100 * s) / n;
}

/**
 * Binary ROC AUC in [0, 1] by Mann–Whitney U with midranks: AUC = (R_pos − n_pos(n_pos+1)/2) / (n_pos·n_neg), where
 * R_pos is the sum of the positives' ranks among all scores (ties share the mean of their ranks).
 * @param positive one flag per sample (true = positive class)
 * @param scores one score per sample, higher = more positive
 * @returns NaN when either class is absent
 */
export function rocAuc(positive: readonly boolean[], scores: readonly number[]): number {
  if (positive.length !== scores.length) checkSameLength(positive, scores);
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let rankSumPos = 0;
  let nPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const midrank = (i + j) / 2 + 1; // ranks are 1-based
    for (let t = i; t <= j; t++) {
      if (positive[order[t]]) {
        rankSumPos += midrank;
        nPos++;
      }
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * Support-weighted one-vs-rest ROC AUC in percent for two classes, the abnormal class scored by `scores` and the
 * other by 1 − score (see the module comment: for two classes this equals the plain AUC, computed here explicitly).
 */
export function weightedRocAuc(
  yTrue: readonly string[],
  scores: readonly number[],
  classes: readonly [string, string],
  positiveClass: string = classes[1],
): number {
  checkSameLength(yTrue, scores);
  const pos = yTrue.map((y) => y === positiveClass);
  const nPos = pos.filter(Boolean).length;
  const nNeg = yTrue.length - nPos;
  const aucPos = rocAuc(pos, scores);
  const aucNeg = rocAuc(
    pos.map((p) => !p),
    scores.map((s) => 1 - s),
  );
  if (!Number.isFinite(aucPos) || !Number.isFinite(aucNeg)) return Number.NaN;
  return (100 * (nPos * aucPos + nNeg * aucNeg)) / (nPos + nNeg);
}

/**
 * Recall of the positive (abnormal) class per artefact type, in percent: for each type, the share of positive test
 * images of that type predicted positive. Samples without a type are left out; types sorted by name.
 */
export function recallByType(
  yTrue: readonly string[],
  yPred: readonly string[],
  types: readonly (string | undefined)[],
  positiveClass: string,
): Record<string, { recall: number; n: number }> {
  const acc = new Map<string, { hit: number; n: number }>();
  for (let i = 0; i < yTrue.length; i++) {
    const t = types[i];
    if (t === undefined || t === '' || yTrue[i] !== positiveClass) continue;
    const a = acc.get(t) ?? { hit: 0, n: 0 };
    a.n++;
    if (yPred[i] === positiveClass) a.hit++;
    acc.set(t, a);
  }
  const out: Record<string, { recall: number; n: number }> = {};
  for (const t of [...acc.keys()].sort()) {
    const a = acc.get(t)!;
    out[t] = { recall: (100 * a.hit) / a.n, n: a.n };
  }
  return out;
}

export interface EvaluateOptions {
  /** The two class names, negative first (default `normal`, `abnormal`, or the two labels found, sorted). */
  classes?: readonly [string, string];
  /** Positive class, scored by `Prediction.score` (default the second class). */
  positiveClass?: string;
  /** Bootstrap resamples for the 95% intervals (default 1000; 0 = no intervals). */
  bootstrap?: number;
  /** Seed of the bootstrap (default 0). */
  seed?: number;
  /** Training-set size to record in the metrics. */
  nTrain?: number;
}

/**
 * All metrics of one cell from its test predictions (paper §3.4): accuracy, weighted F1, weighted AUC (percent),
 * confusion matrix, recall per artefact type, and stratified bootstrap 95% intervals (resampling within each true
 * class so every resample keeps both classes and the AUC stays defined).
 */
export function evaluate(predictions: readonly Prediction[], opts: EvaluateOptions = {}): CellMetrics {
  const yTrue = predictions.map((p) => p.label);
  const yPred = predictions.map((p) => p.pred);
  const scores = predictions.map((p) => p.score);
  const classes = opts.classes ?? inferClasses(yTrue, yPred);
  const positive = opts.positiveClass ?? classes[1];
  if (!classes.includes(positive)) {
    throw new QcbError('QCB_USAGE', `positive class '${positive}' is not one of the classes`, {
      key: 'positiveClass',
      value: positive,
      allowed: classes.join(', '),
      fix: 'name one of the two classes as the positive (abnormal) class',
    });
  }
  const confusion = confusionMatrix(yTrue, yPred, classes);
  const metrics: CellMetrics = {
    accuracy: accuracy(yTrue, yPred),
    f1: weightedF1FromConfusion(confusion),
    auc: weightedRocAuc(yTrue, scores, classes, positive),
    n_train: opts.nTrain ?? 0,
    n_test: predictions.length,
    confusion,
    classes: [...classes],
  };
  const resamples = opts.bootstrap ?? 1000;
  if (resamples > 0 && predictions.length > 1) {
    const strata = yTrue.map((y) => (y === positive ? 1 : 0));
    const seed = opts.seed ?? 0;
    const pick = <T>(xs: readonly T[], idx: Int32Array): T[] => Array.from(idx, (i) => xs[i]);
    const ci = bootstrapCI(
      predictions.length,
      (idx) => {
        const t = pick(yTrue, idx);
        const p = pick(yPred, idx);
        return [accuracy(t, p), weightedF1(t, p, classes), weightedRocAuc(t, pick(scores, idx), classes, positive)];
      },
      { resamples, seed, strata },
    );
    metrics.ci95 = { accuracy: ci[0], f1: ci[1], auc: ci[2] };
  }
  if (predictions.some((p) => p.artefact_type !== undefined)) {
    metrics.recall_by_type = recallByType(
      yTrue,
      yPred,
      predictions.map((p) => p.artefact_type),
      positive,
    );
  }
  return metrics;
}

/** `normal`/`abnormal` when those are the labels; otherwise the two labels found, sorted. */
function inferClasses(yTrue: readonly string[], yPred: readonly string[]): [string, string] {
  const found = [...new Set([...yTrue, ...yPred])].sort();
  if (found.every((c) => (DEFAULT_CLASSES as readonly string[]).includes(c))) return [...DEFAULT_CLASSES];
  if (found.length !== 2) {
    throw new QcbError('QCB_ANNOTATIONS', `expected two classes, found ${found.length}`, {
      key: 'label',
      value: found.slice(0, 10),
      allowed: 'exactly two classes, e.g. normal and abnormal',
      fix: 'label every annotated image as one of two classes, or pass the classes explicitly',
    });
  }
  return [found[0], found[1]];
}

function checkSameLength(a: readonly unknown[], b: readonly unknown[]): void {
  if (a.length !== b.length) {
    throw new QcbError('QCB_INTERNAL', `metric inputs differ in length (${a.length} vs ${b.length})`, {
      fix: 'please report this with the command you ran',
    });
  }
}
