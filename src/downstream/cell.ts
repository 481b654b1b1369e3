/**
 * One benchmark cell end to end (encoder × task × label budget × seed × test set, Masud et al. 2022 §3.3–3.4).
 *
 * {@link runCell} is the one pipeline every cell goes through, whoever calls it: frozen features of the training
 * crops (frozen-encoder tasks), the downstream model trained on them (§3.3), the test crops' features, predictions
 * of the test set and their accuracy, weighted F1 and AUC with bootstrap intervals (§3.4). Its two callers differ
 * only in where the encoder, the crops, the features and the trained model come from:
 *
 *   - {@link evaluateCell} (`qcbench eval`): annotated crops read from the crop store(s), the encoder built or
 *     loaded, features extracted and the model trained in memory;
 *   - the runner (src/runner/stages.ts, `qcbench run`): features and trained models read from or written to its
 *     content-addressed cache through the hooks of {@link CellInput}.
 */
import type { LineSearchResult } from './line-search.js';
import { type Annotation, readAnnotations, sampleLabelBudget } from '../data/annotations.js';
import { type CropStore, openCropStore } from '../data/store/crop-store.js';
import {
  chooseChannels,
  type CropSet,
  extractFeatures,
  type Features,
  fitStandardiser,
  pickChannels,
  type Standardiser,
  standardise,
} from '../encoders/features.js';
import { type Encoder, type EncoderGraph, notApplicable, type Preprocess } from '../encoders/types.js';
import { QcbError } from '../errors.js';
import { evaluate } from '../metrics/classification.js';
import type { CellMetrics, EncoderKind, Prediction } from '../results/schema.js';
import type { Logger } from '../util/log.js';
import { resolveTask } from './registry.js';
import type {
  DownstreamTask,
  LineSearchSettings,
  PredictInput,
  TaskPrediction,
  TaskSplit,
  TrainContext,
} from './task.js';

/** One cell of `qcbench eval`: the encoder, the task and where the annotated crops are. */
export interface EvalCellOptions {
  /** The encoder (src/runner/catalog.ts `resolveEncoder` turns a name or an ONNX path into one). */
  encoder: Encoder;
  /** knn | linear | finetune */
  task: string;
  annotations: string;
  store: string;
  /** Store of the test crops when it differs (domain shift, paper §4.3). */
  testStore?: string;
  /** Class-balanced training subset (paper §4.2); default the whole train split. */
  budget?: number;
  seed: number;
  /** Store channels fed as R, G, B (default: see chooseChannels). */
  channels?: string[];
  /** Task hyperparameters over the paper's defaults (epochs, lr, batch_size, milestones, k, …). */
  taskSettings?: Record<string, unknown>;
  /** Encoder settings (FractalDB pretraining, random-control width). */
  encoderSettings?: Record<string, unknown>;
  lineSearch?: { enabled: boolean; val_fraction: number; lr: readonly number[] };
  weightsDir?: string;
  cacheDir?: string;
  /** SSL encoder export for the SSL methods' names. */
  pretrained?: string;
  threads?: number;
  /** Bootstrap resamples for the 95% intervals (default 1000). */
  bootstrap?: number;
  log?: Logger;
  /** An encoder graph already loaded (skips loading). */
  encoderGraph?: EncoderGraph;
}

/** What `qcbench eval` prints or writes: the encoder, metrics over the M test predictions, the training's choices. */
export interface EvalCellResult {
  encoder: { name: string; label: string; kind: EncoderKind; dim: number; source: Record<string, unknown> };
  task: string;
  budget: number | null;
  seed: number;
  metrics: CellMetrics;
  predictions: Prediction[];
  settings: Record<string, unknown>;
  line_search?: CellLineSearch;
  loss_curve?: number[];
  timing: Record<string, number>;
}

/** Reads annotated crops of one split from a store (n×3×S×S or n×1×S×S). */
export async function readAnnotatedCrops(
  store: CropStore,
  rows: Annotation[],
  o: { annotationsFile: string; which: string; channels?: string[]; hint?: string },
): Promise<TaskSplit> {
  const index = new Map(store.meta.map((m) => [m.crop_id, m.index]));
  const missing = rows.filter((r) => !index.has(r.crop_id));
  if (missing.length) {
    throw new QcbError(
      'QCB_ANNOTATIONS',
      `${missing.length} ${o.which} crop(s) of the annotation file are not in the crop store ${store.path} (e.g. ${missing[0].crop_id})`,
      {
        file: o.annotationsFile,
        key: 'crop_id',
        value: missing.slice(0, 5).map((m) => m.crop_id),
        fix: o.hint ?? 'use the store the annotations were made on',
      },
    );
  }
  const data = await store.readIndices(rows.map((r) => index.get(r.crop_id)!));
  const crops = pickChannels(
    data,
    rows.length,
    store.channels.length,
    store.size,
    chooseChannels(store.channels, o.channels),
  );
  return { crops, labels: rows.map((r) => r.label), ids: rows.map((r) => r.crop_id) };
}

/** A cell's training choice as recorded (the runner's model.json holds the same). */
export interface CellLineSearch {
  best: number;
  /** Per grid value; a diverged value has `diverged` (its code) and an f1 of NaN (null once written as JSON). */
  scores: LineSearchResult['scores'];
  n_val: number;
}

/** A trained downstream model ready to score the test crops, with what its training chose. */
export interface CellModel {
  /** Predictions for M test crops (M×C×S×S), or their M×D features for a frozen-encoder task. */
  predict(input: PredictInput): Promise<TaskPrediction>;
  /** Settings actually used (defaults filled, line-search choice applied). */
  settings: Record<string, unknown>;
  lineSearch?: CellLineSearch;
  /** Mean training loss per epoch (heads trained by epochs). */
  lossCurve?: number[];
}

/** What {@link runCell} needs: the encoder, the annotated crops of both splits, the task and its settings. */
export interface CellInput {
  task: DownstreamTask;
  eg: EncoderGraph;
  /** Normalisation of the encoder (eg.preprocess over the registry entry's). */
  preprocess: Preprocess;
  /** N training crops (N×C×S×S) of the label budget, with their labels and ids. */
  train: TaskSplit;
  /** M test crops (M×C×S×S) and their annotation rows, in the same order (labels, artefact types). */
  test: { crops: CropSet; rows: readonly Annotation[] };
  seed: number;
  /** Task hyperparameters over the paper's defaults. */
  settings?: Record<string, unknown>;
  lineSearch?: LineSearchSettings;
  /** Bootstrap resamples for the 95% intervals. */
  bootstrap: number;
  threads?: number;
  log?: Logger;
  /**
   * Frozen features of a split (N×D train, M×D test), asked for only by frozen-encoder tasks and only when needed
   * (the training features only when the model is trained here). Default: extracted from the split's crops.
   */
  features?: (split: 'train' | 'test') => Promise<Features>;
  /**
   * Produces the trained model from the training context (asked for only if it trains). Default: the task trained
   * in memory. The runner's hook reads a model trained earlier from its cache, or trains, stores and reloads it.
   */
  trainModel?: (context: () => Promise<TrainContext>) => Promise<CellModel>;
  /** Called as each stage starts: `features`, `train <task>`, `predict <task>`. */
  onStage?: (stage: string) => void;
}

/** What {@link runCell} yields: M test predictions, their metrics, and what the training chose. */
export interface CellRun {
  predictions: Prediction[];
  metrics: CellMetrics;
  settings: Record<string, unknown>;
  lineSearch?: CellLineSearch;
  lossCurve?: number[];
  /** Seconds: `features` (frozen tasks), `train` (the training stage, features excluded), `predict`. */
  timing: Record<string, number>;
}

/** The task trained in memory (the default of {@link CellInput.trainModel}). */
async function trainInMemory(
  task: DownstreamTask,
  context: () => Promise<TrainContext>,
  threads: number | undefined,
): Promise<CellModel> {
  const trained = await task.train(await context());
  const ls = trained.lineSearch;
  return {
    predict: (input) => task.predict(trained.model, input, { threads }),
    settings: trained.settings,
    lineSearch: ls ? { best: ls.best, scores: ls.scores, n_val: ls.valRows.length } : undefined,
    lossCurve: trained.lossCurve,
  };
}

/**
 * The pipeline of one cell (see module doc): trains `c.task` on the N training crops and scores the M test crops.
 * The test crops are seen only by the prediction. An encoder that asks for it (`eg.standardise`: hand-made measures)
 * has its features z-scored with the training crops' column means and sds, on both splits. Metrics are
 * support-weighted over normal / abnormal, with abnormal the positive class of the AUC (§3.4).
 * @throws QCB_NOT_APPLICABLE for a task that trains the encoder (fine-tuning) on an encoder without a network (the
 *   runner reports the cell as skipped, n/a); QCB_NAN_LOSS when the model scores a test crop non-finite; what the
 *   task's training throws
 */
export async function runCell(c: CellInput): Promise<CellRun> {
  const { task } = c;
  if (!task.frozen && c.eg.compute)
    throw notApplicable(String(c.eg.source.encoder ?? 'this encoder'), `the ${task.name} task`);
  const timing: Record<string, number> = {};
  let z: Standardiser | undefined;
  const features = async (split: 'train' | 'test'): Promise<Features> => {
    const f = await rawFeatures(split);
    if (!c.eg.standardise) return f;
    // the training crops' statistics, whichever split is asked for first (a cached model asks for the test split only)
    z ??= fitStandardiser(split === 'train' ? f : await rawFeatures('train'));
    return standardise(f, z);
  };
  const rawFeatures = async (split: 'train' | 'test'): Promise<Features> => {
    const t0 = Date.now();
    c.onStage?.('features');
    const f = c.features
      ? await c.features(split)
      : await extractFeatures(c.eg, c.preprocess, split === 'train' ? c.train.crops : c.test.crops, {
          threads: c.threads,
          log: c.log,
          label: `features (${split})`,
        });
    timing.features = (timing.features ?? 0) + (Date.now() - t0) / 1000;
    return f;
  };
  const context = async (): Promise<TrainContext> => ({
    eg: c.eg,
    preprocess: c.preprocess,
    train: c.train,
    features: task.frozen ? await features('train') : undefined,
    seed: c.seed,
    settings: c.settings,
    lineSearch: c.lineSearch,
    threads: c.threads,
    log: c.log,
  });
  let t0 = Date.now();
  c.onStage?.(`train ${task.name}`);
  const model = await (c.trainModel ? c.trainModel(context) : trainInMemory(task, context, c.threads));
  timing.train = (Date.now() - t0) / 1000 - (timing.features ?? 0);
  const testFeatures = task.frozen ? await features('test') : undefined;
  t0 = Date.now();
  c.onStage?.(`predict ${task.name}`);
  const out = await model.predict({ crops: c.test.crops, features: testFeatures });
  timing.predict = (Date.now() - t0) / 1000;

  const predictions: Prediction[] = c.test.rows.map((a, i) => ({
    crop_id: a.crop_id,
    label: a.label,
    pred: out.pred[i],
    score: out.score[i],
    ...(a.label === 'abnormal' && a.artefact_type && a.artefact_type !== 'none'
      ? { artefact_type: a.artefact_type }
      : {}),
  }));
  if (predictions.some((p) => !Number.isFinite(p.score)))
    throw new QcbError('QCB_NAN_LOSS', `the ${task.name} model produced non-finite scores`, {
      fix: 'lower the learning rate (tasks.<task>.lr) or check the crops for empty channels',
    });
  const metrics = evaluate(predictions, {
    classes: ['normal', 'abnormal'],
    positiveClass: 'abnormal',
    bootstrap: c.bootstrap,
    seed: c.seed,
    nTrain: c.train.ids.length,
  });
  return {
    predictions,
    metrics,
    settings: model.settings,
    lineSearch: model.lineSearch,
    lossCurve: model.lossCurve,
    timing,
  };
}

/**
 * One cell of `qcbench eval`: reads the annotations and crops (training split or its label budget, §4.2; test
 * split, optionally from another store for a domain shift, §4.3), builds or loads the encoder and runs
 * {@link runCell} with features and model computed in memory.
 * @throws QCB_WEIGHTS_MISSING for ImageNet encoders without weights, QCB_ANNOTATIONS, QCB_IMAGE_SIZE, …
 */
export async function evaluateCell(o: EvalCellOptions): Promise<EvalCellResult> {
  const task = resolveTask(o.task);
  const encoder = o.encoder;
  const all = readAnnotations(o.annotations);
  const train: Annotation[] =
    o.budget === undefined
      ? all.filter((a) => a.split === 'train')
      : sampleLabelBudget(all, o.budget, o.seed, o.annotations);
  const test = all.filter((a) => a.split === 'test');
  if (train.length === 0 || test.length === 0) {
    throw new QcbError(
      'QCB_ANNOTATIONS',
      `the annotation file has ${train.length} training and ${test.length} test crops; a cell needs both`,
      {
        file: o.annotations,
        key: 'split',
        fix: 'mark crops split=train and split=test in the annotation file',
      },
    );
  }
  const t0 = Date.now();
  const store = await openCropStore(o.store);
  const testStore = o.testStore ? await openCropStore(o.testStore) : store;
  if (store.size !== testStore.size) {
    throw new QcbError(
      'QCB_IMAGE_SIZE',
      `train crops are ${store.size}×${store.size}, test crops ${testStore.size}×${testStore.size}`,
      { file: testStore.path, fix: 'extract both stores with the same crop size' },
    );
  }
  const trainSplit = await readAnnotatedCrops(store, train, {
    annotationsFile: o.annotations,
    which: 'training',
    channels: o.channels,
  });
  const testSplit = await readAnnotatedCrops(testStore, test, {
    annotationsFile: o.annotations,
    which: 'test',
    channels: o.channels,
    hint: o.testStore
      ? undefined
      : 'use the store the annotations were made on, or a separate test store for a domain-shift test set',
  });
  const tRead = (Date.now() - t0) / 1000;
  const t1 = Date.now();
  const eg =
    o.encoderGraph ??
    (await encoder.load({
      cropSize: store.size,
      seed: o.seed,
      weightsDir: o.weightsDir,
      cacheDir: o.cacheDir,
      pretrained: o.pretrained,
      threads: o.threads,
      log: o.log,
      settings: o.encoderSettings,
    }));
  const tLoad = (Date.now() - t1) / 1000;
  o.log?.info(`encoder ${encoder.name}`, { label: encoder.label, kind: encoder.kind, dim: eg.dim });
  const run = await runCell({
    task,
    eg,
    preprocess: eg.preprocess ?? encoder.preprocess,
    train: trainSplit,
    test: { crops: testSplit.crops, rows: test },
    seed: o.seed,
    settings: o.taskSettings,
    lineSearch: o.lineSearch,
    bootstrap: o.bootstrap ?? 1000,
    threads: o.threads,
    log: o.log,
  });
  return {
    encoder: { name: encoder.name, label: encoder.label, kind: encoder.kind, dim: eg.dim, source: eg.source },
    task: task.name,
    budget: o.budget ?? null,
    seed: o.seed,
    metrics: run.metrics,
    predictions: run.predictions,
    settings: run.settings,
    line_search: run.lineSearch,
    loss_curve: run.lossCurve,
    timing: { read: tRead, encoder: tLoad, ...run.timing },
  };
}
