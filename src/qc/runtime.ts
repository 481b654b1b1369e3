/**
 * Loading and running an exported QC classifier: the ONNX file plus its JSON sidecar (`MODEL.json`), checked against
 * each other and against the crops before any work starts.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import type { Preprocess } from '../encoders/types.js';
import type { Precision, QuantizeReport } from '../engine/quantize/index.js';
import { sessionOptions } from '../engine/runtime/session.js';
import { QcbError } from '../errors.js';
import type { CellMetrics } from '../results/schema.js';
import type { OperatingPoint } from './calibrate.js';
import type { RecordedNormalisation } from './window.js';

/** What `MODEL.json` holds (written by `qcbench qc train`). */
export interface QcSidecar {
  format: 'qcbench-qc-model';
  version: 1;
  qcbench_version: string;
  created_at: string;
  /** SHA-256 of the ONNX file this sidecar describes. */
  model_sha256: string;
  encoder: { name: string; label: string; kind: string; dim: number; source: Record<string, unknown> };
  task: string;
  /** What "abnormal" means to this model: these artefact types only (`qc train --artefacts`); absent: every type. */
  artefacts?: string[];
  task_settings: Record<string, unknown>;
  /** Crop side S of the `crops` input. */
  crop_size: number;
  /** The crop store's channel names in order: the model takes crops with exactly these C channels. */
  store_channels: string[];
  /** The store channels fed to the encoder as R, G, B. */
  channels: string[];
  channel_indices: number[];
  input: { name: 'crops'; dtype: 'uint8' | 'float32'; shape: (string | number)[] };
  outputs: string[];
  /** In-graph preprocessing: x / 255, then (x − mean) / std per RGB channel. */
  preprocessing: { scale: number } & Preprocess;
  classes: string[];
  /** A crop is abnormal when abnormal_score > threshold. */
  threshold: number;
  /** How the threshold was chosen and what it does (qc/calibrate.ts); absent in models made before calibration. */
  operating_point?: OperatingPoint;
  /**
   * Test metrics of this model; an int8 model also gives its fp32 source's (`fp32_metrics`). n_val: the validation
   * split the threshold was calibrated on (taken out of the train split).
   */
  validation: {
    n_train: number;
    n_val?: number;
    n_test: number;
    metrics: CellMetrics | null;
    fp32_metrics?: CellMetrics | null;
  };
  /** Numeric precision of the model (absent: fp32). */
  precision?: Precision;
  /** How an int8 model was quantised (src/qc/quantize.ts). */
  quantization?: QcQuantization;
  data: { annotations: string; annotations_hash: string; store: string; store_hash: string };
  seed: number;
  /** The training store's intensity normalisation (mode + windows; src/qc/window.ts); absent in older models. */
  normalisation?: RecordedNormalisation;
}

/** The sidecar's record of an int8 model's quantisation (src/qc/quantize.ts). */
export type QcQuantization = QuantizeReport & {
  calibration: {
    /** Crop store (absolute path) and its content hash. */
    store: string;
    store_hash: string;
    /** Which crops: a sample of the training split (`qc train`) or of the whole store (`qc quantize`). */
    from: 'train split' | 'store';
    /** Crops used. */
    crops: number;
    seed: number;
  };
  /** onnxruntime's integer kernels in its optimised graph, by op (read back from the optimised model). */
  integer_kernels: Record<string, number>;
  /** SHA-256 of the fp32 model quantised. */
  source_model_sha256: string;
  /** int8 − fp32 on the test split, in points (null without test metrics). */
  delta: { auc: number; f1: number } | null;
};

/** `MODEL.onnx` → `MODEL.json`. */
export function sidecarPath(modelPath: string): string {
  return modelPath.replace(/\.onnx$/i, '') + '.json';
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A loaded QC model. */
export interface QcModel {
  path: string;
  sidecar: QcSidecar;
  bytes: Uint8Array;
  session: ort.InferenceSession;
}

/**
 * Reads and checks MODEL.onnx and MODEL.json (no session yet).
 * @throws QCB_FILE_NOT_FOUND for a missing model or sidecar, QCB_FILE_FORMAT for a sidecar that is not a QC
 *   sidecar or does not match the model file (hash)
 */
export function readQcModel(modelPath: string): { bytes: Uint8Array; sidecar: QcSidecar } {
  if (!existsSync(modelPath)) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `QC model not found: ${modelPath}`, {
      file: modelPath,
      key: '--model',
      fix: 'train one with `qcbench qc train … --out MODEL.onnx`, or give the path of an existing model',
    });
  }
  const sc = sidecarPath(modelPath);
  if (!existsSync(sc)) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `the QC model's sidecar ${sc} is missing`, {
      file: sc,
      key: '--model',
      fix: 'keep MODEL.json beside MODEL.onnx (both are written by `qcbench qc train`)',
    });
  }
  let sidecar: QcSidecar;
  try {
    sidecar = JSON.parse(readFileSync(sc, 'utf8'));
  } catch (e) {
    throw new QcbError('QCB_FILE_FORMAT', `the QC sidecar ${sc} is not valid JSON`, {
      file: sc,
      cause: e,
      fix: 'retrain the model or restore the sidecar',
    });
  }
  if (
    sidecar?.format !== 'qcbench-qc-model' ||
    !Number.isInteger(sidecar.crop_size) ||
    !Array.isArray(sidecar.store_channels)
  ) {
    throw new QcbError('QCB_FILE_FORMAT', `${sc} is not a qcbench QC model sidecar`, {
      file: sc,
      key: 'format',
      value: sidecar?.format,
      allowed: 'qcbench-qc-model',
      fix: 'give the MODEL.onnx written by `qcbench qc train` (its sidecar is MODEL.json)',
    });
  }
  const bytes = new Uint8Array(readFileSync(modelPath));
  const h = sha256(bytes);
  if (h !== sidecar.model_sha256) {
    throw new QcbError('QCB_FILE_FORMAT', `the sidecar ${sc} describes another model file than ${modelPath}`, {
      file: sc,
      key: 'model_sha256',
      value: h,
      allowed: sidecar.model_sha256,
      fix: 'keep each MODEL.onnx with the MODEL.json written beside it (retrain if they were mixed up)',
    });
  }
  return { bytes, sidecar };
}

/** Loads the model into a fresh onnxruntime session. */
export async function loadQcModel(modelPath: string, o: { threads?: number } = {}): Promise<QcModel> {
  const { bytes, sidecar } = readQcModel(modelPath);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, sessionOptions({ intraOpNumThreads: o.threads }));
  } catch (e) {
    throw new QcbError('QCB_ONNX_PARSE', `onnxruntime cannot load ${modelPath}: ${(e as Error).message}`, {
      file: modelPath,
      cause: e,
      fix: 'retrain the model with `qcbench qc train`',
    });
  }
  return { path: modelPath, sidecar, bytes, session };
}

/**
 * Checks that crops of a store (channel names, side) fit the model.
 * @throws QCB_STORE naming the store, the mismatch and the fix
 */
export function checkStoreFits(
  sidecar: QcSidecar,
  store: { path: string; channels: string[]; size: number },
  modelPath: string,
): void {
  if (store.size !== sidecar.crop_size) {
    throw new QcbError(
      'QCB_STORE',
      `the store's crops are ${store.size}×${store.size} but the model ${modelPath} takes ${sidecar.crop_size}×${sidecar.crop_size}`,
      {
        file: store.path,
        key: 'size',
        value: store.size,
        allowed: String(sidecar.crop_size),
        fix: `cut the crops with --size ${sidecar.crop_size} (qcbench data crops), or train a model on crops of ${store.size}`,
      },
    );
  }
  const same =
    store.channels.length === sidecar.store_channels.length &&
    store.channels.every((c, i) => c.toLowerCase() === sidecar.store_channels[i].toLowerCase());
  if (!same) {
    throw new QcbError(
      'QCB_STORE',
      `the store has ${store.channels.length} channel(s) [${store.channels.join(', ')}] but the model ${modelPath} takes [${sidecar.store_channels.join(', ')}]`,
      {
        file: store.path,
        key: 'channels',
        value: store.channels,
        allowed: sidecar.store_channels.join(', '),
        fix: 'cut the crops with the channels (in that order) the model was trained on, or train a model on this store',
      },
    );
  }
}

/**
 * Scores n crops (n×C×S×S uint8) with a QC session.
 * @returns abnormal_score (n)
 */
export async function scoreCrops(
  session: ort.InferenceSession,
  data: Uint8Array,
  n: number,
  C: number,
  S: number,
  dtype: 'uint8' | 'float32' = 'uint8',
): Promise<Float32Array> {
  const t =
    dtype === 'uint8'
      ? new ort.Tensor('uint8', data, [n, C, S, S])
      : new ort.Tensor('float32', Float32Array.from(data), [n, C, S, S]);
  let r: ort.InferenceSession.OnnxValueMapType;
  try {
    r = await session.run({ crops: t }, ['abnormal_score']);
  } catch (e) {
    throw new QcbError('QCB_RUNTIME', `onnxruntime failed scoring ${n} crops: ${(e as Error).message}`, {
      cause: e,
      fix: 'check that the model and the crops match (qcbench qc apply checks this up front)',
    });
  }
  return Float32Array.from(r.abnormal_score.data as Float32Array);
}
