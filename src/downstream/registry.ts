/**
 * Adding a task: write `src/downstream/<task>.ts` exporting a `DownstreamTask` (name, label, description, frozen,
 * train / predict / save / load) and add one line to `DOWNSTREAM_TASKS` below; the protocol schema, the runner and
 * the report's columns derive from this map (its settings under `tasks.<name>` go in src/protocol/schema.ts).
 *
 * The downstream tasks of the paper (§3.3) by name: kNN (src/downstream/knn.ts), linear layer on a frozen encoder
 * (linear.ts) and fine-tuning (finetune.ts), each with the optional line search on a validation split of the
 * training set, and Fan et al. 2017's second-order quadratic head (quadratic.ts) beside them. Each task implements
 * train / predict / save / load (src/downstream/task.ts); `runTask` is train-then-predict in memory, returning test
 * predictions with an abnormal score (for the AUC). Metrics are computed by src/metrics/classification.ts; the
 * runner persists trained models through the same tasks (src/runner/train.ts).
 */
import { lookup } from '../util/suggest.js';
import { extractFeatures, type Features, fitStandardiser, standardise } from '../encoders/features.js';
import { notApplicable } from '../encoders/types.js';
import { FINETUNE_TASK } from './finetune.js';
import { KNN_TASK } from './knn.js';
import type { LineSearchResult } from './line-search.js';
import { LINEAR_TASK } from './linear.js';
import { QUADRATIC_TASK } from './quadratic.js';
import type { DownstreamTask, TaskSplit, TrainContext } from './task.js';

export type { DownstreamTask, TaskSplit } from './task.js';

/** Downstream tasks by name (paper §3.3, and the quadratic head). */
export const DOWNSTREAM_TASKS = {
  knn: KNN_TASK,
  linear: LINEAR_TASK,
  finetune: FINETUNE_TASK,
  quadratic: QUADRATIC_TASK,
} satisfies Record<string, DownstreamTask<any, any>>;

/** A task name of this registry. */
export type RegisteredTask = keyof typeof DOWNSTREAM_TASKS;

/** A task by name; QCB_UNKNOWN_NAME with "did you mean" otherwise. */
export function resolveTask(name: string): DownstreamTask {
  return lookup(DOWNSTREAM_TASKS, name, 'downstream task', { key: '--task' });
}

/** A task's training context plus the test split it is scored on. */
export interface TaskContext extends Omit<TrainContext, 'features'> {
  test: TaskSplit;
  /** Frozen features already computed (N×D train, M×D test; the runner caches them per encoder and crops). */
  features?: { train: Features; test: Features };
}

/** Test predictions of one train-then-predict run, with what the training chose and how long it took. */
export interface TaskOutput {
  pred: string[];
  /** Abnormal-class score in [0, 1] per test crop. */
  score: number[];
  /** Settings actually used (defaults filled, line-search choice applied). */
  settings: Record<string, unknown>;
  /** Mean training loss per epoch (trained heads). */
  lossCurve?: number[];
  lineSearch?: LineSearchResult;
  /** Seconds per stage: `features` (frozen tasks, when computed here), `train`, `predict`. */
  timing: Record<string, number>;
}

/**
 * Trains `task` on `ctx.train` and predicts `ctx.test` in memory; a frozen task's features are computed here unless
 * `ctx.features` has them. The test split is only seen by the prediction.
 */
export async function runTask(task: DownstreamTask, ctx: TaskContext): Promise<TaskOutput> {
  const timing: Record<string, number> = {};
  if (!task.frozen && ctx.eg.compute)
    throw notApplicable(String(ctx.eg.source.encoder ?? 'this encoder'), `the ${task.name} task`);
  let features = ctx.features;
  if (task.frozen && !features) {
    const t0 = Date.now();
    const o = { threads: ctx.threads, log: ctx.log };
    features = {
      train: await extractFeatures(ctx.eg, ctx.preprocess, ctx.train.crops, { ...o, label: 'features (train)' }),
      test: await extractFeatures(ctx.eg, ctx.preprocess, ctx.test.crops, { ...o, label: 'features (test)' }),
    };
    timing.features = (Date.now() - t0) / 1000;
  }
  if (features && ctx.eg?.standardise) {
    // z-scored with the training split's statistics only, as src/downstream/cell.ts runCell does
    const z = fitStandardiser(features.train);
    features = { train: standardise(features.train, z), test: standardise(features.test, z) };
  }
  const { test, features: _, ...trainCtx } = ctx;
  let t0 = Date.now();
  const trained = await task.train({ ...trainCtx, features: task.frozen ? features?.train : undefined });
  timing.train = (Date.now() - t0) / 1000;
  t0 = Date.now();
  const p = await task.predict(
    trained.model,
    { crops: test.crops, features: task.frozen ? features?.test : undefined },
    { threads: ctx.threads },
  );
  timing.predict = (Date.now() - t0) / 1000;
  return {
    pred: p.pred,
    score: p.score,
    settings: trained.settings,
    lossCurve: trained.lossCurve,
    lineSearch: trained.lineSearch,
    timing,
  };
}
