/**
 * SSL pretraining (Masud et al. 2022 §3.2): a torchvision ResNet18 + the method's projector + its loss on two
 * augmented views, trained as ONE compiled ONNX training step (forward, the engine's backward, SGD-momentum or
 * LARS update) per batch in onnxruntime, with a warm-up cosine schedule, a checkpoint per epoch (atomic; a rerun
 * resumes from it), the loss curve logged, an optional kNN monitor, and the backbone exported as an inference ONNX
 * encoder (`input` N×3×S×S → `features` N×512, BN in inference mode) plus a PretrainRecord.
 *
 * Both views go through the backbone as one 2N batch (one convolution call per layer instead of two); the backbone's
 * BatchNorm statistics are therefore taken over 2N images where solo-learn, forwarding each view separately, takes
 * them over N. The projector's BatchNorm and the losses use per-view statistics as solo-learn does.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { QcbError } from '../errors.js';
import { BatchLoader, type Batch, type CropSource as LoaderSource } from '../data/augment/loader.js';
import { DEFAULT_AUGMENT, type AugmentOptions } from '../data/augment/transforms.js';
import { Rng, deriveSeed } from '../util/random.js';
import type { CropStore } from '../data/store/crop-store.js';
import { knnClassify } from '../downstream/knn.js';
import { extractFeatures } from '../encoders/features.js';
import { buildResNet18, RESNET18_FEATURES, resnet18Graph } from '../encoders/resnet18.js';
import { IMAGENET_PREPROCESS, type Preprocess } from '../encoders/types.js';
import { GraphBuilder } from '../engine/ir/builder.js';
import type { DType, Graph, Tensor } from '../engine/ir/graph.js';
import { inferShapes } from '../engine/ir/shapes.js';
import { exportOnnx } from '../engine/onnx/export.js';
import { dataFromBytes, bytesOf } from '../engine/onnx/dtypes.js';
import { loadSession, ortF32 } from '../engine/runtime/session.js';
import { lowerBatchNormTraining } from '../engine/train/batchnorm.js';
import { cloneGraph, pruneDead } from '../engine/train/compile.js';
import { Lars } from '../engine/train/optim/lars.js';
import { Sgd } from '../engine/train/optim/sgd.js';
import type { Optimizer } from '../engine/train/optim/types.js';
import { Trainer } from '../engine/train/trainer.js';
import { SSL_WEIGHT_DECAY } from '../protocol/defaults.js';
import { PRETRAIN_SCHEMA, type PretrainRecord } from '../results/schema.js';
import { contentHash, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { logger as defaultLogger, type Logger } from '../util/log.js';
import { buildProjector } from './projector.js';
import { getMethod, resolveHyper } from './registry.js';
import type { SslHyper, SslLoss, SslMachinery, SslMethod, SslStepInfo } from './types.js';

/** Where pretraining reads crops: uint8 N×C×S×S (C = 1 or 3; grey crops are replicated to 3 channels). */
export interface CropSource {
  count: number;
  channels: number;
  size: number;
  /** Crops at the given indices, concatenated (indices.length × C × S × S). */
  read(indices: readonly number[]): Promise<Uint8Array>;
  /** Identifies the crops (store path and hash) in records and checkpoints. */
  id: string;
}

/** A CropSource over crops in memory. */
export function memoryCropSource(
  data: Uint8Array,
  count: number,
  channels: number,
  size: number,
  id: string,
): CropSource {
  const per = channels * size * size;
  if (data.length < count * per) {
    throw new QcbError(
      'QCB_STORE',
      `${count} crops of ${channels}×${size}×${size} need ${count * per} bytes, got ${data.length}`,
      { fix: 'pass the crops and their shape' },
    );
  }
  return {
    count,
    channels,
    size,
    id,
    async read(indices) {
      const out = new Uint8Array(indices.length * per);
      indices.forEach((r, i) => {
        out.set(data.subarray(r * per, (r + 1) * per), i * per);
      });
      return out;
    },
  };
}

/** A CropSource over a crop store (src/data/store), optionally restricted to some of its channels (by name). */
export function storeCropSource(store: CropStore, channels?: string[]): CropSource {
  const all = store.channels;
  const pick = (channels ?? all).map((c) => {
    const i = all.indexOf(c);
    if (i < 0) {
      throw new QcbError('QCB_STORE', `the crop store has no channel '${c}'`, {
        file: store.path,
        key: 'channels',
        value: c,
        allowed: all.join(', '),
        fix: `choose among ${all.join(', ')}`,
      });
    }
    return i;
  });
  const C = all.length;
  const per = store.size * store.size;
  const identity = pick.length === C && pick.every((c, i) => c === i);
  return {
    count: store.count,
    channels: pick.length,
    size: store.size,
    id: `${store.path}#${store.hash}${identity ? '' : `:${pick.join(',')}`}`,
    async read(indices) {
      const raw = await store.readIndices([...indices]);
      if (identity) return raw;
      const out = new Uint8Array(indices.length * pick.length * per);
      for (let i = 0; i < indices.length; i++) {
        for (let k = 0; k < pick.length; k++) {
          const c = pick[k];
          out.set(raw.subarray((i * C + c) * per, (i * C + c + 1) * per), (i * pick.length + k) * per);
        }
      }
      return out;
    },
  };
}

/** Annotated crops for the optional kNN monitor (paper §3.3 task 1 on the current backbone after each epoch). */
export interface KnnMonitor {
  crops: { data: Uint8Array; n: number; channels: number; size: number };
  labels: string[];
  train: number[];
  test: number[];
  k?: number;
}

/**
 * The kNN monitor of annotated crops of `source` (`qcbench pretrain --monitor`, protocol `pretrain.knn_monitor`): the
 * annotations' train split is the neighbour bank, their test split is scored; rows whose crop is not in the source
 * are left out.
 * @param cropIndex crop_id → index in the source
 * @throws QCB_ANNOTATIONS when no train or no test crop of the annotations is in the source
 */
export async function knnMonitorFor(
  source: CropSource,
  cropIndex: ReadonlyMap<string, number>,
  annotations: readonly { crop_id: string; label: string; split: string }[],
  o: { file?: string; k?: number } = {},
): Promise<KnnMonitor> {
  const rows: number[] = [];
  const labels: string[] = [];
  const train: number[] = [];
  const test: number[] = [];
  for (const a of annotations) {
    const i = cropIndex.get(a.crop_id);
    if (i === undefined) continue;
    (a.split === 'train' ? train : test).push(rows.length);
    rows.push(i);
    labels.push(a.label);
  }
  if (train.length === 0 || test.length === 0) {
    throw new QcbError(
      'QCB_ANNOTATIONS',
      `${o.file ?? 'the annotations'} has no train or no test crops of ${source.id} for the kNN monitor`,
      { file: o.file, fix: 'use annotations made for this store (crop ids of its crops.csv), with both splits' },
    );
  }
  const data = await source.read(rows);
  return {
    crops: { data, n: rows.length, channels: source.channels, size: source.size },
    labels,
    train,
    test,
    ...(o.k !== undefined ? { k: o.k } : {}),
  };
}

export interface PretrainOptions {
  /** SSL method name (simclr, barlow_twins, vicreg, deepclusterv2, swav). */
  method: string;
  /** Overrides of the method's hyperparameters (`pretrain.methods.<name>` in a protocol). */
  hyper?: Record<string, number>;
  source: CropSource;
  /** Output folder: checkpoint, encoder.onnx, pretrain.json, loss.csv. */
  outDir: string;
  /** Default 5 (paper §3.2). */
  epochs?: number;
  /** Images per step (two views each); default 128 (paper §3.2). */
  batchSize?: number;
  /** Base learning rate; default 0.001 (paper §3.2). */
  lr?: number;
  /** Default 0.9 (paper §3.2). */
  momentum?: number;
  /** Default SSL_WEIGHT_DECAY (src/protocol/defaults.ts: solo-learn's configs; the paper does not say). */
  weightDecay?: number;
  /** `sgd` (default, paper) or `lars` (solo-learn's usual optimizer; η 0.02, bias/BN excluded). */
  optimizer?: 'sgd' | 'lars';
  /** `warmup_cosine` (default, paper §3.2) or `constant` (the base learning rate at every step). */
  schedule?: 'warmup_cosine' | 'constant';
  /** Warm-up epochs of the warm-up cosine schedule; default 1 (paper §3.2). */
  warmupEpochs?: number;
  /** Learning rate at step 0 of the warm-up; default 3e-5 (solo-learn `warmup_start_lr`). */
  warmupStartLr?: number;
  /** Final learning rate of the cosine; default 0 (solo-learn `min_lr`). */
  minLr?: number;
  seed?: number;
  /** Images per epoch (a fixed seeded subset of the source, reshuffled every epoch); default all. */
  maxImagesPerEpoch?: number;
  /**
   * Augmentation (default: rot90, flip, transpose, shift and scale with the ImageNet normalisation); `sslAugment`
   * (src/ssl/augment.ts) turns a list of the paper's augmentation names into these options.
   */
  augment?: Partial<AugmentOptions>;
  /** onnxruntime intra-op threads. */
  threads?: number;
  /** Resume from the checkpoint in outDir when its settings match (default true). */
  resume?: boolean;
  monitor?: KnnMonitor;
  /** Log a loss point every `logEvery` steps (default 1: every step). */
  logEvery?: number;
  log?: Logger;
  /** Called after every step. */
  onStep?(p: { epoch: number; step: number; loss: number; lr: number; imagesPerSecond: number }): void;
}

export interface PretrainResult {
  record: PretrainRecord;
  /** Absolute path of the exported encoder. */
  onnx: string;
  recordFile: string;
  /** True when training resumed from a checkpoint. */
  resumedFromEpoch?: number;
}

/** The normalisation pretraining feeds the backbone with (recorded in the exported encoder's metadata). */
export const SSL_PREPROCESS: Preprocess = IMAGENET_PREPROCESS;

// ---------------------------------------------------------------------------------------------------------------
// graph

/** The training graph of one method: input `views` 2N×3×S×S (view 1 rows, then view 2) → scalar loss. */
export interface PretrainGraph {
  graph: Graph;
  input: string;
  features: string;
  loss: SslLoss;
  backboneParams: string[];
  projectorParams: string[];
  hp: SslHyper;
  method: SslMethod;
}

/**
 * Builds backbone + projector + loss for `n` images per view of `size`×`size` (3 channels).
 * @param lossKind `method` (default) or `baseline`: the projector followed by a trivial loss (mean of z²), the
 *   "encoder's own training step" against which `qcbench bench ssl` measures the cost of each method's loss
 */
export function buildPretrainGraph(
  method: SslMethod,
  hp: SslHyper,
  o: { n: number; size: number; seed: number; lossKind?: 'method' | 'baseline' },
): PretrainGraph {
  const b = new GraphBuilder(`ssl_${method.name}`);
  const input = b.input('views', 'float32', [2 * o.n, 3, o.size, o.size]);
  const bb = buildResNet18(b, input, { seed: o.seed });
  const proj = buildProjector(b, bb.features, method.projector, {
    inDim: RESNET18_FEATURES,
    hiddenDim: hp.proj_hidden_dim,
    outDim: hp.proj_output_dim,
    n: o.n,
    views: 2,
    seed: o.seed,
  });
  const z1 = b.op1('Slice', [proj.z, b.ints([0]), b.ints([o.n]), b.ints([0])], {}, 'z1');
  const z2 = b.op1('Slice', [proj.z, b.ints([o.n]), b.ints([2 * o.n]), b.ints([0])], {}, 'z2');
  let loss: SslLoss;
  if (o.lossKind === 'baseline') {
    loss = { loss: b.reduceMean(b.mul(proj.z, proj.z), undefined, false), feeds: [], params: [], outputs: [] };
  } else {
    loss = method.buildLoss({ b, z1, z2, n: o.n, dim: hp.proj_output_dim, hp, seed: o.seed });
  }
  b.output(loss.loss, 'loss');
  b.output(bb.features, 'features');
  for (const v of loss.outputs) b.output(v);
  return {
    graph: b.build(),
    input,
    features: bb.features,
    loss: { ...loss, loss: 'loss' },
    backboneParams: bb.params,
    projectorParams: proj.params,
    hp,
    method,
  };
}

/** The optimizer of the options (SGD with momentum by default). */
export function makeSslOptimizer(o: { optimizer?: 'sgd' | 'lars'; momentum: number; weightDecay: number }): Optimizer {
  if (o.optimizer === 'lars')
    return new Lars({ momentum: o.momentum, weightDecay: o.weightDecay, eta: 0.02, excludeBiasAndNorm: true });
  return new Sgd({ momentum: o.momentum, weightDecay: o.weightDecay });
}

/** Compiles a trainer for the graph; `frozen` parameters stay out of the update (SwAV's first epoch). */
export async function createSslTrainer(
  pg: PretrainGraph,
  optimizer: Optimizer,
  frozen: string[],
  threads?: number,
): Promise<Trainer> {
  const skip = new Set(frozen);
  const trainable = [...pg.backboneParams, ...pg.projectorParams, ...pg.loss.params].filter((p) => !skip.has(p));
  return Trainer.create(
    { graph: pg.graph, loss: pg.loss.loss, trainable, optimizer, extraOutputs: pg.loss.outputs, bnTraining: true },
    { intraOpNumThreads: threads, noCache: true },
  );
}

/**
 * Warm-up cosine schedule per step (solo-learn's LinearWarmupCosineAnnealingLR, stepped every batch): linear from
 * `start` to `base` over `warmup` steps, then cosine from `base` to `min` over the remaining steps.
 */
export function warmupCosineLr(
  step: number,
  total: number,
  warmup: number,
  base: number,
  start: number,
  min: number,
): number {
  if (step < warmup) return warmup <= 1 ? base : start + ((base - start) * step) / (warmup - 1);
  const span = Math.max(1, total - warmup);
  return min + 0.5 * (base - min) * (1 + Math.cos((Math.PI * (step - warmup)) / span));
}

// ---------------------------------------------------------------------------------------------------------------
// checkpoints: "QCBCKPT1", u64 header length, JSON header, raw tensors

const MAGIC = 'QCBCKPT1';

interface CkptHeader {
  meta: Record<string, unknown>;
  tensors: Record<string, { dtype: DType; dims: number[]; offset: number; bytes: number }>;
}

/** Writes tensors + metadata atomically. */
export function writeCheckpoint(path: string, meta: Record<string, unknown>, tensors: Map<string, Tensor>): void {
  const header: CkptHeader = { meta, tensors: {} };
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const [k, t] of tensors) {
    const bytes = bytesOf(t.data);
    header.tensors[k] = { dtype: t.dtype, dims: [...t.dims], offset: off, bytes: bytes.length };
    parts.push(bytes);
    off += bytes.length;
  }
  const h = new TextEncoder().encode(JSON.stringify(header));
  const buf = new Uint8Array(16 + h.length + off);
  buf.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(buf.buffer).setBigUint64(8, BigInt(h.length), true);
  buf.set(h, 16);
  let p = 16 + h.length;
  for (const part of parts) {
    buf.set(part, p);
    p += part.length;
  }
  writeFileAtomic(path, buf);
}

/** Reads a checkpoint. @throws QCB_FILE_TRUNCATED for a damaged file */
export function readCheckpoint(path: string): { meta: Record<string, unknown>; tensors: Map<string, Tensor> } {
  const buf = readFileSync(path);
  const bad = (why: string) =>
    new QcbError('QCB_FILE_TRUNCATED', `checkpoint ${path} is damaged: ${why}`, {
      file: path,
      fix: 'delete the checkpoint to restart pretraining from scratch',
    });
  if (buf.length < 16 || buf.subarray(0, 8).toString('latin1') !== MAGIC) throw bad('bad magic');
  const hl = Number(buf.readBigUInt64LE(8));
  if (16 + hl > buf.length) throw bad('header beyond end of file');
  let header: CkptHeader;
  try {
    header = JSON.parse(buf.subarray(16, 16 + hl).toString('utf8'));
  } catch {
    throw bad('header is not JSON');
  }
  const base = 16 + hl;
  const tensors = new Map<string, Tensor>();
  for (const [k, e] of Object.entries(header.tensors)) {
    if (base + e.offset + e.bytes > buf.length) throw bad(`tensor '${k}' beyond end of file`);
    const bytes = new Uint8Array(buf.subarray(base + e.offset, base + e.offset + e.bytes)); // copy: alignment
    tensors.set(k, { dtype: e.dtype, dims: e.dims, data: dataFromBytes(e.dtype, bytes) });
  }
  return { meta: header.meta, tensors };
}

// ---------------------------------------------------------------------------------------------------------------
// pretraining

/** The backbone (torchvision names) as a standalone inference graph with the given weights. */
export function backboneGraph(params: Map<string, Tensor>, seed: number): Graph {
  const { graph } = resnet18Graph({ seed });
  for (const k of [...graph.initializers.keys()]) {
    const t = params.get(k);
    if (t) graph.initializers.set(k, t);
  }
  return graph;
}

/** Writes the backbone as `input` N×3×S×S → `features` N×512 ONNX with qcbench metadata. */
export function exportBackbone(
  path: string,
  params: Map<string, Tensor>,
  seed: number,
  metadata: Record<string, string>,
): void {
  const g = backboneGraph(params, seed);
  writeFileAtomic(
    path,
    exportOnnx(g, {
      metadata: {
        'qcbench.kind': 'ssl',
        'qcbench.preprocess.mean': JSON.stringify(SSL_PREPROCESS.mean),
        'qcbench.preprocess.std': JSON.stringify(SSL_PREPROCESS.std),
        ...metadata,
      },
    }),
  );
}

/** Forward graph with BN in training mode returning `outputs` (DeepClusterV2's initial memory pass). */
function embeddingGraph(forward: Graph, params: Map<string, Tensor>, outputs: string[]): Graph {
  const g = cloneGraph(forward);
  for (const [k, t] of params) if (g.initializers.has(k)) g.initializers.set(k, t);
  inferShapes(g);
  lowerBatchNormTraining(g, () => true);
  g.outputs = outputs.map((o) => ({ name: o, dtype: 'float32' }));
  pruneDead(g);
  const used = new Set(g.nodes.flatMap((n) => n.inputs));
  g.inputs = g.inputs.filter((i) => used.has(i.name));
  g.values.clear();
  inferShapes(g);
  return g;
}

/** Grey crops → 3 channels (as the downstream feature extraction does); 3-channel crops unchanged. */
function toRgb(crops: Uint8Array, n: number, c: number, s: number): Uint8Array {
  if (c === 3) return crops;
  const per = s * s;
  const out = new Uint8Array(n * 3 * per);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < 3; k++) out.set(crops.subarray(i * per, (i + 1) * per), (i * 3 + k) * per);
  return out;
}

/** Runs SSL pretraining; see the module doc. */
export async function pretrain(opts: PretrainOptions): Promise<PretrainResult> {
  const log = opts.log ?? defaultLogger;
  const method = getMethod(opts.method);
  const hp = resolveHyper(method, opts.hyper);
  const src = opts.source;
  if (src.channels !== 1 && src.channels !== 3) {
    throw new QcbError('QCB_STORE', `SSL pretraining takes crops of 1 or 3 channels, the store has ${src.channels}`, {
      key: 'channels',
      value: src.channels,
      allowed: '1 or 3',
      fix: 'build the crop store with 1 or 3 channels (e.g. --channels Hoechst,Ph_golgi,Mito)',
    });
  }
  const epochs = opts.epochs ?? 5;
  const n = opts.batchSize ?? 128;
  const baseLr = opts.lr ?? 0.001;
  const momentum = opts.momentum ?? 0.9;
  const weightDecay = opts.weightDecay ?? SSL_WEIGHT_DECAY;
  const warmupEpochs = opts.warmupEpochs ?? 1;
  const warmupStartLr = opts.warmupStartLr ?? 3e-5;
  const minLr = opts.minLr ?? 0;
  const seed = opts.seed ?? 1;
  const m = Math.min(src.count, opts.maxImagesPerEpoch ?? src.count);
  const size = src.size;
  for (const [k, v, ok] of [
    ['epochs', epochs, Number.isInteger(epochs) && epochs >= 1],
    ['batch', n, Number.isInteger(n) && n >= 2],
    ['lr', baseLr, baseLr > 0],
  ] as const) {
    if (!ok)
      throw new QcbError('QCB_USAGE', `pretraining ${k} must be positive${k === 'batch' ? ' and at least 2' : ''}`, {
        key: k,
        value: v,
        fix: `set --${k} to a positive value`,
      });
  }
  if (m < n) {
    throw new QcbError('QCB_USAGE', `the pretraining set has ${m} images, fewer than one batch of ${n}`, {
      key: 'batch',
      value: n,
      allowed: `at most ${m}`,
      fix: 'lower --batch or use a larger store / --max-images',
    });
  }
  const stepsPerEpoch = Math.floor(m / n); // drop_last, as solo-learn's pretraining loader
  const totalSteps = epochs * stepsPerEpoch;
  const augment: AugmentOptions = {
    ...DEFAULT_AUGMENT,
    mean: SSL_PREPROCESS.mean,
    std: SSL_PREPROCESS.std,
    ...opts.augment,
  };
  const optimizerKind = opts.optimizer ?? 'sgd';
  const constantLr = opts.schedule === 'constant';
  const settings = {
    method: method.name,
    hyper: hp,
    epochs,
    batch_size: n,
    lr: baseLr,
    momentum,
    weight_decay: weightDecay,
    optimizer: optimizerKind,
    schedule: constantLr
      ? { kind: 'constant' }
      : {
          kind: 'warmup_cosine',
          warmup_epochs: warmupEpochs,
          warmup_start_lr: warmupStartLr,
          min_lr: minLr,
          per: 'step',
        },
    seed,
    images_per_epoch: m,
    steps_per_epoch: stepsPerEpoch,
    crop_size: size,
    channels_in_store: src.channels,
    source: src.id,
    augment,
    views: 2,
    backbone: 'resnet18 (torchvision, engine-built)',
    backbone_bn: 'one 2N batch through the backbone (BN statistics over both views)',
    sources: method.sources,
  };
  const settingsHash = contentHash(settings);
  const outDir = resolve(opts.outDir);
  mkdirSync(outDir, { recursive: true });
  const ckptPath = join(outDir, 'checkpoint.qcbckpt');

  const pg = buildPretrainGraph(method, hp, { n, size, seed });
  const machinery: SslMachinery | undefined = method.machinery?.({
    hp,
    n,
    dim: hp.proj_output_dim,
    datasetSize: m,
    seed,
  });
  const optimizer = makeSslOptimizer({ optimizer: optimizerKind, momentum, weightDecay });
  const frozenSpec =
    pg.loss.frozenFirstEpochs && pg.loss.frozenFirstEpochs.epochs > 0 ? pg.loss.frozenFirstEpochs : undefined;
  const trainers = new Map<boolean, Trainer>();
  const trainerFor = async (frozen: boolean, carry?: Trainer): Promise<Trainer> => {
    let t = trainers.get(frozen);
    if (!t) {
      const t0 = performance.now();
      t = await createSslTrainer(pg, optimizer, frozen && frozenSpec ? frozenSpec.params : [], opts.threads);
      log.debug(`compiled the ${method.name} training step${frozen ? ' (prototypes frozen)' : ''}`, {
        seconds: (performance.now() - t0) / 1000,
        nodes: t.compiled.graph.nodes.length,
      });
      trainers.set(frozen, t);
    }
    if (carry && carry !== t) {
      t.setValues(carry.getParams());
      t.setValues(carry.getState());
    }
    return t;
  };

  // the pretraining set: a fixed seeded subset of the source
  const subsetRng = new Rng(deriveSeed(seed, 'ssl-subset'));
  const order = Int32Array.from({ length: src.count }, (_, i) => i);
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(subsetRng.next() * (src.count - i));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const subset = order.subarray(0, m);

  let startEpoch = 0;
  const lossCurve: PretrainRecord['loss'] = [];
  const knnCurve: { epoch: number; accuracy: number }[] = [];
  let trainSeconds = 0;
  let imagesSeen = 0;
  let current: Trainer | undefined;
  let resumedFromEpoch: number | undefined;
  if ((opts.resume ?? true) && existsSync(ckptPath)) {
    const ck = readCheckpoint(ckptPath);
    if (ck.meta.settings_hash !== settingsHash) {
      throw new QcbError('QCB_USAGE', `${outDir} holds a checkpoint of other pretraining settings`, {
        file: ckptPath,
        key: 'settings',
        fix: 'use another --out folder, or delete the checkpoint to start again with the new settings',
      });
    }
    const done = Number(ck.meta.epoch);
    startEpoch = done + 1;
    resumedFromEpoch = done;
    const frozenNow = !!frozenSpec && startEpoch < frozenSpec.epochs;
    current = await trainerFor(frozenNow);
    const values = new Map<string, Tensor>();
    const mstate: Record<string, Tensor> = {};
    for (const [k, t] of ck.tensors) {
      if (k.startsWith('machinery::')) mstate[k.slice(11)] = t;
      else values.set(k, t);
    }
    current.setValues(values);
    machinery?.restore?.(mstate);
    lossCurve.push(...((ck.meta.loss as PretrainRecord['loss']) ?? []));
    knnCurve.push(...((ck.meta.knn_monitor as { epoch: number; accuracy: number }[]) ?? []));
    trainSeconds = Number(ck.meta.seconds ?? 0);
    imagesSeen = Number(ck.meta.images ?? 0);
    log.info(`resuming ${method.name} pretraining after epoch ${done + 1} of ${epochs}`, { checkpoint: ckptPath });
  }
  current ??= await trainerFor(!!frozenSpec && startEpoch < frozenSpec.epochs);

  // batches come from the data engineer's prefetching BatchLoader (two augmented views per crop); grey crops are
  // replicated to 3 channels first, as the downstream feature extraction does
  const rgb: LoaderSource = {
    count: src.count,
    channels: 3,
    size,
    readIndices: async (idx) => toRgb(await src.read(idx), idx.length, src.channels, size),
  };
  const positionOf = new Map<number, number>();
  subset.forEach((idx, pos) => {
    positionOf.set(idx, pos);
  });
  const loaderFor = (label: string, epoch: number, shuffle: boolean) =>
    new BatchLoader(rgb, {
      batchSize: n,
      seed: deriveSeed(seed, label, epoch),
      views: 2,
      prefetch: 2,
      augment,
      epochs: 1,
      shuffle,
      indices: Array.from(subset),
    });
  const stacked = (b: Batch): Float32Array => {
    const x = new Float32Array(2 * b.views[0].length);
    x.set(b.views[0], 0);
    x.set(b.views[1], b.views[0].length);
    return x;
  };

  // DeepClusterV2: embeddings of every image before the first epoch
  if (startEpoch === 0 && machinery?.needsInitialMemory) {
    const t0 = performance.now();
    const g = embeddingGraph(pg.graph, current.getParams(), pg.loss.outputs);
    const sess = await loadSession(g, { intraOpNumThreads: opts.threads, noCache: true });
    const loader = loaderFor('ssl-init-memory', 0, false);
    try {
      for (let s = 0; s < stepsPerEpoch; s++) {
        const batch = await loader.next();
        if (!batch) break;
        const positions = batch.indices.map((i) => positionOf.get(i)!);
        const out = await sess.run({ [pg.input]: ortF32(stacked(batch), [2 * n, 3, size, size]) }, pg.loss.outputs);
        loader.release(batch);
        const o: Record<string, Float32Array> = {};
        for (const k of pg.loss.outputs) o[k] = out[k].data as Float32Array;
        machinery.afterStep?.({ epoch: -1, step: s, positions }, o);
      }
    } finally {
      await loader.close();
    }
    log.info(`${method.name}: memory bank initialised`, {
      images: stepsPerEpoch * n,
      seconds: (performance.now() - t0) / 1000,
    });
  }

  const monitor = async (epoch: number, params: Map<string, Tensor>) => {
    if (!opts.monitor) return;
    const mon = opts.monitor;
    const graph = backboneGraph(params, seed);
    const feats = await extractFeatures({ graph, dim: RESNET18_FEATURES, source: {} }, SSL_PREPROCESS, mon.crops, {
      threads: opts.threads,
    });
    const pick = (rows: number[]) =>
      rows.map((r) => Array.from(feats.data.subarray(r * feats.cols, (r + 1) * feats.cols)));
    const res = knnClassify(
      pick(mon.train),
      mon.train.map((r) => mon.labels[r]),
      pick(mon.test),
      { k: mon.k ?? 5 },
    );
    const acc = (100 * res.pred.filter((p, i) => p === mon.labels[mon.test[i]]).length) / mon.test.length;
    knnCurve.push({ epoch, accuracy: acc });
    log.info(`${method.name} epoch ${epoch + 1}: kNN accuracy ${acc.toFixed(2)}%`, { epoch: epoch + 1 });
  };
  if (startEpoch === 0 && opts.monitor && knnCurve.length === 0) await monitor(-1, current.getParams());

  const logEvery = Math.max(1, opts.logEvery ?? 1);
  const prog = log.startProgress(`pretrain ${method.name}`, (epochs - startEpoch) * stepsPerEpoch * n, 'images');
  for (let epoch = startEpoch; epoch < epochs; epoch++) {
    if (frozenSpec && epoch === frozenSpec.epochs && epoch > 0) {
      const old = current;
      current = await trainerFor(false, current);
      // the frozen-prototype step is never needed again: free its session and buffers
      trainers.delete(true);
      await old.session.session.release();
    }
    machinery?.beforeEpoch?.(epoch);
    const loader = loaderFor('ssl-epoch', epoch, true);
    let epochLoss = 0;
    try {
      for (let s = 0; s < stepsPerEpoch; s++) {
        const t0 = performance.now(); // includes waiting for the loader: throughput of the whole pretraining
        const batch = await loader.next();
        if (!batch) throw new QcbError('QCB_INTERNAL', `the batch loader ended after ${s} of ${stepsPerEpoch} batches`);
        const positions = batch.indices.map((i) => positionOf.get(i)!);
        const x = stacked(batch);
        loader.release(batch);
        const info: SslStepInfo = { epoch, step: s, positions };
        const feeds: Record<string, Tensor> = {
          [pg.input]: { dtype: 'float32', dims: [2 * n, 3, size, size], data: x },
          ...(machinery?.feeds(info) ?? {}),
        };
        const globalStep = epoch * stepsPerEpoch + s;
        const lr = constantLr
          ? baseLr
          : warmupCosineLr(globalStep, totalSteps, warmupEpochs * stepsPerEpoch, baseLr, warmupStartLr, minLr);
        let r: Awaited<ReturnType<Trainer['step']>>;
        try {
          r = await current.step(feeds, lr);
        } catch (e) {
          if (e instanceof QcbError && e.code === 'QCB_NAN_LOSS') {
            throw new QcbError(
              'QCB_NAN_LOSS',
              `${method.name} pretraining diverged at epoch ${epoch + 1}, step ${s + 1}: ${e.message}`,
              {
                ...e.context,
                key: `pretrain.methods.${method.name}`,
                fix: `lower the learning rate (now ${baseLr}) or the batch size; the last good checkpoint is ${ckptPath}`,
              },
            );
          }
          throw e;
        }
        if (machinery?.afterStep) {
          const o: Record<string, Float32Array> = {};
          for (const k of pg.loss.outputs) o[k] = r.outputs[k].data as Float32Array;
          machinery.afterStep(info, o);
        }
        const dt = (performance.now() - t0) / 1000;
        trainSeconds += dt;
        imagesSeen += n;
        epochLoss += r.loss;
        if (s % logEvery === 0 || s === stepsPerEpoch - 1)
          lossCurve.push({ epoch, step: globalStep, loss: r.loss, lr });
        prog.tick(n);
        opts.onStep?.({ epoch, step: globalStep, loss: r.loss, lr, imagesPerSecond: n / dt });
      }
    } finally {
      await loader.close();
    }
    log.info(`${method.name} epoch ${epoch + 1}/${epochs}: mean loss ${(epochLoss / stepsPerEpoch).toFixed(4)}`, {
      epoch: epoch + 1,
      images_per_second: imagesSeen / trainSeconds,
    });
    const params = current.getParams();
    await monitor(epoch, params);
    const tensors = new Map<string, Tensor>([...params, ...current.getState()]);
    for (const [k, t] of Object.entries(machinery?.state?.() ?? {})) tensors.set(`machinery::${k}`, t);
    writeCheckpoint(
      ckptPath,
      {
        settings_hash: settingsHash,
        epoch,
        loss: lossCurve,
        knn_monitor: knnCurve,
        seconds: trainSeconds,
        images: imagesSeen,
        method: method.name,
      },
      tensors,
    );
  }
  prog.finish();

  const onnxPath = join(outDir, 'encoder.onnx');
  exportBackbone(onnxPath, current.getParams(), seed, {
    'qcbench.label': method.label,
    'qcbench.method': method.name,
    'qcbench.settings_hash': settingsHash,
  });
  const record: PretrainRecord = {
    schema: PRETRAIN_SCHEMA,
    id: settingsHash,
    encoder: method.name,
    method: method.name,
    settings: { ...settings, machinery: machinery?.stats?.() ?? {}, resumed_from_epoch: resumedFromEpoch },
    loss: lossCurve,
    knn_monitor: opts.monitor ? knnCurve : undefined,
    images_per_second: trainSeconds > 0 ? imagesSeen / trainSeconds : 0,
    seconds: trainSeconds,
    onnx: onnxPath,
    finished_at: new Date().toISOString(),
  };
  const recordFile = join(outDir, 'pretrain.json');
  writeJsonAtomic(recordFile, record);
  writeFileAtomic(
    join(outDir, 'loss.csv'),
    `epoch,step,loss,lr\n${lossCurve.map((p) => `${p.epoch},${p.step},${p.loss},${p.lr}`).join('\n')}\n`,
  );
  return { record, onnx: onnxPath, recordFile, resumedFromEpoch };
}
