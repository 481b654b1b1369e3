/**
 * The downstream training stage as a content-addressed artifact: a model trained once per `trainId` (encoder, task,
 * budget, seed, training set, task settings — src/runner/cells.ts) and evaluated on every test set that asks for it,
 * so the domain-shift cell scores the very model the in-domain cell trained, and a resumed run does not retrain.
 *
 * On disk, `<cache>/models/<trainId>/`:
 *   model.json   ModelRecord: task, settings used (line-search choice applied), loss curve and the small heads
 *                (linear weights, quadratic head, kNN labels and k)
 *   bank.f32     kNN only: the training features, N×D float32 little-endian (the neighbour bank)
 *   model.onnx   fine-tuning only: the inference graph `input` N×3×T×T → `logits` N×2 (the engine's export)
 *
 * Training mirrors src/downstream/registry.ts task by task (same defaults, settings merge and line search); the
 * registry's `run` couples training and prediction, which is why the split lives here. Predictions are always made
 * from the reloaded artifact, so a cell's result does not depend on whether its model was trained in this process.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EncoderGraph, Preprocess } from '../encoders/types.js';
import { exportOnnx } from '../engine/onnx/export.js';
import { importOnnx } from '../engine/onnx/import.js';
import { QcbError } from '../errors.js';
import { type CropSet, type Features, selectCrops } from '../downstream/features.js';
import { FINETUNE_DEFAULTS, type FinetuneModel, predictFinetune, trainFinetune } from '../downstream/finetune.js';
import type { HeadTrainSettings } from '../downstream/head.js';
import { knnClassify } from '../downstream/knn.js';
import { type LineSearchResult, lineSearch } from '../downstream/line-search.js';
import { LINEAR_DEFAULTS, type LinearModel, predictLinear, trainLinear } from '../downstream/linear.js';
import type { LayerParams } from '../second-order/analytic.js';
import { fitQuadraticHead, predictQuadraticHead, type QuadraticHead } from '../second-order/head.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import type { Logger } from '../util/log.js';
import type { TaskName } from './results.js';

export const MODEL_SCHEMA = 'qcbench.model/1';

/** Tasks whose trained model this stage persists (any other task runs through the registry, untrained-cached). */
export const PERSISTED_TASKS: readonly TaskName[] = ['knn', 'linear', 'finetune', 'quadratic'];

export interface ModelRecord {
  schema: typeof MODEL_SCHEMA;
  task: TaskName;
  train_id: string;
  n_train: number;
  train_crop_ids: string[];
  /** Settings actually used (defaults filled, line-search choice applied). */
  settings: Record<string, unknown>;
  line_search?: { best: number; scores: { value: number; f1: number }[]; n_val: number };
  loss_curve?: number[];
  seconds: number;
  knn?: { k: number; normalize: 'raw' | 'l2'; labels: string[]; rows: number; cols: number };
  linear?: { weight: number[]; bias: number[]; dim: number; classes: string[] };
  quadratic?: {
    classes: string[];
    positiveClass: string;
    mean: number[];
    std: number[];
    layer: { order: 1 | 2; in: number; out: number } & Record<LayerKey, number[]>;
    trainLoss: number;
  };
  finetune?: { input_size: number; preprocess: Preprocess; classes: string[]; images_per_second: number };
}

const LAYER_KEYS = ['wr', 'br', 'wg', 'bg', 'wb', 'c'] as const;
type LayerKey = (typeof LAYER_KEYS)[number];

/** What training needs: the training split, and its frozen features for the frozen-encoder tasks. */
export interface TrainInputs {
  task: TaskName;
  trainId: string;
  eg: EncoderGraph;
  preprocess: Preprocess;
  crops: CropSet;
  labels: string[];
  ids: string[];
  /** Frozen features of the training rows (knn, linear, quadratic). */
  features?: Features;
  seed: number;
  settings?: Record<string, unknown>;
  lineSearch?: { enabled: boolean; val_fraction: number; lr: readonly number[] };
  threads?: number;
  log?: Logger;
}

/** A model read back from its artifact. */
export interface LoadedModel {
  record: ModelRecord;
  dir: string;
}

function headSettings(defaults: HeadTrainSettings, s: Record<string, unknown> = {}): HeadTrainSettings {
  const out = { ...defaults, milestones: [...defaults.milestones] };
  for (const k of Object.keys(defaults) as (keyof HeadTrainSettings)[])
    if (s[k] !== undefined) (out as Record<string, unknown>)[k] = s[k];
  return out;
}

function rowsOf(f: Features, rows: readonly number[]): Features {
  const data = new Float32Array(rows.length * f.cols);
  rows.forEach((r, i) => {
    data.set(f.data.subarray(r * f.cols, (r + 1) * f.cols), i * f.cols);
  });
  return { data, rows: rows.length, cols: f.cols };
}

function needFeatures(inp: TrainInputs): Features {
  if (!inp.features)
    throw new QcbError('QCB_INTERNAL', `the ${inp.task} stage needs the frozen features of the training crops`);
  return inp.features;
}

const lsRecord = (ls?: LineSearchResult): ModelRecord['line_search'] =>
  ls ? { best: ls.best, scores: ls.scores, n_val: ls.valRows.length } : undefined;

/** Float32 array as little-endian bytes. */
export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Little-endian float32 file → Float32Array (copied, so it is aligned). */
export function readF32(file: string): Float32Array {
  const buf = readFileSync(file);
  const out = new Float32Array(buf.length / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/**
 * Trains the model of `inp.task` on the training split and writes its artifact into the directory `dir` (created).
 * @throws what the task's training throws (QCB_NAN_LOSS, QCB_ANNOTATIONS for too few images, …)
 */
export async function trainModel(inp: TrainInputs, dir: string): Promise<ModelRecord> {
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  const base = {
    schema: MODEL_SCHEMA,
    task: inp.task,
    train_id: inp.trainId,
    n_train: inp.labels.length,
    train_crop_ids: inp.ids,
  } as const;
  let rec: ModelRecord;
  const ls = inp.lineSearch?.enabled ? inp.lineSearch : undefined;
  switch (inp.task) {
    case 'knn': {
      const f = needFeatures(inp);
      const k = typeof inp.settings?.k === 'number' ? inp.settings.k : 5;
      const n = inp.settings?.normalize;
      const normalize = n === true || n === 'l2' ? ('l2' as const) : ('raw' as const);
      writeFileAtomic(join(dir, 'bank.f32'), f32Bytes(f.data));
      rec = {
        ...base,
        settings: { k: Math.min(k, f.rows), normalize },
        seconds: 0,
        knn: { k, normalize, labels: [...inp.labels], rows: f.rows, cols: f.cols },
      };
      break;
    }
    case 'linear': {
      const f = needFeatures(inp);
      const s = headSettings(LINEAR_DEFAULTS, inp.settings);
      let found: LineSearchResult | undefined;
      if (ls) {
        found = await lineSearch({
          labels: inp.labels,
          grid: ls.lr,
          valFraction: ls.val_fraction,
          seed: inp.seed,
          evaluate: async (fit, val, lr) => {
            const m = await trainLinear(
              rowsOf(f, fit),
              fit.map((i) => inp.labels[i]),
              { seed: inp.seed, settings: { ...s, lr }, threads: inp.threads },
            );
            return predictLinear(m, rowsOf(f, val)).pred;
          },
        });
        s.lr = found.best;
      }
      const m = await trainLinear(f, inp.labels, { seed: inp.seed, settings: s, threads: inp.threads, log: inp.log });
      rec = {
        ...base,
        settings: { ...s },
        line_search: lsRecord(found),
        loss_curve: m.lossCurve,
        seconds: 0,
        linear: { weight: Array.from(m.weight), bias: Array.from(m.bias), dim: m.dim, classes: [...m.classes] },
      };
      break;
    }
    case 'finetune': {
      const s = headSettings(FINETUNE_DEFAULTS, inp.settings);
      let found: LineSearchResult | undefined;
      if (ls) {
        found = await lineSearch({
          labels: inp.labels,
          grid: ls.lr,
          valFraction: ls.val_fraction,
          seed: inp.seed,
          evaluate: async (fit, val, lr) => {
            const m = await trainFinetune(
              inp.eg,
              inp.preprocess,
              selectCrops(inp.crops, fit),
              fit.map((i) => inp.labels[i]),
              { seed: inp.seed, settings: { ...s, lr }, threads: inp.threads },
            );
            return (await predictFinetune(m, selectCrops(inp.crops, val), { threads: inp.threads })).pred;
          },
        });
        s.lr = found.best;
      }
      const m = await trainFinetune(inp.eg, inp.preprocess, inp.crops, inp.labels, {
        seed: inp.seed,
        settings: s,
        threads: inp.threads,
        log: inp.log,
      });
      writeFileAtomic(join(dir, 'model.onnx'), exportOnnx(m.graph, { metadata: { 'qcbench.train_id': inp.trainId } }));
      rec = {
        ...base,
        settings: { ...s, images_per_second: m.images_per_second },
        line_search: lsRecord(found),
        loss_curve: m.lossCurve,
        seconds: 0,
        finetune: {
          input_size: m.inputSize,
          preprocess: m.preprocess,
          classes: [...m.classes],
          images_per_second: m.images_per_second,
        },
      };
      break;
    }
    case 'quadratic': {
      const f = needFeatures(inp);
      const st = inp.settings ?? {};
      const num = (k: string, d: number) => (typeof st[k] === 'number' ? (st[k] as number) : d);
      const settings = {
        steps: num('steps', 300),
        lr: num('lr', 0.02),
        weightDecay: num('weight_decay', 1e-3),
        init: st.init === 'random' ? ('random' as const) : ('first-order' as const),
      };
      const head = await fitQuadraticHead(f, inp.labels, {
        ...settings,
        order: 2,
        seed: inp.seed,
        positiveClass: 'abnormal',
      });
      const layer = { order: head.layer.order, in: head.layer.in, out: head.layer.out } as NonNullable<
        ModelRecord['quadratic']
      >['layer'];
      for (const k of LAYER_KEYS) layer[k] = Array.from(head.layer[k] ?? []);
      rec = {
        ...base,
        settings: { ...settings, order: 2 },
        seconds: 0,
        quadratic: {
          classes: head.classes,
          positiveClass: head.positiveClass,
          mean: Array.from(head.mean),
          std: Array.from(head.std),
          layer,
          trainLoss: head.trainLoss,
        },
      };
      break;
    }
    default:
      throw new QcbError('QCB_INTERNAL', `no persisted training for task '${inp.task}'`);
  }
  rec.seconds = (Date.now() - t0) / 1000;
  writeJsonAtomic(join(dir, 'model.json'), rec);
  return rec;
}

/** Reads a model artifact written by `trainModel`. */
export function loadModel(dir: string): LoadedModel {
  const record = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as ModelRecord;
  if (record.schema !== MODEL_SCHEMA)
    throw new QcbError('QCB_INTERNAL', `model ${dir} has schema ${record.schema}, expected ${MODEL_SCHEMA}`, {
      file: join(dir, 'model.json'),
      fix: 'delete the model folder: it is retrained',
    });
  return { record, dir };
}

/**
 * Test predictions of a loaded model: frozen-encoder tasks score `testFeatures`, fine-tuning runs its exported graph
 * on `testCrops`.
 */
export async function predictModel(
  m: LoadedModel,
  test: { crops: CropSet; features?: Features },
  o: { threads?: number } = {},
): Promise<{ pred: string[]; score: number[] }> {
  const r = m.record;
  const feats = () => {
    if (!test.features) throw new QcbError('QCB_INTERNAL', `the ${r.task} model needs the test crops' features`);
    return test.features;
  };
  if (r.knn) {
    const bank = readF32(join(m.dir, 'bank.f32'));
    const res = knnClassify({ data: bank, rows: r.knn.rows, cols: r.knn.cols }, r.knn.labels, feats(), {
      k: r.knn.k,
      normalize: r.knn.normalize,
    });
    return { pred: res.pred, score: res.score };
  }
  if (r.linear) {
    const lm: LinearModel = {
      weight: Float32Array.from(r.linear.weight),
      bias: Float32Array.from(r.linear.bias),
      dim: r.linear.dim,
      classes: r.linear.classes,
      lossCurve: r.loss_curve ?? [],
    };
    return predictLinear(lm, feats());
  }
  if (r.quadratic) {
    const q = r.quadratic;
    const layer = { order: q.layer.order, in: q.layer.in, out: q.layer.out } as LayerParams;
    for (const k of LAYER_KEYS) layer[k] = Float64Array.from(q.layer[k]);
    const head: QuadraticHead = {
      classes: q.classes,
      positiveClass: q.positiveClass,
      mean: Float64Array.from(q.mean),
      std: Float64Array.from(q.std),
      layer,
      trainLoss: q.trainLoss,
    };
    const p = predictQuadraticHead(head, feats());
    return { pred: p.pred, score: p.score };
  }
  if (r.finetune) {
    const fm: FinetuneModel = {
      graph: importOnnx(join(m.dir, 'model.onnx')),
      inputSize: r.finetune.input_size,
      preprocess: r.finetune.preprocess,
      classes: r.finetune.classes,
      lossCurve: r.loss_curve ?? [],
      images_per_second: r.finetune.images_per_second,
    };
    return predictFinetune(fm, test.crops, { threads: o.threads });
  }
  throw new QcbError('QCB_INTERNAL', `model ${m.dir} holds no known classifier`, {
    file: join(m.dir, 'model.json'),
    fix: 'delete the model folder: it is retrained',
  });
}
