/**
 * `qcbench bench qc`: how fast an exported QC classifier scores crops on this machine (target: ≥ 180 crops/s
 * with ResNet18 at 128×128 on 2 cores, i.e. a BBBC022-sized screen of 2.1 M crops in about 3 hours).
 *
 * Two figures: the bare forward pass of the exported classifier (uint8 crops in, abnormal_score out) in onnxruntime,
 * and the whole `qc apply` pipeline (store reads, scoring, CSV/JSONL writes, checkpoints) on a temporary crop store.
 * Weights do not change the speed: the classifier is ResNet18 (ImageNet weights when present, else the seeded random
 * ResNet18 of the same architecture) with an untrained linear head, unless another encoder is named.
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
import { applyQcModel } from '../qc/apply.js';
import { buildClassifierGraph, QC_CLASSES } from '../qc/model.js';
import { type QcSidecar, sha256, sidecarPath } from '../qc/runtime.js';

export interface QcBenchOptions {
  /** Encoder (default resnet18 with ImageNet weights, or random-resnet18 — same architecture — without them). */
  encoder?: string;
  /** Crop side (default 128, the paper's). */
  size?: number;
  /** Crops scored per measurement (default 512). */
  crops?: number;
  batch?: number;
  threads?: number;
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
  note: string;
}

export const QC_TARGET_CROPS_PER_S = 180;

/** Runs the benchmark (see module doc); takes ~10–30 s on 2 cores. */
export async function benchQc(o: QcBenchOptions = {}): Promise<QcBenchResult> {
  let name = o.encoder ?? 'resnet18';
  const S = o.size ?? 128;
  const N = o.crops ?? 512;
  const batch = o.batch ?? 64;
  const threads = o.threads ?? defaultThreads();
  const log = new Logger({ quiet: true });
  const dir = mkdtempSync(join(tmpdir(), 'qcb-bench-qc-'));
  try {
    let enc = resolveEncoder(name);
    let eg: Awaited<ReturnType<typeof enc.load>>;
    try {
      eg = await enc.load({ cropSize: S, seed: 0, threads, log });
    } catch (e) {
      // no ImageNet weights here: the seeded random ResNet18 has the same architecture, hence the same speed
      if (o.encoder !== undefined || !(e instanceof QcbError) || e.code !== 'QCB_WEIGHTS_MISSING') throw e;
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

    // random crops in a real store
    const rnd = mulberry32(1);
    const per = 3 * S * S;
    const w = await CropStoreWriter.create(join(dir, 'store'), {
      channels: ['R', 'G', 'B'],
      size: S,
      dataset: 'bench',
    });
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

    // forward pass alone
    const sess = await ort.InferenceSession.create(bytes, sessionOptions({ intraOpNumThreads: threads }));
    const x = new Uint8Array(batch * per);
    for (let i = 0; i < x.length; i++) x[i] = (rnd() * 256) | 0;
    const feed = { crops: new ort.Tensor('uint8', x, [batch, 3, S, S]) };
    await sess.run(feed); // warm-up
    const reps = Math.max(1, Math.ceil(N / batch));
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) await sess.run(feed, ['abnormal_score']);
    const forward = (reps * batch) / ((performance.now() - t0) / 1000);
    await sess.release();

    // qc apply end to end (montages off: they are a one-off at the end, not per crop)
    const t1 = performance.now();
    const res = await applyQcModel({
      model,
      store: join(dir, 'store'),
      out: join(dir, 'out'),
      batch,
      threads,
      montage: 0,
      log,
    });
    const apply = res.scored / ((performance.now() - t1) / 1000);
    return {
      encoder: name,
      size: S,
      crops: N,
      batch,
      threads,
      forward_crops_per_s: forward,
      apply_crops_per_s: apply,
      bbbc022_hours: 2.1e6 / apply / 3600,
      target_crops_per_s: QC_TARGET_CROPS_PER_S,
      meets_target: apply >= QC_TARGET_CROPS_PER_S,
      peak_rss_gb: (process.resourceUsage().maxRSS * 1024) / 1e9,
      model_mb: bytes.length / 1e6,
      note: 'measured under whatever load the machine has now; apply includes the summary (plate map) at the end',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
