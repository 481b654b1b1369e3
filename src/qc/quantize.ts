/**
 * int8 QC classifiers: the exported fp32 classifier (src/qc/model.ts) statically quantised (src/engine/quantize/)
 * with activation ranges calibrated on crops of a store, still one self-contained ONNX file with the same `crops`
 * input and outputs, which onnxruntime runs as integer kernels (QLinearConv, QLinearAdd, …).
 *
 * What is quantised: the encoder body, i.e. every node the `features` value depends on (for a fine-tuned model,
 * everything up to `logits`). The head stays fp32: the kNN distances to the embedded bank and their TopK, and the
 * linear head's 2 outputs, cost nothing next to the body and decide the score, so they keep full precision. The
 * uint8 → float preprocessing (channel Gather, Cast, scale and shift) stays fp32 too: it is elementwise and feeds
 * the first quantised convolution.
 *
 * Calibration crops: a seeded random sample (without replacement) of `crops` rows of the calibration set (the
 * training split for `qc train --precision int8`, the whole store for `qc quantize`); all rows when there are fewer.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import p from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { openCropStore } from '../data/store/crop-store.js';
import { selectCrops } from '../encoders/features.js';
import type { Graph } from '../engine/ir/graph.js';
import { exportOnnx } from '../engine/onnx/export.js';
import { importOnnx } from '../engine/onnx/import.js';
import {
  type CalibrationMethod,
  integerKernels,
  optimizedOpTypes,
  type QuantizeReport,
  quantizeGraph,
} from '../engine/quantize/index.js';
import { sessionOptions } from '../engine/runtime/session.js';
import { QcbError } from '../errors.js';
import { evaluate } from '../metrics/classification.js';
import type { CellMetrics, Prediction } from '../results/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { logger as defaultLogger, type Logger } from '../util/log.js';
import { permutation } from '../util/random.js';
import { readAnnotations } from '../data/annotations.js';
import {
  checkStoreFits,
  type QcQuantization,
  type QcSidecar,
  readQcModel,
  scoreCrops,
  sha256,
  sidecarPath,
} from './runtime.js';

/** Calibration crops by default (a few batches: the ranges settle well before). */
export const CALIBRATION_CROPS = 256;

export interface QuantizeQcOptions {
  /** Crops for calibration (default {@link CALIBRATION_CROPS}). */
  crops?: number;
  method?: CalibrationMethod;
  percentile?: number;
  seed?: number;
  threads?: number;
  log?: Logger;
}

/** Names of the nodes the value `out` depends on. */
function ancestorsOf(g: Graph, out: string): Set<string> {
  const need = new Set([out]);
  const nodes = new Set<string>();
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (!n.outputs.some((o) => need.has(o))) continue;
    nodes.add(n.name);
    for (const i of n.inputs) if (i) need.add(i);
  }
  return nodes;
}

/** The ONNX file's metadata_props. */
function modelMetadata(bytes: Uint8Array): Record<string, string> {
  const m = p.onnx.ModelProto.decode(bytes);
  const out: Record<string, string> = {};
  for (const kv of m.metadataProps ?? []) if (kv.key) out[kv.key] = kv.value ?? '';
  return out;
}

/** `n` rows of `total` (seeded sample without replacement, in ascending order; all when n ≥ total). */
export function calibrationRows(total: number, n: number, seed: number): number[] {
  if (n >= total) return Array.from({ length: total }, (_, i) => i);
  return permutation(total, seed)
    .slice(0, n)
    .sort((a, b) => a - b);
}

/**
 * Quantises the bytes of an fp32 QC classifier with calibration crops (n×C×S×S uint8).
 * @returns the int8 model's bytes (metadata kept, plus `qcbench.precision` = int8) and the engine's report
 */
export async function quantizeQcBytes(
  bytes: Uint8Array,
  crops: { data: Uint8Array; n: number; channels: number; size: number },
  o: QuantizeQcOptions = {},
): Promise<{ bytes: Uint8Array; report: QuantizeReport }> {
  const g = importOnnx(bytes, { file: 'QC model' });
  const body = g.values.has('features') && g.nodes.some((n) => n.outputs.includes('features')) ? 'features' : 'logits';
  const include = ancestorsOf(g, body);
  const { channels: C, size: S } = crops;
  const per = C * S * S;
  const bs = 32;
  const feeds = function* () {
    for (let s = 0; s < crops.n; s += bs) {
      const m = Math.min(bs, crops.n - s);
      yield { crops: new ort.Tensor('uint8', crops.data.subarray(s * per, (s + m) * per), [m, C, S, S]) };
    }
  };
  const q = await quantizeGraph(g, {
    calibration: feeds(),
    method: o.method,
    percentile: o.percentile,
    threads: o.threads,
    include: (n) => include.has(n.name),
  });
  const metadata = { ...modelMetadata(bytes), 'qcbench.precision': 'int8' };
  return { bytes: exportOnnx(q.graph, { metadata }), report: q.report };
}

/** Scores rows of a store with model bytes; abnormal_score per row. */
async function scoreRows(
  bytes: Uint8Array,
  data: Uint8Array,
  n: number,
  C: number,
  S: number,
  threads?: number,
): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, sessionOptions({ intraOpNumThreads: threads }));
  try {
    const out = new Float32Array(n);
    const per = C * S * S;
    for (let i = 0; i < n; i += 64) {
      const m = Math.min(64, n - i);
      out.set(await scoreCrops(s, data.subarray(i * per, (i + m) * per), m, C, S), i);
    }
    return out;
  } finally {
    await s.release();
  }
}

/** The test metrics of model bytes on labelled crops (as `qc train` validates: bootstrap 200). */
export async function testMetrics(
  bytes: Uint8Array,
  test: { crop_id: string; label: string; artefact_type?: string }[],
  data: Uint8Array,
  C: number,
  S: number,
  o: { threshold: number; seed: number; nTrain: number; threads?: number },
): Promise<{ predictions: Prediction[]; metrics: CellMetrics | null }> {
  const scores = await scoreRows(bytes, data, test.length, C, S, o.threads);
  const predictions: Prediction[] = test.map((a, i) => ({
    crop_id: a.crop_id,
    label: a.label,
    pred: scores[i] > o.threshold ? 'abnormal' : 'normal',
    score: scores[i],
    artefact_type: a.artefact_type,
  }));
  const both = test.some((a) => a.label === 'abnormal') && test.some((a) => a.label === 'normal');
  const metrics = both
    ? evaluate(predictions, { classes: ['normal', 'abnormal'], bootstrap: 200, seed: o.seed, nTrain: o.nTrain })
    : null;
  return { predictions, metrics };
}

function delta(int8: CellMetrics | null, fp32: CellMetrics | null): { auc: number; f1: number } | null {
  return int8 && fp32 ? { auc: int8.auc - fp32.auc, f1: int8.f1 - fp32.f1 } : null;
}

/**
 * The int8 part of `qc train --precision int8`: quantises the exported fp32 bytes with a sample of the training
 * crops and validates the int8 model on the same test crops.
 * @returns the int8 bytes, their test predictions and metrics, and the sidecar fields to add
 */
export async function quantizeTrainedQc(a: {
  bytes: Uint8Array;
  train: { data: Uint8Array; n: number };
  test: { crop_id: string; label: string; artefact_type?: string }[];
  testData: Uint8Array | undefined;
  store: { path: string; hash: string; channels: string[]; size: number };
  threshold: number;
  seed: number;
  fp32Metrics: CellMetrics | null;
  o?: QuantizeQcOptions;
}): Promise<{
  bytes: Uint8Array;
  predictions: Prediction[] | undefined;
  metrics: CellMetrics | null;
  quantization: QcQuantization;
}> {
  const o = a.o ?? {};
  const C = a.store.channels.length;
  const S = a.store.size;
  const seed = o.seed ?? a.seed;
  const rows = calibrationRows(a.train.n, o.crops ?? CALIBRATION_CROPS, seed);
  const q = await quantizeQcBytes(a.bytes, selectCrops({ ...a.train, channels: C, size: S }, rows), o);
  let predictions: Prediction[] | undefined;
  let metrics: CellMetrics | null = null;
  if (a.testData && a.test.length) {
    ({ predictions, metrics } = await testMetrics(q.bytes, a.test, a.testData, C, S, {
      threshold: a.threshold,
      seed: a.seed,
      nTrain: a.train.n,
      threads: o.threads,
    }));
  }
  const kernels = integerKernels(await optimizedOpTypes(q.bytes, { threads: o.threads }));
  return {
    bytes: q.bytes,
    predictions,
    metrics,
    quantization: {
      ...q.report,
      calibration: { store: a.store.path, store_hash: a.store.hash, from: 'train split', crops: rows.length, seed },
      integer_kernels: kernels,
      source_model_sha256: sha256(a.bytes),
      delta: delta(metrics, a.fp32Metrics),
    },
  };
}

export interface QuantizeModelOptions extends QuantizeQcOptions {
  /** fp32 MODEL.onnx (with MODEL.json) written by `qc train`. */
  model: string;
  /** Calibration crop store: crops of the model's size and channels. */
  store: string;
  /** Output MODEL-int8.onnx (its sidecar is written beside it). */
  out: string;
}

/**
 * The coded n/a of int8 for a model of hand-made measures: they run in float64 (exact ties, medians, a DFT) with no
 * int8 kernel, and the only op that has one is the head (D×2), so quantising gains no speed and costs accuracy (its
 * z-scored inputs have long tails that an int8 range coarsens: a cp-quality focus model fell from AUC 99.8 to 72.8).
 */
export function int8NotApplicable(encoder: string, file?: string): QcbError {
  return new QcbError(
    'QCB_NOT_APPLICABLE',
    `n/a: int8 does not apply to ${encoder}: its measures have no int8 kernel and quantising its small head only loses accuracy`,
    { file, key: '--precision', value: 'int8', allowed: 'fp32', fix: `keep the ${encoder} model in fp32` },
  );
}

/**
 * `qcbench qc quantize`: an int8 copy of an fp32 QC model, calibrated on a seeded sample of a store's crops. When the
 * fp32 model's annotation file is still there and the store holds its test crops, the int8 model is validated on them
 * and the sidecar shows its metrics next to the fp32 ones.
 * @throws QCB_STORE when the store's crop size or channels differ from the model's; QCB_USAGE for an int8 model;
 *   QCB_NOT_APPLICABLE for a model of hand-made measures (cp-quality)
 */
export async function quantizeQcModel(
  o: QuantizeModelOptions,
): Promise<{ model: string; sidecar: string; meta: QcSidecar }> {
  const log = o.log ?? defaultLogger;
  const { bytes, sidecar } = readQcModel(o.model);
  if (sidecar.precision === 'int8') {
    throw new QcbError('QCB_USAGE', `${o.model} is already an int8 model`, {
      file: o.model,
      key: 'precision',
      value: 'int8',
      allowed: 'fp32',
      fix: 'quantise the fp32 model it came from',
    });
  }
  if (sidecar.encoder.kind === 'handcrafted') throw int8NotApplicable(sidecar.encoder.name, o.model);
  const model = resolve(o.out);
  if (model === resolve(o.model)) {
    throw new QcbError('QCB_USAGE', `--out ${o.out} is the fp32 model itself`, {
      key: '--out',
      value: o.out,
      fix: 'write the int8 model to a new file, e.g. MODEL-int8.onnx',
    });
  }
  const store = await openCropStore(o.store);
  checkStoreFits(sidecar, store, o.model);
  const C = store.channels.length;
  const S = store.size;
  const seed = o.seed ?? sidecar.seed ?? 0;
  const rows = calibrationRows(store.count, o.crops ?? CALIBRATION_CROPS, seed);
  log.info('calibrating', { store: store.path, crops: rows.length, method: o.method ?? 'minmax' });
  const cal = await store.readIndices(rows);
  const q = await quantizeQcBytes(bytes, { data: cal, n: rows.length, channels: C, size: S }, o);

  // validation on the fp32 model's test split, when its annotations and crops are at hand
  let metrics: CellMetrics | null = null;
  const fp32Metrics = sidecar.validation.metrics;
  let note: string | undefined;
  try {
    const ann = readAnnotations(sidecar.data.annotations).filter((r) => r.split === 'test');
    const index = new Map(store.meta.map((m) => [m.crop_id, m.index]));
    const test = ann.filter((r) => index.has(r.crop_id));
    if (test.length === ann.length && test.length > 0) {
      const data = await store.readIndices(test.map((r) => index.get(r.crop_id)!));
      ({ metrics } = await testMetrics(q.bytes, test, data, C, S, {
        threshold: sidecar.threshold,
        seed: sidecar.seed,
        nTrain: sidecar.validation.n_train,
        threads: o.threads,
      }));
    } else note = 'the calibration store does not hold the test crops of the annotation file';
  } catch (e) {
    if (!(e instanceof QcbError)) throw e;
    note = `no int8 validation: ${e.message}`;
  }
  if (note) log.warn(note);
  const kernels = integerKernels(await optimizedOpTypes(q.bytes, { threads: o.threads }));
  const meta: QcSidecar = {
    ...sidecar,
    created_at: new Date().toISOString(),
    model_sha256: sha256(q.bytes),
    precision: 'int8',
    quantization: {
      ...q.report,
      calibration: { store: store.path, store_hash: store.hash, from: 'store', crops: rows.length, seed },
      integer_kernels: kernels,
      source_model_sha256: sidecar.model_sha256,
      delta: delta(metrics, fp32Metrics),
    },
    validation: { ...sidecar.validation, metrics, fp32_metrics: fp32Metrics },
  };
  mkdirSync(dirname(model), { recursive: true });
  writeFileAtomic(model, q.bytes);
  const sc = sidecarPath(model);
  writeJsonAtomic(sc, meta);
  log.info('int8 QC model written', { model, auc: metrics?.auc, fp32_auc: fp32Metrics?.auc });
  return { model, sidecar: sc, meta };
}
