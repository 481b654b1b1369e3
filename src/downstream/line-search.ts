/**
 * The paper's "line search strategy for hyperparameter optimization" (Masud et al. 2022 §3.3), done so that the test
 * set is never seen: a stratified validation split is carved from the *training* set only, each grid value (the
 * learning rate by default) is trained on the rest and scored by weighted F1 on the validation split, and the best
 * value is then refit by the caller on the whole training set.
 *
 * The search only ever receives training rows: `evaluate` gets indices into the training arrays, so test crops
 * cannot leak into the choice (a test asserts it).
 */
import { QcbError } from '../errors.js';
import { weightedF1 } from '../metrics/classification.js';
import { CLASSES } from './head.js';
import { permutation } from '../util/random.js';

/** Codes of a training run that diverged (src/engine/train/divergence.ts): such a grid value loses the search. */
const DIVERGENCE_CODES = new Set(['QCB_DIVERGED', 'QCB_NAN_LOSS']);

export interface LineSearchOptions {
  /** Labels of the training set (the only rows the search sees). */
  labels: readonly string[];
  /** Values to try, in order of preference for ties (e.g. learning rates [0.01, 0.001, 0.0001]). */
  grid: readonly number[];
  /** Share of each class held out for validation (default 0.2). */
  valFraction?: number;
  seed: number;
  /**
   * Trains on `fitRows` with the value and predicts `valRows` (indices into the training set).
   * @returns predicted labels for `valRows`, in order
   */
  evaluate(fitRows: number[], valRows: number[], value: number): Promise<string[]>;
}

export interface LineSearchResult {
  best: number;
  /**
   * Weighted F1 (percent) on the validation split per grid value; a value whose training diverged scores NaN and
   * carries the divergence code (it loses: a search must not fail because one of its candidates is too large).
   */
  scores: { value: number; f1: number; diverged?: string }[];
  fitRows: number[];
  valRows: number[];
}

/**
 * Stratified split of training rows: per class, ⌈fraction·n_c⌉ rows (at least 1, at most n_c − 1) go to validation.
 * Classes with a single row stay in the fit part. Seeded.
 */
export function stratifiedSplit(
  labels: readonly string[],
  fraction: number,
  seed: number,
): { fit: number[]; val: number[] } {
  const byClass = new Map<string, number[]>();
  labels.forEach((l, i) => {
    byClass.set(l, [...(byClass.get(l) ?? []), i]);
  });
  const fit: number[] = [];
  const val: number[] = [];
  for (const [c, rows] of [...byClass].sort(([a], [b]) => a.localeCompare(b))) {
    const perm = permutation(rows.length, (seed * 31 + c.length * 7 + rows.length) >>> 0).map((k) => rows[k]);
    const nVal = rows.length < 2 ? 0 : Math.min(rows.length - 1, Math.max(1, Math.ceil(fraction * rows.length)));
    val.push(...perm.slice(0, nVal));
    fit.push(...perm.slice(nVal));
  }
  return { fit: fit.sort((a, b) => a - b), val: val.sort((a, b) => a - b) };
}

/** Runs the line search (see module doc). @throws QCB_ANNOTATIONS when the training set is too small to split */
export async function lineSearch(o: LineSearchOptions): Promise<LineSearchResult> {
  if (o.grid.length === 0)
    throw new QcbError('QCB_PROTOCOL_VALUE', 'the line-search grid is empty', {
      key: 'line_search.lr',
      fix: 'list at least one learning rate',
    });
  const frac = o.valFraction ?? 0.2;
  if (!(frac > 0 && frac < 1))
    throw new QcbError('QCB_PROTOCOL_VALUE', 'line_search.val_fraction must be in (0, 1)', {
      key: 'line_search.val_fraction',
      value: frac,
      allowed: '0 < fraction < 1',
      fix: 'use e.g. 0.2',
    });
  const { fit, val } = stratifiedSplit(o.labels, frac, o.seed);
  if (val.length === 0 || fit.length === 0) {
    throw new QcbError(
      'QCB_ANNOTATIONS',
      `the training set (${o.labels.length} images) is too small to carve a validation split`,
      {
        key: 'line_search',
        fix: 'disable the line search for this label budget or use at least two images per class',
      },
    );
  }
  const yVal = val.map((i) => o.labels[i]);
  const classes = [...new Set([...CLASSES, ...o.labels])];
  const scores: LineSearchResult['scores'] = [];
  let lastDivergence: QcbError | undefined;
  for (const v of o.grid) {
    try {
      const pred = await o.evaluate([...fit], [...val], v);
      scores.push({ value: v, f1: weightedF1(yVal, pred, classes) });
    } catch (e) {
      if (!(e instanceof QcbError) || !DIVERGENCE_CODES.has(e.code)) throw e;
      lastDivergence = e;
      scores.push({ value: v, f1: Number.NaN, diverged: e.code });
    }
  }
  const finite = scores.filter((s) => Number.isFinite(s.f1));
  if (finite.length === 0) throw lastDivergence as QcbError; // every candidate diverged: the cell fails with its code
  let best = finite[0];
  for (const s of finite) if (s.f1 > best.f1 + 1e-9) best = s;
  return { best: best.value, scores, fitRows: fit, valRows: val };
}
