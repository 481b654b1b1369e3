/**
 * One benchmark cell end to end (encoder × task × label budget × seed × test set): annotated crops read from the
 * crop store(s), the encoder built or loaded, the downstream task run (paper §3.3) and the test predictions scored
 * (§3.4). `qcbench eval` is this function with a command line; the runner can call it too.
 */
import { type Annotation, readAnnotations, sampleLabelBudget } from '../data/annotations.js';
import { type CropStore, openCropStore } from '../data/store/crop-store.js';
import { resolveEncoder } from '../encoders/registry.js';
import type { EncoderGraph } from '../encoders/types.js';
import { QcbError } from '../errors.js';
import { evaluate } from '../metrics/classification.js';
import type { CellMetrics, EncoderKind, Prediction } from '../results/schema.js';
import type { Logger } from '../util/log.js';
import { chooseChannels, pickChannels } from '../encoders/features.js';
import { resolveTask, runTask, type TaskOutput } from './registry.js';
import type { TaskSplit } from './task.js';

export interface EvalCellOptions {
  /** Registry name or ONNX path. */
  encoder: string;
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
  /** An encoder graph already loaded (skips loading; the runner shares one across cells). */
  encoderGraph?: EncoderGraph;
}

export interface EvalCellResult {
  encoder: { name: string; label: string; kind: EncoderKind; dim: number; source: Record<string, unknown> };
  task: string;
  budget: number | null;
  seed: number;
  metrics: CellMetrics;
  predictions: Prediction[];
  settings: Record<string, unknown>;
  line_search?: { best: number; scores: { value: number; f1: number }[]; n_val: number };
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

/** Runs one cell (see module doc). @throws QCB_WEIGHTS_MISSING for ImageNet encoders without weights, … */
export async function evaluateCell(o: EvalCellOptions): Promise<EvalCellResult> {
  const task = resolveTask(o.task);
  const encoder = resolveEncoder(o.encoder);
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
  const out: TaskOutput = await runTask(task, {
    eg,
    preprocess: eg.preprocess ?? encoder.preprocess,
    train: trainSplit,
    test: testSplit,
    seed: o.seed,
    settings: o.taskSettings,
    lineSearch: o.lineSearch,
    threads: o.threads,
    log: o.log,
  });
  const predictions: Prediction[] = test.map((a, i) => ({
    crop_id: a.crop_id,
    label: a.label,
    pred: out.pred[i],
    score: out.score[i],
    ...(a.label === 'abnormal' && a.artefact_type && a.artefact_type !== 'none'
      ? { artefact_type: a.artefact_type }
      : {}),
  }));
  const metrics = evaluate(predictions, {
    classes: ['normal', 'abnormal'],
    bootstrap: o.bootstrap ?? 1000,
    seed: o.seed,
    nTrain: train.length,
  });
  return {
    encoder: { name: encoder.name, label: encoder.label, kind: encoder.kind, dim: eg.dim, source: eg.source },
    task: task.name,
    budget: o.budget ?? null,
    seed: o.seed,
    metrics,
    predictions,
    settings: out.settings,
    line_search: out.lineSearch
      ? { best: out.lineSearch.best, scores: out.lineSearch.scores, n_val: out.lineSearch.valRows.length }
      : undefined,
    loss_curve: out.lossCurve,
    timing: { read: tRead, encoder: tLoad, ...out.timing },
  };
}
