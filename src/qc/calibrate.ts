/**
 * The decision threshold of a QC model, calibrated to a false-positive budget: `qcbench qc train --max-fpr F` holds out
 * a stratified validation split of the training annotations ({@link VALIDATION_FRACTION} of each class, the line
 * search's `stratifiedSplit`), trains on the rest, scores the validation crops with the exported model and takes the
 * lowest threshold that flags at most F of the normal validation crops (the most recall the budget allows). The
 * operating point — threshold, validation FPR and recall, and FPR and recall on the test split — goes to the sidecar
 * and `qc apply` uses it.
 *
 * Too few normals: with n normal validation crops the FPR moves in steps of 1/n, so F can only be met by a threshold
 * that lets at least one normal crop through when n ≥ ⌈1/F⌉ ({@link minNormalsFor}); below that the estimate of "at
 * most F" rests on no allowed false positive at all, and an explicit `--max-fpr` is refused (QCB_ANNOTATIONS, exit 2).
 * The default F ({@link DEFAULT_MAX_FPR}) on a set too small for it keeps threshold 0.5 and the whole train split, with
 * a notice, so small annotation sets train as before.
 */
import { QcbError } from '../errors.js';

/** Default false-positive budget of `qc train`. */
export const DEFAULT_MAX_FPR = 0.05;
/** Fraction of each class of the train split held out to calibrate the threshold. */
export const VALIDATION_FRACTION = 0.25;

/** Rates of a threshold on one labelled set. */
export interface SplitRates {
  n: number;
  normal: number;
  abnormal: number;
  /** Flagged normals / normals (null without normals). */
  fpr: number | null;
  /** Flagged abnormals / abnormals (null without abnormals). */
  recall: number | null;
}

/** The operating point recorded in the sidecar (`operating_point`). */
export interface OperatingPoint {
  /** calibrated: chosen for max_fpr on the validation split; given: --threshold; default: 0.5 (not calibrated). */
  source: 'calibrated' | 'given' | 'default';
  max_fpr: number | null;
  threshold: number;
  validation: SplitRates | null;
  test: SplitRates | null;
  /** Why the threshold was not calibrated. */
  note?: string;
}

/**
 * Refuses a budget outside (0, 1).
 * @throws QCB_USAGE naming `--max-fpr`
 */
export function checkMaxFpr(f: number): void {
  if (!(f > 0 && f < 1)) {
    throw new QcbError('QCB_USAGE', `--max-fpr ${f} is outside (0, 1)`, {
      key: '--max-fpr',
      value: f,
      allowed: '0 < F < 1',
      fix: `give the largest fraction of normal crops that may be flagged, e.g. --max-fpr ${DEFAULT_MAX_FPR}`,
    });
  }
}

/** Normal validation crops needed to calibrate at budget F: ⌈1/F⌉ (see the module doc). */
export function minNormalsFor(f: number): number {
  return Math.ceil(1 / f - 1e-9);
}

/**
 * The lowest threshold t with #(normal score > t) ≤ ⌊F·n⌋: the (⌊F·n⌋+1)-th largest normal score (abnormal is
 * score > t, so ties at t stay normal).
 * @param normalScores scores of the n normal validation crops (n ≥ 1)
 */
export function chooseThreshold(normalScores: readonly number[], maxFpr: number): number {
  const s = [...normalScores].sort((a, b) => b - a);
  const k = Math.floor(maxFpr * s.length + 1e-9);
  return Math.min(1, Math.max(0, s[Math.min(k, s.length - 1)]));
}

/** FPR and recall of threshold t on scored, labelled crops. */
export function splitRates(scores: readonly number[], labels: readonly string[], t: number): SplitRates {
  let normal = 0;
  let abnormal = 0;
  let fp = 0;
  let tp = 0;
  scores.forEach((s, i) => {
    if (labels[i] === 'abnormal') {
      abnormal++;
      if (s > t) tp++;
    } else {
      normal++;
      if (s > t) fp++;
    }
  });
  return {
    n: scores.length,
    normal,
    abnormal,
    fpr: normal ? fp / normal : null,
    recall: abnormal ? tp / abnormal : null,
  };
}
