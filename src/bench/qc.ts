/**
 * `qcbench bench qc`: how fast an exported QC classifier scores crops on this machine (target: ≥ 180 crops/s
 * with ResNet18 at 128×128 on 2 cores, i.e. a BBBC022-sized screen of 2.1 M crops in about 3 hours), in fp32 and as
 * its int8 copy (src/qc/quantize.ts) in the same run (int8 target: `qc apply` ≥ 2× fp32 and ≥ 300 crops/s).
 *
 * Figures per precision: the bare forward pass of the exported classifier (uint8 crops in, abnormal_score out) in
 * onnxruntime, the whole `qc apply` pipeline (store reads, scoring, CSV/JSONL writes, checkpoints) on a temporary
 * crop store, the model size, and onnxruntime's profile of the forward pass (time per operator: where a target is
 * missed, it names the operator that holds it). Weights do not change the speed: the classifier is ResNet18
 * (ImageNet weights when present, else the seeded random ResNet18 of the same architecture) with an untrained
 * linear head, unless another encoder is named; its int8 copy is calibrated on the bench's crops. The scores of the
 * two agree by Spearman's ρ on the bench's crops; for the AUC / F1 difference on a labelled split, name a trained
 * fp32 QC model and the store holding its annotations' test crops (`model`, `store`): that model is then benchmarked
 * and quantised with calibration crops of that store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { qcbenchVersion } from '../util/version.js';
import { CropStoreWriter } from '../data/store/crop-store.js';
import { linearInit } from '../engine/train/head.js';
import { resolveEncoder } from '../runner/catalog.js';
import { mulberry32 } from '../util/random.js';
import { exportOnnx } from '../engine/onnx/export.js';
import { defaultThreads, sessionOptions } from '../engine/runtime/session.js';
import { QcbError } from '../errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { Logger } from '../util/log.js';
import { spearman } from '../metrics/rank.js';
import { applyQcModel } from '../qc/apply.js';
import { buildClassifierGraph, QC_CLASSES } from '../qc/model.js';
import { quantizeQcModel } from '../qc/quantize.js';
import { type QcSidecar, readQcModel, sha256, sidecarPath } from '../qc/runtime.js';
import { type OpShare, readProfile } from './engine.js';

export interface QcBenchOptions {
  /** Encoder (default resnet18 with ImageNet weights, or random-resnet18 — same architecture — without them). */
  encoder?: string;
  /** Crop side (default 128, the paper's). */
  size?: number;
  /** Crops scored per measurement (default 512). */
  crops?: number;
  batch?: number;
  threads?: number;
  /** Measure fp32 only (default false: fp32 and int8). */
  fp32Only?: boolean;
  /** A trained fp32 QC model (with its sidecar) to benchmark instead of the untrained one. */
  model?: string;
  /** With `model`: the store holding its annotations' test crops (calibration and the labelled comparison). */
  store?: string;
}

/** One precision's figures. */
export interface QcPrecisionFigures {
  forward_crops_per_s: number;
  apply_crops_per_s: number;
  model_mb: number;
  /** `qc apply` over the bare forward pass (fp32 target ≥ 0.95). */
  apply_over_forward: number;
  /** onnxruntime's time per operator type of the forward pass, largest first (top 8). */
  profile: OpShare[];
}

export interface QcInt8Figures extends QcPrecisionFigures {
  /** int8 / fp32 crops/s of the forward pass and of `qc apply`. */
  speedup_forward: number;
  speedup_apply: number;
  /** `qc apply` ≥ 2× fp32 and ≥ 300 crops/s. */
  meets_target: boolean;
  integer_kernels: Record<string, number>;
  fp32_ops: Record<string, number>;
  /** Spearman's ρ of the fp32 and int8 scores of the bench's crops. */
  spearman: number;
  /** Test-split metrics (with `model` and `store`): fp32, int8 and int8 − fp32 in points. */
  labelled: {
    n_test: number;
    fp32: { auc: number; f1: number };
    int8: { auc: number; f1: number };
    delta_auc: number;
    delta_f1: number;
  } | null;
}

export interface QcBenchResult {
  encoder: string;
  size: number;
  crops: number;
  batch: number;
  threads: number;
  /** Forward pass of the exported classifier alone. */
  forward_crops_per_s: number;
  /** `qc apply` end to end (store → scores on disk). */
  apply_crops_per_s: number;
  /** Hours for 2.1 M crops (BBBC022) at the apply rate. */
  bbbc022_hours: number;
  target_crops_per_s: number;
  meets_target: boolean;
  peak_rss_gb: number;
  model_mb: number;
  /** fp32 `qc apply` over its forward pass. */
  apply_over_forward: number;
  profile: OpShare[];
  /** The int8 copy (absent with fp32Only). */
  int8?: QcInt8Figures;
  note: string;
}

export const QC_TARGET_CROPS_PER_S = 180;
/** int8 targets: `qc apply` crops/s ≥ this multiple of fp32's, and ≥ {@link QC_INT8_TARGET_CROPS_PER_S}. */
export const QC_INT8_TARGET_SPEEDUP = 2;
export const QC_INT8_TARGET_CROPS_PER_S = 300;

/** Crops/s of the bare forward pass over `reps` runs of one batch (after a warm-up), and that batch's scores. */
async function forwardRate(
  bytes: Uint8Array,
  feed: Record<string, ort.Tensor>,
  reps: number,
  threads: number,
): Promise<{ rate: number; scores: Float32Array; profile: OpShare[] }> {
  const batch = feed.crops.dims[0];
  const sess = await ort.InferenceSession.create(bytes, sessionOptions({ intraOpNumThreads: threads }));
  const scores = Float32Array.from((await sess.run(feed)).abnormal_score.data as Float32Array); // warm-up
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) await sess.run(feed, ['abnormal_score']);
  const rate = (reps * batch) / ((performance.now() - t0) / 1000);
  await sess.release();
  // the profile in its own session, so that profiling does not slow the timed runs
  const prefix = join(tmpdir(), `qcbench-qc-prof-${process.pid}`);
  const ps = await ort.InferenceSession.create(
    bytes,
    sessionOptions({ intraOpNumThreads: threads, profileFilePrefix: prefix }),
  );
  await ps.run(feed, ['abnormal_score']);
  await ps.run(feed, ['abnormal_score']);
  (ps as unknown as { endProfiling(): void }).endProfiling();
  await ps.release();
  return { rate, scores, profile: readProfile(prefix).slice(0, 8) };
}

/** Runs the benchmark (see module doc); takes ~30–90 s on 2 cores. */
export async function benchQc(o: QcBenchOptions = {}): Promise<QcBenchResult> {
  let name = o.encoder ?? 'resnet18';
  const N = o.crops ?? 512;
  const batch = o.batch ?? 64;
  const threads = o.threads ?? defaultThreads();
  const log = new Logger({ quiet: true });
  const dir = mkdtempSync(join(tmpdir(), 'qcb-bench-qc-'));
  try {
    let model: string;
    let bytes: Uint8Array;
    let S: number;
    let channels: string[];
    if (o.model) {
      const m = readQcModel(o.model);
      model = o.model;
      bytes = m.bytes;
      S = m.sidecar.crop_size;
      channels = m.sidecar.store_channels;
      name = m.sidecar.encoder.name;
    } else {
      S = o.size ?? 128;
      channels = ['R', 'G', 'B'];
      ({ model, bytes, name } = await untrainedModel(name, o.encoder !== undefined, S, dir, threads, log));
    }
    const C = channels.length;

    // random crops in a real store
    const rnd = mulberry32(1);
    const per = C * S * S;
    const store = join(dir, 'store');
    const w = await CropStoreWriter.create(store, { channels, size: S, dataset: 'bench' });
    for (let s = 0; s < N; s += 64) {
      const m = Math.min(64, N - s);
      const data = new Uint8Array(m * per);
      for (let i = 0; i < data.length; i++) data[i] = (rnd() * 256) | 0;
      await w.append(
        data,
        Array.from({ length: m }, (_, k) => {
          const i = s + k;
          const well = `${String.fromCharCode(65 + (i % 8))}${String(1 + ((i >> 3) % 12)).padStart(2, '0')}`;
          return {
            crop_id: `B_${well}_s1_${i}_0`,
            plate: 'B',
            well,
            site: 1,
            field_id: `B_${well}_s1`,
            x: i,
            y: 0,
            area: 0,
            source_files: '',
            metadata: {},
          };
        }),
      );
    }
    await w.finish();
    const x = new Uint8Array(batch * per);
    for (let i = 0; i < x.length; i++) x[i] = (rnd() * 256) | 0;
    const feed = { crops: new ort.Tensor('uint8', x, [batch, C, S, S]) };
    const reps = Math.max(1, Math.ceil(N / batch));

    const measure = async (file: string, b: Uint8Array, out: string) => {
      const f = await forwardRate(b, feed, reps, threads);
      // qc apply end to end (montages off: they are a one-off at the end, not per crop)
      const t1 = performance.now();
      const res = await applyQcModel({ model: file, store, out: join(dir, out), batch, threads, montage: 0, log });
      const apply = res.scored / ((performance.now() - t1) / 1000);
      const figures: QcPrecisionFigures = {
        forward_crops_per_s: f.rate,
        apply_crops_per_s: apply,
        model_mb: b.length / 1e6,
        apply_over_forward: apply / f.rate,
        profile: f.profile,
      };
      return { figures, scores: f.scores };
    };
    const fp32 = await measure(model, bytes, 'out-fp32');
    let int8: QcInt8Figures | undefined;
    if (!o.fp32Only) {
      const q = await quantizeQcModel({
        model,
        store: o.store ?? store,
        out: join(dir, 'int8.onnx'),
        crops: Math.min(256, N),
        threads,
        log,
      });
      const qm = q.meta;
      const i8 = await measure(q.model, readQcModel(q.model).bytes, 'out-int8');
      const m8 = qm.validation.metrics;
      const m32 = qm.validation.fp32_metrics;
      int8 = {
        ...i8.figures,
        speedup_forward: i8.figures.forward_crops_per_s / fp32.figures.forward_crops_per_s,
        speedup_apply: i8.figures.apply_crops_per_s / fp32.figures.apply_crops_per_s,
        meets_target:
          i8.figures.apply_crops_per_s >= QC_INT8_TARGET_SPEEDUP * fp32.figures.apply_crops_per_s &&
          i8.figures.apply_crops_per_s >= QC_INT8_TARGET_CROPS_PER_S,
        integer_kernels: qm.quantization!.integer_kernels,
        fp32_ops: Object.fromEntries(Object.entries(qm.quantization!.fp32_ops).map(([k, v]) => [k, v.count])),
        spearman: spearman(fp32.scores, i8.scores),
        labelled:
          m8 && m32
            ? {
                n_test: qm.validation.n_test,
                fp32: { auc: m32.auc, f1: m32.f1 },
                int8: { auc: m8.auc, f1: m8.f1 },
                delta_auc: m8.auc - m32.auc,
                delta_f1: m8.f1 - m32.f1,
              }
            : null,
      };
    }
    const apply = fp32.figures.apply_crops_per_s;
    return {
      encoder: name,
      size: S,
      crops: N,
      batch,
      threads,
      forward_crops_per_s: fp32.figures.forward_crops_per_s,
      apply_crops_per_s: apply,
      bbbc022_hours: 2.1e6 / apply / 3600,
      target_crops_per_s: QC_TARGET_CROPS_PER_S,
      meets_target: apply >= QC_TARGET_CROPS_PER_S,
      peak_rss_gb: (process.resourceUsage().maxRSS * 1024) / 1e9,
      model_mb: fp32.figures.model_mb,
      apply_over_forward: fp32.figures.apply_over_forward,
      profile: fp32.figures.profile,
      ...(int8 ? { int8 } : {}),
      note: 'measured under whatever load the machine has now (fp32 and int8 in the same run); apply includes the summary (plate map) at the end',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** ResNet18 (or the named encoder) with an untrained linear head as a QC model file in `dir`. */
async function untrainedModel(
  encoder: string,
  named: boolean,
  S: number,
  dir: string,
  threads: number,
  log: Logger,
): Promise<{ model: string; bytes: Uint8Array; name: string }> {
  let name = encoder;
  let enc = resolveEncoder(name);
  let eg: Awaited<ReturnType<typeof enc.load>>;
  try {
    eg = await enc.load({ cropSize: S, seed: 0, threads, log });
  } catch (e) {
    // no ImageNet weights here: the seeded random ResNet18 has the same architecture, hence the same speed
    if (named || !(e instanceof QcbError) || e.code !== 'QCB_WEIGHTS_MISSING') throw e;
    name = 'random-resnet18';
    enc = resolveEncoder(name);
    eg = await enc.load({ cropSize: S, seed: 0, threads, log });
  }
  const pre = eg.preprocess ?? enc.preprocess;
  const { weight, bias } = linearInit(eg.dim, 2, 0);
  const graph = buildClassifierGraph(
    { body: eg.graph, bodyOutput: 'features', channels: 3, channelIndices: [0, 1, 2], cropSize: S, preprocess: pre },
    { kind: 'linear', weight: weight.data as Float32Array, bias: bias.data as Float32Array },
  );
  const bytes = exportOnnx(graph);
  const model = join(dir, 'bench.onnx');
  writeFileAtomic(model, bytes);
  const sidecar: QcSidecar = {
    format: 'qcbench-qc-model',
    version: 1,
    qcbench_version: qcbenchVersion(),
    created_at: new Date().toISOString(),
    model_sha256: sha256(bytes),
    encoder: { name: enc.name, label: enc.label, kind: enc.kind, dim: eg.dim, source: eg.source },
    task: 'linear',
    task_settings: { untrained: true, purpose: 'benchmark' },
    crop_size: S,
    store_channels: ['R', 'G', 'B'],
    channels: ['R', 'G', 'B'],
    channel_indices: [0, 1, 2],
    input: { name: 'crops', dtype: 'uint8', shape: ['N', 3, S, S] },
    outputs: graph.outputs.map((v) => v.name),
    preprocessing: { scale: 1 / 255, ...pre },
    classes: [...QC_CLASSES],
    threshold: 0.5,
    validation: { n_train: 0, n_test: 0, metrics: null },
    data: { annotations: '', annotations_hash: '', store: '', store_hash: '' },
    seed: 0,
  };
  writeJsonAtomic(sidecarPath(model), sidecar);
  return { model, bytes, name };
}
