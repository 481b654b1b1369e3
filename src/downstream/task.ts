/**
 * What every downstream task implements (paper §3.3; one file per task: knn.ts, linear.ts, finetune.ts, and the
 * second-order head quadratic.ts). Training and prediction are separate steps, and a trained model is saved to and
 * loaded from a directory, so one implementation serves every caller. Every cell goes through the pipeline
 * src/downstream/cell.ts `runCell`, which trains and predicts
 *
 *   - in memory by default (`qcbench eval`; src/downstream/registry.ts `runTask` does the same for tests);
 *   - through src/runner/train.ts in the runner: train → save once per content hash (trainId) → load → predict on
 *     every test set.
 *
 * Also the training half shared by the heads trained on the paper's schedule (linear layer, fine-tuning): settings
 * over the defaults and the optional line search on a validation split of the training set.
 */
import type { EncoderGraph, Preprocess } from '../encoders/types.js';
import { QcbError } from '../errors.js';
import type { Spec } from '../protocol/spec.js';
import type { TaskName } from '../results/schema.js';
import type { Logger } from '../util/log.js';
import type { CropSet, Features } from '../encoders/features.js';
import type { HeadTrainSettings } from './head.js';
import { type LineSearchResult, lineSearch } from './line-search.js';

/** Crops of one split with their labels and ids: crops N×C×S×S, N labels, N ids. */
export interface TaskSplit {
  crops: CropSet;
  labels: string[];
  ids: string[];
}

/** The paper's line search (protocol `line_search`): lr grid on a validation split of the training set. */
export interface LineSearchSettings {
  enabled: boolean;
  val_fraction: number;
  lr: readonly number[];
}

/** What training sees: the training split only (nothing of a test set can leak into the model or the search). */
export interface TrainContext {
  eg: EncoderGraph;
  /** Normalisation of the encoder (eg.preprocess overrides the registry entry's, see features). */
  preprocess: Preprocess;
  train: TaskSplit;
  seed: number;
  /** Task hyperparameters (protocol `tasks.<name>`), over the paper's defaults. */
  settings?: Record<string, unknown>;
  lineSearch?: LineSearchSettings;
  /** N×D frozen features of the training crops: required by the frozen-encoder tasks (`frozen: true`). */
  features?: Features;
  threads?: number;
  log?: Logger;
}

/** What prediction sees: M×C×S×S crops, and their M×D frozen features for the frozen-encoder tasks. */
export interface PredictInput {
  crops: CropSet;
  features?: Features;
}

/** Predictions for M crops. */
export interface TaskPrediction {
  /** Predicted label per crop. */
  pred: string[];
  /** Abnormal-class score in [0, 1] per crop (the AUC score). */
  score: number[];
}

/** A trained model with what its training chose and recorded. */
export interface Trained<M> {
  model: M;
  /** Settings actually used (defaults filled, line-search choice applied). */
  settings: Record<string, unknown>;
  /** Mean training loss per epoch (heads trained by epochs). */
  lossCurve?: number[];
  lineSearch?: LineSearchResult;
}

/**
 * A downstream task: metadata, train, predict, and the model's serialisation.
 * @typeParam M the trained model in memory
 * @typeParam S the JSON-serialisable part of a saved model (stored by the caller, e.g. in the runner's model.json);
 *   files beside it (a float32 bank, an ONNX graph) are written by `save` into its directory
 */
export interface DownstreamTask<M = unknown, S = unknown> {
  /** Registry key (src/downstream/registry.ts), the task's name in protocols and results. */
  name: TaskName;
  /** Column title in the report's tables (the paper's, Table 1). */
  label: string;
  /** One line for `qcbench validate` and the report's reading guide. */
  description: string;
  /** True when the encoder is frozen: training and prediction take features, computed once and shared. */
  frozen: boolean;
  /** The protocol keys under `tasks.<name>`, each with its default and bounds (its source in a comment beside it). */
  settings: Record<string, Spec>;
  /**
   * True when the protocol's `tasks.line_search` is handed to the task, and so is part of its cells' identity (the
   * trained heads; kNN has nothing to tune).
   */
  lineSearch: boolean;
  /**
   * Trains on `ctx.train` (and `ctx.features`, N×D, for a frozen task).
   * @throws what the training throws (QCB_ANNOTATIONS for too few images, QCB_NAN_LOSS, …)
   */
  train(ctx: TrainContext): Promise<Trained<M>>;
  /** Predictions for `input.crops` (M crops), or for `input.features` (M×D) for a frozen task. */
  predict(model: M, input: PredictInput, o?: { threads?: number }): Promise<TaskPrediction>;
  /**
   * Writes the model's files into the existing directory `dir` and returns the rest of it, JSON-serialisable.
   * @param o.metadata provenance for files that carry it (the fine-tuned ONNX graph)
   */
  save(model: M, dir: string, o?: { metadata?: Record<string, string> }): S;
  /**
   * The model `save` wrote into `dir` and returned as `saved`; predicts exactly as the saved one.
   * @throws QCB_FILE_TRUNCATED for a damaged file
   */
  load(dir: string, saved: S): M;
}

/**
 * The frozen features a frozen-encoder task needs (the caller computes them once per encoder and crops).
 * @throws QCB_INTERNAL when they are missing
 */
export function needFeatures(f: Features | undefined, task: TaskName, which: 'training' | 'test'): Features {
  if (!f) throw new QcbError('QCB_INTERNAL', `the ${task} task needs the frozen features of the ${which} crops`);
  return f;
}

/** Head settings: `defaults` with the keys of `s` they know overridden (unknown keys ignored). */
export function headSettings(defaults: HeadTrainSettings, s: Record<string, unknown> = {}): HeadTrainSettings {
  const out = { ...defaults, milestones: [...defaults.milestones] };
  for (const k of Object.keys(defaults) as (keyof HeadTrainSettings)[])
    if (s[k] !== undefined) (out as Record<string, unknown>)[k] = s[k];
  return out;
}

/** How to train one kind of head on a training set `X` of N rows (features N×D or crops N×C×S×S). */
export interface HeadFit<X, M extends { lossCurve: number[] }> {
  /** The whole training set. */
  all: X;
  /** Rows `rows` of a training set. */
  rows(x: X, rows: readonly number[]): X;
  fit(x: X, labels: readonly string[], settings: HeadTrainSettings, log?: Logger): Promise<M>;
  /** Predicted labels of the rows of `x`. */
  predict(m: M, x: X): Promise<string[]>;
}

/**
 * Trains a head on the paper's schedule: `ctx.settings` over `defaults`; with the line search on, each grid learning
 * rate is fitted on part of the training set and scored on the rest, and the best is used; then the head is fitted
 * on the whole training set.
 * @throws QCB_ANNOTATIONS when the training set is too small to carve a validation split
 */
export async function trainHead<X, M extends { lossCurve: number[] }>(
  ctx: TrainContext,
  defaults: HeadTrainSettings,
  h: HeadFit<X, M>,
): Promise<Trained<M>> {
  const s = headSettings(defaults, ctx.settings);
  const labels = ctx.train.labels;
  let found: LineSearchResult | undefined;
  if (ctx.lineSearch?.enabled) {
    found = await lineSearch({
      labels,
      grid: ctx.lineSearch.lr,
      valFraction: ctx.lineSearch.val_fraction,
      seed: ctx.seed,
      evaluate: async (fit, val, lr) => {
        const m = await h.fit(
          h.rows(h.all, fit),
          fit.map((i) => labels[i]),
          { ...s, lr },
        );
        return h.predict(m, h.rows(h.all, val));
      },
    });
    s.lr = found.best;
  }
  const model = await h.fit(h.all, labels, s, ctx.log);
  return { model, settings: { ...s }, lossCurve: model.lossCurve, lineSearch: found };
}
