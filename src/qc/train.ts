/**
 * `qcbench qc train`: trains the chosen encoder + downstream head (Masud et al. 2022 §3.3: kNN, linear layer on the
 * frozen encoder, or fine-tuning) on the annotations' train split and exports ONE self-contained ONNX classifier
 * (src/qc/model.ts) with its JSON sidecar; validation metrics are those of the exported model itself on the test split.
 * Hand-made measures (cp-quality) enter as their ONNX graph with the training crops' z-score inside the model (kNN and
 * linear only). With `artefacts`, "abnormal" means those artefact types: a detector of them (e.g. a focus model),
 * trained and tested on them against the normal crops.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { qcbenchVersion } from '../util/version.js';
import { ANNOTATION_ARTEFACT_TYPES, type Annotation, readAnnotations } from '../data/annotations.js';
import { type CropStore, openCropStore } from '../data/store/crop-store.js';
import { chooseChannels, fitStandardiser, pickChannels, standardise } from '../encoders/features.js';
import { notApplicable } from '../encoders/types.js';
import { FINETUNE_DEFAULTS, trainFinetune } from '../downstream/finetune.js';
import { LINEAR_DEFAULTS, trainLinear } from '../downstream/linear.js';
import { resolveTask } from '../downstream/registry.js';
import { resolveEncoder } from '../runner/catalog.js';
import { exportOnnx } from '../engine/onnx/export.js';
import { sessionOptions } from '../engine/runtime/session.js';
import { QcbError } from '../errors.js';
import { evaluate } from '../metrics/classification.js';
import type { Prediction } from '../results/schema.js';
import { contentHash, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { logger as defaultLogger, type Logger } from '../util/log.js';
import { didYouMean } from '../util/suggest.js';
import { buildClassifierGraph, buildFeatureGraph, type ClassifierSpec, QC_CLASSES, type QcHead } from './model.js';
import { type QcSidecar, scoreCrops, sha256, sidecarPath } from './runtime.js';
import {
  checkMaxFpr,
  chooseThreshold,
  DEFAULT_MAX_FPR,
  minNormalsFor,
  type OperatingPoint,
  splitRates,
  VALIDATION_FRACTION,
} from './calibrate.js';
import { stratifiedSplit } from '../downstream/line-search.js';
import { recordedNormalisation } from './window.js';
import { int8NotApplicable, type QuantizeQcOptions, quantizeTrainedQc } from './quantize.js';
import type { Precision } from '../engine/quantize/index.js';

export interface QcTrainOptions {
  /** Registry name or ONNX file. */
  encoder: string;
  /** knn | linear | finetune */
  task: string;
  annotations: string;
  store: string;
  /** Output MODEL.onnx (MODEL.json is written beside it). */
  out: string;
  seed?: number;
  /** Training epochs of linear / finetune (default the paper's 150 / 50). */
  epochs?: number;
  /** k of the kNN (default 5, the paper's). */
  k?: number;
  /** Store channels fed as R, G, B (default: chooseChannels). */
  channels?: string[];
  /**
   * A detector of these artefact types only (e.g. `['blur']`, a focus model): abnormal annotations of other types
   * are left out of every split, so "abnormal" means these artefacts and normal crops are the rest. Default: every
   * abnormal crop (the paper's normal / abnormal classifier).
   */
  artefacts?: string[];
  /** Decision threshold recorded in the sidecar: overrides the calibration. */
  threshold?: number;
  /**
   * False-positive budget: the threshold is calibrated on a validation split so that at most this fraction of
   * normal crops is flagged (default 0.05; qc/calibrate.ts).
   */
  maxFpr?: number;
  threads?: number;
  weightsDir?: string;
  /** SSL encoder export for the SSL methods' names. */
  pretrained?: string;
  /** int8: the exported model is statically quantised, calibrated on training crops (src/qc/quantize.ts). */
  precision?: Precision;
  /** Calibration of an int8 model: crops and range method. */
  calibration?: Pick<QuantizeQcOptions, 'crops' | 'method' | 'percentile'>;
  log?: Logger;
}

export interface QcTrainResult {
  model: string;
  sidecar: string;
  meta: QcSidecar;
  /** Test-split predictions of the exported model. */
  predictions: Prediction[];
}

function rowsIn(store: CropStore, rows: Annotation[], annotations: string, which: string): number[] {
  const index = new Map(store.meta.map((m) => [m.crop_id, m.index]));
  const missing = rows.filter((r) => !index.has(r.crop_id));
  if (missing.length) {
    throw new QcbError(
      'QCB_ANNOTATIONS',
      `${missing.length} ${which} crop(s) of the annotation file are not in the crop store ${store.path} (e.g. ${missing[0].crop_id})`,
      {
        file: annotations,
        key: 'crop_id',
        value: missing.slice(0, 5).map((m) => m.crop_id),
        fix: 'use the store the annotations were made on (crop ids <plate>_<well>_s<site>_<x>_<y>)',
      },
    );
  }
  return rows.map((r) => index.get(r.crop_id)!);
}

/** Runs a graph with input `crops` over uint8 crops in batches and returns one output (rows × width). */
async function runBatches(
  session: ort.InferenceSession,
  data: Uint8Array,
  n: number,
  C: number,
  S: number,
  output: string,
  bs = 64,
): Promise<{ data: Float32Array; cols: number }> {
  const per = C * S * S;
  const parts: Float32Array[] = [];
  let cols = 0;
  for (let s = 0; s < n; s += bs) {
    const m = Math.min(bs, n - s);
    const r = await session.run(
      { crops: new ort.Tensor('uint8', data.subarray(s * per, (s + m) * per), [m, C, S, S]) },
      [output],
    );
    const d = r[output].data as Float32Array;
    cols = d.length / m;
    parts.push(Float32Array.from(d));
  }
  const out = new Float32Array(n * cols);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return { data: out, cols };
}

/**
 * Splits the train split for the threshold calibration (qc/calibrate.ts): `--threshold` given → no validation split;
 * otherwise a stratified VALIDATION_FRACTION of each class, when it holds ⌈1/F⌉ normal crops. Too few: an explicit
 * `--max-fpr` is QCB_ANNOTATIONS; the default keeps 0.5 and the whole train split, with a notice.
 */
function planCalibration(
  trainAll: Annotation[],
  o: QcTrainOptions,
  seed: number,
  log: Logger,
): { train: Annotation[]; val: Annotation[]; op: OperatingPoint } {
  const base = { validation: null, test: null };
  if (o.threshold !== undefined) {
    if (o.maxFpr !== undefined) log.warn('--threshold given: --max-fpr is not used', { threshold: o.threshold });
    return { train: trainAll, val: [], op: { source: 'given', max_fpr: null, threshold: o.threshold, ...base } };
  }
  const f = o.maxFpr ?? DEFAULT_MAX_FPR;
  const { fit, val } = stratifiedSplit(
    trainAll.map((a) => a.label),
    VALIDATION_FRACTION,
    seed,
  );
  const normals = val.filter((i) => trainAll[i].label === 'normal').length;
  const need = minNormalsFor(f);
  const fitLabels = new Set(fit.map((i) => trainAll[i].label));
  if (normals < need || fitLabels.size < 2) {
    const why = `the validation split (${VALIDATION_FRACTION} of the train split) holds ${normals} normal crops; a false-positive rate of at most ${f} needs ≥ ${need}`;
    if (o.maxFpr !== undefined) {
      throw new QcbError('QCB_ANNOTATIONS', `cannot calibrate the threshold: ${why}`, {
        file: o.annotations,
        key: '--max-fpr',
        value: f,
        allowed: `a budget ≥ ${normals > 0 ? (1 / normals).toFixed(3) : 'n/a'} for this file, or ≥ ${Math.ceil(need / VALIDATION_FRACTION)} normal train crops`,
        fix: 'annotate more normal crops (split=train), raise --max-fpr, or give --threshold T',
      });
    }
    log.info(`threshold not calibrated, using 0.5: ${why}`, { annotations: o.annotations });
    return {
      train: trainAll,
      val: [],
      op: { source: 'default', max_fpr: null, threshold: 0.5, ...base, note: `not calibrated: ${why}` },
    };
  }
  return {
    train: fit.map((i) => trainAll[i]),
    val: val.map((i) => trainAll[i]),
    op: { source: 'calibrated', max_fpr: f, threshold: Number.NaN, ...base },
  };
}

/**
 * The annotations a detector of `artefacts` learns from: every normal crop and the abnormal crops of those types.
 * @throws QCB_USAGE for a type no annotation may carry (with the closest name); QCB_ANNOTATIONS when the file has
 *   no abnormal crop of the types
 */
export function forArtefacts(all: Annotation[], artefacts: string[] | undefined, file: string): Annotation[] {
  if (!artefacts) return all;
  for (const t of artefacts) {
    if (!ANNOTATION_ARTEFACT_TYPES.includes(t))
      throw new QcbError('QCB_USAGE', `unknown artefact type '${t}': ${didYouMean(t, ANNOTATION_ARTEFACT_TYPES)}`, {
        key: '--artefacts',
        value: t,
        allowed: ANNOTATION_ARTEFACT_TYPES.join(', '),
        fix: 'name artefact types of the annotation file, comma-separated (e.g. --artefacts blur)',
      });
  }
  const want = new Set(artefacts);
  const kept = all.filter((a) => a.label === 'normal' || want.has(a.artefact_type));
  if (!kept.some((a) => a.label === 'abnormal'))
    throw new QcbError(
      'QCB_ANNOTATIONS',
      `the annotation file has no abnormal crop of type ${artefacts.join(' or ')}`,
      {
        file,
        key: 'artefact_type',
        value: artefacts,
        fix: 'annotate crops with those artefact types, or name types the file has (--artefacts)',
      },
    );
  return kept;
}

/**
 * Trains and exports a QC classifier (see module doc).
 * @throws QCB_ANNOTATIONS (no train/test crops, crops not in the store), QCB_UNKNOWN_NAME (encoder, task),
 *   QCB_WEIGHTS_MISSING, QCB_STORE, QCB_IMAGE_SIZE (an encoder fixed to another input size)
 */
export async function trainQcModel(o: QcTrainOptions): Promise<QcTrainResult> {
  const log = o.log ?? defaultLogger;
  const seed = o.seed ?? 0;
  const task = resolveTask(o.task);
  const encoder = resolveEncoder(o.encoder);
  let threshold = o.threshold ?? 0.5;
  if (o.maxFpr !== undefined) checkMaxFpr(o.maxFpr);
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new QcbError('QCB_USAGE', `threshold ${threshold} is outside [0, 1]`, {
      key: '--threshold',
      value: threshold,
      allowed: '0 … 1',
      fix: 'give a threshold between 0 and 1 (default 0.5)',
    });
  }
  if (o.precision === 'int8' && encoder.kind === 'handcrafted') throw int8NotApplicable(encoder.name);
  const all = forArtefacts(readAnnotations(o.annotations), o.artefacts, o.annotations);
  const trainAll = all.filter((a) => a.split === 'train');
  const test = all.filter((a) => a.split === 'test');
  // the threshold's validation split comes out of the train split (none when --threshold is given)
  const { train, val, op } = planCalibration(trainAll, o, seed, log);
  if (train.length === 0 || !train.some((a) => a.label === 'abnormal') || !train.some((a) => a.label === 'normal')) {
    throw new QcbError(
      'QCB_ANNOTATIONS',
      `the train split has ${trainAll.length} crops; QC training needs normal and abnormal crops`,
      {
        file: o.annotations,
        key: 'split',
        fix: 'mark normal and abnormal crops split=train in the annotation file',
      },
    );
  }
  const store = await openCropStore(o.store);
  const C = store.channels.length;
  const S = store.size;
  const chIdx = chooseChannels(store.channels, o.channels);
  const rgbIdx = chIdx.length === 1 ? [chIdx[0], chIdx[0], chIdx[0]] : chIdx;
  const trainIdx = rowsIn(store, train, o.annotations, 'training');
  const testIdx = rowsIn(store, test, o.annotations, 'test');
  const valIdx = rowsIn(store, val, o.annotations, 'training');
  const trainData = await store.readIndices(trainIdx);
  const trainLabels = train.map((a) => a.label);

  log.info('loading encoder', { encoder: o.encoder, crop_size: S });
  const eg = await encoder.load({
    cropSize: S,
    seed,
    threads: o.threads,
    log,
    weightsDir: o.weightsDir,
    pretrained: o.pretrained,
  });
  if (eg.inputSize !== undefined && eg.inputSize !== S) {
    throw new QcbError(
      'QCB_IMAGE_SIZE',
      `encoder '${o.encoder}' is fixed to ${eg.inputSize}×${eg.inputSize} inputs but the store's crops are ${S}×${S}; the QC model does no resizing`,
      {
        file: store.path,
        key: '--encoder',
        fix: `cut crops of ${eg.inputSize} px (qcbench data crops --size ${eg.inputSize}) or export the encoder with a dynamic input size`,
      },
    );
  }
  const pre = eg.preprocess ?? encoder.preprocess;
  const spec: ClassifierSpec = {
    body: eg.graph,
    bodyOutput: 'features',
    channels: C,
    channelIndices: rgbIdx,
    cropSize: S,
    preprocess: pre,
  };
  let head: QcHead;
  let settings: Record<string, unknown>;
  let zNote: Record<string, string> = {};
  const t0 = Date.now();
  // hand-made measures have nothing to train (their `graph` only computes them)
  if (task.name === 'finetune' && eg.compute) throw notApplicable(encoder.name, 'fine-tuning (--task finetune)');
  if (task.name === 'finetune') {
    const s = { ...FINETUNE_DEFAULTS, ...(o.epochs !== undefined ? { epochs: o.epochs } : {}) };
    const crops = pickChannels(trainData, train.length, C, S, rgbIdx);
    const m = await trainFinetune(eg, pre, crops, trainLabels, { seed, settings: s, threads: o.threads, log });
    spec.body = m.graph;
    spec.bodyOutput = 'logits';
    head = { kind: 'logits' };
    settings = { ...s, final_loss: m.lossCurve[m.lossCurve.length - 1] };
  } else {
    const fg = buildFeatureGraph(spec);
    const fs = await ort.InferenceSession.create(exportOnnx(fg), sessionOptions({ intraOpNumThreads: o.threads }));
    const prog = log.startProgress('features (train)', train.length, 'crops');
    const raw = await runBatches(fs, trainData, train.length, C, S, 'features');
    prog.tick(train.length);
    prog.finish();
    await fs.release();
    // hand-made measures: z-scored with the training crops' statistics, inside the model too
    const z = eg.standardise ? fitStandardiser({ data: raw.data, rows: train.length, cols: raw.cols }) : undefined;
    if (z) spec.standardise = z;
    zNote = z ? { standardised: 'z-score with the training crops’ column means and sds, inside the model' } : {};
    const f = z
      ? { data: standardise({ data: raw.data, rows: train.length, cols: raw.cols }, z).data, cols: raw.cols }
      : raw;
    if (task.name === 'knn') {
      const k = o.k ?? 5;
      if (!Number.isInteger(k) || k < 1) {
        throw new QcbError('QCB_USAGE', `k must be a positive integer, got ${k}`, {
          key: '--k',
          value: k,
          allowed: 'an integer ≥ 1',
          fix: 'use --k 5 (the paper)',
        });
      }
      head = {
        kind: 'knn',
        bank: f.data,
        rows: train.length,
        cols: f.cols,
        labels: Float32Array.from(trainLabels, (l) => (l === 'abnormal' ? 1 : 0)),
        k,
        normalize: 'raw',
      };
      settings = { k: Math.min(k, train.length), normalize: 'raw', bank: 'embedded', ...zNote };
    } else {
      const s = { ...LINEAR_DEFAULTS, ...(o.epochs !== undefined ? { epochs: o.epochs } : {}) };
      const m = await trainLinear({ data: f.data, rows: train.length, cols: f.cols }, trainLabels, {
        seed,
        settings: s,
        threads: o.threads,
        log,
      });
      head = { kind: 'linear', weight: m.weight, bias: m.bias };
      settings = { ...s, final_loss: m.lossCurve[m.lossCurve.length - 1], ...zNote };
    }
  }
  const trainSeconds = (Date.now() - t0) / 1000;
  const graph = buildClassifierGraph(spec, head);
  const outputs = graph.outputs.map((v) => v.name);
  const exportWith = (t: number) =>
    exportOnnx(graph, {
      metadata: {
        'qcbench.kind': 'qc-classifier',
        'qcbench.encoder': encoder.name,
        'qcbench.task': task.name,
        ...(o.artefacts ? { 'qcbench.artefacts': o.artefacts.join(',') } : {}),
        'qcbench.crop_size': String(S),
        'qcbench.store_channels': JSON.stringify(store.channels),
        'qcbench.threshold': String(t),
      },
    });
  let bytes = exportWith(threshold);
  const model = resolve(o.out);
  mkdirSync(dirname(model), { recursive: true });

  // validation: the exported bytes themselves, on the validation split (threshold) and the test split (metrics)
  let predictions: Prediction[] = [];
  let metrics = null;
  const vs =
    test.length + val.length > 0
      ? await ort.InferenceSession.create(bytes, sessionOptions({ intraOpNumThreads: o.threads }))
      : undefined;
  const scoreRows = async (idx: number[]): Promise<number[]> => {
    const data = await store.readIndices(idx);
    const scores: number[] = [];
    for (let s = 0; s < idx.length; s += 64) {
      const m = Math.min(64, idx.length - s);
      const per = C * S * S;
      scores.push(...(await scoreCrops(vs!, data.subarray(s * per, (s + m) * per), m, C, S)));
    }
    return scores;
  };
  const valScores = val.length ? await scoreRows(valIdx) : [];
  const testScores = test.length ? await scoreRows(testIdx) : [];
  await vs?.release();
  if (op.source === 'calibrated') {
    threshold = chooseThreshold(
      valScores.filter((_, i) => val[i].label === 'normal'),
      op.max_fpr!,
    );
    op.validation = splitRates(
      valScores,
      val.map((a) => a.label),
      threshold,
    );
    bytes = exportWith(threshold); // the same graph, the calibrated threshold in its metadata
  }
  op.threshold = threshold;
  op.test = test.length
    ? splitRates(
        testScores,
        test.map((a) => a.label),
        threshold,
      )
    : null;
  if (test.length > 0) {
    const scores = testScores;
    predictions = test.map((a, i) => ({
      crop_id: a.crop_id,
      label: a.label,
      pred: scores[i] > threshold ? 'abnormal' : 'normal',
      score: scores[i],
      artefact_type: a.artefact_type,
    }));
    const both = test.some((a) => a.label === 'abnormal') && test.some((a) => a.label === 'normal');
    if (both)
      metrics = evaluate(predictions, { classes: ['normal', 'abnormal'], bootstrap: 200, seed, nTrain: train.length });
  }
  let int8: Awaited<ReturnType<typeof quantizeTrainedQc>> | undefined;
  if (o.precision === 'int8') {
    int8 = await quantizeTrainedQc({
      bytes,
      train: { data: trainData, n: train.length },
      test,
      testData: test.length ? await store.readIndices(testIdx) : undefined,
      store,
      threshold,
      seed,
      fp32Metrics: metrics,
      o: { ...o.calibration, threads: o.threads, log },
    });
    bytes = int8.bytes;
    predictions = int8.predictions ?? predictions;
    // the operating point the shipped (int8) model has on the test split, at the threshold calibrated in fp32
    if (int8.predictions)
      op.test = splitRates(
        int8.predictions.map((p) => p.score),
        int8.predictions.map((p) => p.label),
        threshold,
      );
  }
  const meta: QcSidecar = {
    format: 'qcbench-qc-model',
    version: 1,
    qcbench_version: qcbenchVersion(),
    created_at: new Date().toISOString(),
    model_sha256: sha256(bytes),
    encoder: { name: encoder.name, label: encoder.label, kind: encoder.kind, dim: eg.dim, source: eg.source },
    task: task.name,
    ...(o.artefacts ? { artefacts: [...o.artefacts] } : {}),
    task_settings: { ...settings, train_seconds: trainSeconds },
    crop_size: S,
    store_channels: [...store.channels],
    channels: (chIdx.length === 1 ? [chIdx[0]] : chIdx).map((i) => store.channels[i]),
    channel_indices: rgbIdx,
    input: { name: 'crops', dtype: 'uint8', shape: ['N', C, S, S] },
    outputs,
    preprocessing: { scale: 1 / 255, mean: [...pre.mean], std: [...pre.std] },
    classes: [...QC_CLASSES],
    threshold,
    operating_point: op,
    validation: int8
      ? { n_train: train.length, n_val: val.length, n_test: test.length, metrics: int8.metrics, fp32_metrics: metrics }
      : { n_train: train.length, n_val: val.length, n_test: test.length, metrics },
    ...(int8 ? { precision: 'int8' as const, quantization: int8.quantization } : {}),
    data: {
      annotations: resolve(o.annotations),
      annotations_hash: contentHash(readFileSync(o.annotations, 'utf8')),
      store: store.path,
      store_hash: store.hash,
    },
    seed,
    normalisation: recordedNormalisation(store.info),
  };
  writeFileAtomic(model, bytes);
  const sc = sidecarPath(model);
  writeJsonAtomic(sc, meta);
  log.info('QC model written', {
    model,
    task: task.name,
    precision: o.precision ?? 'fp32',
    auc: meta.validation.metrics?.auc,
    f1: meta.validation.metrics?.f1,
    threshold,
    threshold_source: op.source,
    test_fpr: op.test?.fpr,
    test_recall: op.test?.recall,
  });
  return { model, sidecar: sc, meta, predictions };
}
