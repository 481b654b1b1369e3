/**
 * The downstream tasks of the paper (§3.3) behind one interface: kNN (src/downstream/knn.ts), linear layer on a
 * frozen encoder (linear.ts) and fine-tuning (finetune.ts), each with the optional line search (line-search.ts) on a
 * validation split of the training set. A task gets the encoder graph and the train/test crops, and returns test
 * predictions with an abnormal score (for the AUC); metrics are computed by src/metrics/classification.ts.
 *
 * The second-order `quadratic` head (Fan et al. 2017) is the fourth, beside them.
 */
import type { EncoderGraph, Preprocess } from '../encoders/types.js';
import type { TaskName } from '../runner/results.js';
import type { Logger } from '../util/log.js';
import { lookup } from '../util/suggest.js';
import { type CropSet, extractFeatures, type Features } from './features.js';
import { FINETUNE_DEFAULTS, predictFinetune, trainFinetune } from './finetune.js';
import { selectCrops } from './features.js';
import type { HeadTrainSettings } from './head.js';
import { knnClassify } from './knn.js';
import { type LineSearchResult, lineSearch } from './line-search.js';
import { LINEAR_DEFAULTS, predictLinear, trainLinear } from './linear.js';
import { fitQuadraticHead, predictQuadraticHead } from '../second-order/head.js';

/** Crops of one split with their labels and ids. */
export interface TaskSplit {
  crops: CropSet;
  labels: string[];
  ids: string[];
}

export interface TaskContext {
  eg: EncoderGraph;
  /** Normalisation of the encoder (eg.preprocess overrides the registry entry's, see features). */
  preprocess: Preprocess;
  train: TaskSplit;
  test: TaskSplit;
  seed: number;
  /** Task hyperparameters (protocol `tasks.<name>`), over the paper's defaults. */
  settings?: Record<string, unknown>;
  /** The paper's line search (protocol `line_search`): lr grid on a validation split of the training set. */
  lineSearch?: { enabled: boolean; val_fraction: number; lr: readonly number[] };
  /** Frozen features already computed (the runner caches them per encoder and crops). */
  features?: { train: Features; test: Features };
  threads?: number;
  log?: Logger;
}

export interface TaskOutput {
  pred: string[];
  /** Abnormal-class score in [0, 1] per test crop. */
  score: number[];
  /** Settings actually used (defaults filled, line-search choice applied). */
  settings: Record<string, unknown>;
  /** Mean training loss per epoch (trained heads). */
  lossCurve?: number[];
  lineSearch?: LineSearchResult;
  /** Seconds per stage. */
  timing: Record<string, number>;
}

export interface DownstreamTask {
  name: TaskName;
  label: string;
  /** True when the encoder is frozen (features can be computed once and shared). */
  frozen: boolean;
  run(ctx: TaskContext): Promise<TaskOutput>;
}

async function frozenFeatures(
  ctx: TaskContext,
  timing: Record<string, number>,
): Promise<{ train: Features; test: Features }> {
  if (ctx.features) return ctx.features;
  const t0 = Date.now();
  const train = await extractFeatures(ctx.eg, ctx.preprocess, ctx.train.crops, {
    threads: ctx.threads,
    log: ctx.log,
    label: 'features (train)',
  });
  const test = await extractFeatures(ctx.eg, ctx.preprocess, ctx.test.crops, {
    threads: ctx.threads,
    log: ctx.log,
    label: 'features (test)',
  });
  timing.features = (Date.now() - t0) / 1000;
  return { train, test };
}

function rowsOf(f: Features, rows: readonly number[]): Features {
  const data = new Float32Array(rows.length * f.cols);
  rows.forEach((r, i) => {
    data.set(f.data.subarray(r * f.cols, (r + 1) * f.cols), i * f.cols);
  });
  return { data, rows: rows.length, cols: f.cols };
}

function headSettings(defaults: HeadTrainSettings, s: Record<string, unknown> = {}): HeadTrainSettings {
  const out = { ...defaults };
  for (const k of Object.keys(defaults) as (keyof HeadTrainSettings)[])
    if (s[k] !== undefined) (out as Record<string, unknown>)[k] = s[k];
  return out;
}

const knn: DownstreamTask = {
  name: 'knn',
  label: 'KNN',
  frozen: true,
  async run(ctx) {
    const timing: Record<string, number> = {};
    const f = await frozenFeatures(ctx, timing);
    const k = typeof ctx.settings?.k === 'number' ? ctx.settings.k : 5;
    const n = ctx.settings?.normalize;
    const normalize = n === true || n === 'l2' ? 'l2' : 'raw';
    const t0 = Date.now();
    const r = knnClassify(f.train, ctx.train.labels, f.test, { k, normalize });
    timing.train = (Date.now() - t0) / 1000;
    return { pred: r.pred, score: r.score, settings: { k: r.k, normalize }, timing };
  },
};

const linear: DownstreamTask = {
  name: 'linear',
  label: 'Linear Layer',
  frozen: true,
  async run(ctx) {
    const timing: Record<string, number> = {};
    const f = await frozenFeatures(ctx, timing);
    const s = headSettings(LINEAR_DEFAULTS, ctx.settings);
    const t0 = Date.now();
    let ls: LineSearchResult | undefined;
    if (ctx.lineSearch?.enabled) {
      ls = await lineSearch({
        labels: ctx.train.labels,
        grid: ctx.lineSearch.lr,
        valFraction: ctx.lineSearch.val_fraction,
        seed: ctx.seed,
        evaluate: async (fit, val, lr) => {
          const m = await trainLinear(
            rowsOf(f.train, fit),
            fit.map((i) => ctx.train.labels[i]),
            { seed: ctx.seed, settings: { ...s, lr }, threads: ctx.threads },
          );
          return predictLinear(m, rowsOf(f.train, val)).pred;
        },
      });
      s.lr = ls.best;
    }
    const m = await trainLinear(f.train, ctx.train.labels, {
      seed: ctx.seed,
      settings: s,
      threads: ctx.threads,
      log: ctx.log,
    });
    timing.train = (Date.now() - t0) / 1000;
    const p = predictLinear(m, f.test);
    return { ...p, settings: { ...s }, lossCurve: m.lossCurve, lineSearch: ls, timing };
  },
};

const finetune: DownstreamTask = {
  name: 'finetune',
  label: 'Fine-tuned',
  frozen: false,
  async run(ctx) {
    const timing: Record<string, number> = {};
    const s = headSettings(FINETUNE_DEFAULTS, ctx.settings);
    const t0 = Date.now();
    let ls: LineSearchResult | undefined;
    if (ctx.lineSearch?.enabled) {
      ls = await lineSearch({
        labels: ctx.train.labels,
        grid: ctx.lineSearch.lr,
        valFraction: ctx.lineSearch.val_fraction,
        seed: ctx.seed,
        evaluate: async (fit, val, lr) => {
          const m = await trainFinetune(
            ctx.eg,
            ctx.preprocess,
            selectCrops(ctx.train.crops, fit),
            fit.map((i) => ctx.train.labels[i]),
            { seed: ctx.seed, settings: { ...s, lr }, threads: ctx.threads },
          );
          return (await predictFinetune(m, selectCrops(ctx.train.crops, val), { threads: ctx.threads })).pred;
        },
      });
      s.lr = ls.best;
    }
    const m = await trainFinetune(ctx.eg, ctx.preprocess, ctx.train.crops, ctx.train.labels, {
      seed: ctx.seed,
      settings: s,
      threads: ctx.threads,
      log: ctx.log,
    });
    timing.train = (Date.now() - t0) / 1000;
    const t1 = Date.now();
    const p = await predictFinetune(m, ctx.test.crops, { threads: ctx.threads });
    timing.predict = (Date.now() - t1) / 1000;
    return {
      ...p,
      settings: { ...s, images_per_second: m.images_per_second },
      lossCurve: m.lossCurve,
      lineSearch: ls,
      timing,
    };
  },
};

/** Downstream tasks by name (paper §3.3). */
/**
 * Fan et al. 2017's quadratic head on frozen features (src/second-order/head.ts): one layer of second-order neurons,
 * full-batch AdamW, started as the linear probe (`init: first-order`).
 */
const quadratic: DownstreamTask = {
  name: 'quadratic',
  label: 'Quadratic head',
  frozen: true,
  async run(ctx) {
    const timing: Record<string, number> = {};
    const f = await frozenFeatures(ctx, timing);
    const s = ctx.settings ?? {};
    const num = (k: string, d: number) => (typeof s[k] === 'number' ? (s[k] as number) : d);
    const settings = {
      steps: num('steps', 300),
      lr: num('lr', 0.02),
      weightDecay: num('weight_decay', 1e-3),
      init: s.init === 'random' ? ('random' as const) : ('first-order' as const),
    };
    const t0 = Date.now();
    const head = await fitQuadraticHead(f.train, ctx.train.labels, { ...settings, order: 2, seed: ctx.seed, positiveClass: 'abnormal' });
    timing.train = (Date.now() - t0) / 1000;
    const p = predictQuadraticHead(head, f.test);
    return { pred: p.pred, score: p.score, settings: { ...settings, order: 2 }, timing };
  },
};

export const DOWNSTREAM_TASKS = { knn, linear, finetune, quadratic } satisfies Record<string, DownstreamTask>;

/** A task by name; QCB_UNKNOWN_NAME with "did you mean" otherwise. */
export function resolveTask(name: string): DownstreamTask {
  return lookup(DOWNSTREAM_TASKS, name, 'downstream task', { key: '--task' });
}
