/**
 * What identifies a pretraining: its options, their defaults (paper §3.2 and solo-learn), and the settings object
 * whose content hash is the pretraining's id (the record's `id`, the checkpoint's `settings_hash`, the exported
 * encoder's `qcbench.settings_hash`). The settings object's keys, their order and their values are part of that
 * hash: changing any of them makes every cached encoder and every checkpoint unreachable.
 */
import type { AugmentOptions } from '../../data/augment/transforms.js';
import { DEFAULT_AUGMENT } from '../../data/augment/transforms.js';
import { IMAGENET_PREPROCESS, type Preprocess } from '../../encoders/types.js';
import { warmupCosineLr } from '../../engine/train/schedule.js';
import { QcbError } from '../../errors.js';
import { SSL_WEIGHT_DECAY } from '../../protocol/defaults.js';
import type { PretrainRecord } from '../../results/schema.js';
import { contentHash } from '../../util/fs.js';
import type { Logger } from '../../util/log.js';
import { getMethod, resolveHyper } from '../registry.js';
import type { SslHyper, SslMethod } from '../types.js';
import type { KnnMonitor } from './monitor.js';
import type { CropSource } from './sources.js';

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

/** The options with their defaults filled in and checked, the derived step counts, and the settings hash. */
export interface PretrainPlan {
  method: SslMethod;
  hp: SslHyper;
  source: CropSource;
  epochs: number;
  /** Images per step (N; the graph's input is 2N×3×S×S). */
  batchSize: number;
  baseLr: number;
  momentum: number;
  weightDecay: number;
  optimizer: 'sgd' | 'lars';
  seed: number;
  /** Images per epoch (M ≤ source.count). */
  imagesPerEpoch: number;
  /** ⌊M / N⌋: the last partial batch is dropped, as solo-learn's pretraining loader does. */
  stepsPerEpoch: number;
  /** Crop size S. */
  size: number;
  augment: AugmentOptions;
  /** Learning rate at a global step (epoch · stepsPerEpoch + step in epoch). */
  lrAt(globalStep: number): number;
  /** What the hash covers; recorded in pretrain.json (with the machinery's statistics added). */
  settings: Record<string, unknown>;
  /** contentHash(settings): the pretraining's id. */
  settingsHash: string;
}

/**
 * Fills in the defaults, checks the options and derives the settings hash.
 * @throws QCB_STORE for crops of other than 1 or 3 channels; QCB_USAGE for non-positive epochs, batch or lr, a batch
 *   below 2, or fewer images than one batch
 */
export function planPretrain(opts: PretrainOptions): PretrainPlan {
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
  // the hashed settings: keep these keys, their order and their values, or every cached encoder's id changes
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
  return {
    method,
    hp,
    source: src,
    epochs,
    batchSize: n,
    baseLr,
    momentum,
    weightDecay,
    optimizer: optimizerKind,
    seed,
    imagesPerEpoch: m,
    stepsPerEpoch,
    size,
    augment,
    lrAt: (step) =>
      constantLr
        ? baseLr
        : warmupCosineLr(step, totalSteps, warmupEpochs * stepsPerEpoch, baseLr, warmupStartLr, minLr),
    settings,
    settingsHash: contentHash(settings),
  };
}
