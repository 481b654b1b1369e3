/**
 * `resnet18-fractaldb`: transfer learning that needs no download. A ResNet18 (torchvision architecture) pretrained
 * *supervised* on formula-driven fractal images generated locally (Kataoka et al., "Pre-training without Natural
 * Images", ACCV 2020; generator in fractal/ifs.ts), then used as a frozen or fine-tuned encoder like the ImageNet
 * ones. It is labelled as what it is — supervised on synthetic fractals — never as ImageNet.
 *
 * Pretraining: `categories × instances` fractal images at the protocol's crop size, ResNet18 + a linear classifier
 * over the categories, softmax cross-entropy, SGD (momentum 0.9, weight decay 1e-4, Kataoka et al.'s optimiser)
 * through the engine's trainer with BatchNorm in training mode. Small by default (32 × 16 images, 4 epochs;
 * FractalDB-1k has 1000 × 1000) so that it runs in minutes on a CPU; all settings configurable. The result is
 * exported as an inference ONNX (input → features N×512) and cached under the content hash of its settings.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GraphBuilder } from '../engine/ir/builder.js';
import { exportInference } from '../engine/train/export-inference.js';
import { Sgd } from '../engine/train/optim/sgd.js';
import { Trainer } from '../engine/train/trainer.js';
import { QcbError } from '../errors.js';
import type { Spec } from '../protocol/spec.js';
import { contentHash, writeJsonAtomic } from '../util/fs.js';
import { logger as defaultLogger } from '../util/log.js';
import { permutation } from '../util/random.js';
import { multiStepLr } from '../engine/train/schedule.js';
import { appendCrossEntropy, appendLinearHead } from '../engine/train/head.js';
import { cropsToInput } from './features.js';
import { generateFractalDb } from './fractal/ifs.js';
import { loadOnnxEncoder } from './onnx-file.js';
import { buildResNet18 } from './resnet18.js';
import { type Encoder, type EncoderGraph, type EncoderLoadOptions, IMAGENET_PREPROCESS } from './types.js';
import { weightsDir } from './weights.js';

/** Bump when the generator or the training changes for the same settings (invalidates cached encoders). */
export const FRACTALDB_VERSION = 1;

/**
 * Pretraining settings. A protocol's `encoder_settings: { resnet18-fractaldb: {...} }` (keys FRACTALDB_SETTINGS) or
 * `qcbench eval --encoder-opt K=V` override each, through EncoderLoadOptions.settings.
 */
export const FRACTALDB_DEFAULTS = {
  categories: 32,
  instances: 16,
  epochs: 4,
  batch_size: 32,
  lr: 0.01,
  momentum: 0.9,
  weight_decay: 1e-4,
  /** Epochs after which the learning rate is divided by 10. */
  milestones: [3] as number[],
  /** Most affine maps per IFS (Kataoka et al. sample 2–8). */
  max_maps: 4,
  fill_threshold: 0.12,
  /** ResNet18 base width (64 = torchvision's; tests use a narrow one). */
  width: 64,
};

export type FractalDbSettings = typeof FRACTALDB_DEFAULTS;

const D = FRACTALDB_DEFAULTS;
/**
 * The protocol keys `encoder_settings.resnet18-fractaldb.*`, one per FRACTALDB_DEFAULTS entry, with their bounds. No
 * spec defaults (the defaults above apply): written keys only enter the encoder's identity.
 */
export const FRACTALDB_SETTINGS: Record<string, Spec> = {
  categories: { kind: 'int', min: 2, doc: `fractal categories (classes), default ${D.categories}` },
  instances: { kind: 'int', min: 1, doc: `images per category, default ${D.instances}` },
  epochs: { kind: 'int', min: 1, doc: `default ${D.epochs}` },
  batch_size: { kind: 'int', min: 1, doc: `default ${D.batch_size}` },
  lr: { kind: 'number', gt: 0, doc: `SGD learning rate, default ${D.lr}` },
  momentum: { kind: 'number', min: 0, max: 1, doc: `default ${D.momentum}` },
  weight_decay: { kind: 'number', min: 0, doc: `default ${D.weight_decay}` },
  milestones: { kind: 'list', of: { kind: 'int', min: 1 }, doc: `epochs where lr ÷ 10, default [${D.milestones}]` },
  max_maps: { kind: 'int', min: 2, doc: `most affine maps per IFS, default ${D.max_maps}` },
  fill_threshold: { kind: 'number', gt: 0, max: 1, doc: `default ${D.fill_threshold}` },
  width: { kind: 'int', min: 1, doc: `ResNet18 base width, default ${D.width}` },
};

/** What a pretraining produced (also written as `<hash>.json` beside the ONNX). */
export interface FractalDbRecord {
  id: string;
  settings: FractalDbSettings & { crop_size: number; seed: number; version: number };
  loss: { epoch: number; step: number; loss: number; lr: number }[];
  /** Training accuracy on the fractal categories in the last epoch (percent). */
  train_accuracy: number;
  images_per_second: number;
  seconds: number;
  onnx: string;
  finished_at: string;
}

function settingsFrom(o: EncoderLoadOptions): FractalDbSettings {
  const s = { ...FRACTALDB_DEFAULTS, ...(o.settings ?? {}) } as FractalDbSettings;
  for (const k of ['categories', 'instances', 'epochs', 'batch_size', 'max_maps', 'width'] as const) {
    if (!Number.isInteger(s[k]) || s[k] < 1) {
      throw new QcbError('QCB_PROTOCOL_VALUE', `resnet18-fractaldb setting '${k}' must be a positive integer`, {
        key: `encoder_settings.resnet18-fractaldb.${k}`,
        value: s[k],
        allowed: 'a positive integer',
        fix: `set ${k} to a positive integer`,
      });
    }
  }
  if (s.categories < 2)
    throw new QcbError('QCB_PROTOCOL_VALUE', 'resnet18-fractaldb needs at least 2 categories', {
      key: 'encoder_settings.resnet18-fractaldb.categories',
      value: s.categories,
      allowed: '≥ 2',
      fix: 'set categories to 2 or more',
    });
  return s;
}

/** Cache folder of trained FractalDB encoders: `opts.cacheDir`, else `fractaldb/` beside the weights folder. */
export function fractalCacheDir(o: EncoderLoadOptions): string {
  return o.cacheDir ?? join(dirname(weightsDir(o.weightsDir)), 'fractaldb');
}

/**
 * Generates the fractal data set, pretrains the ResNet18 and exports it (or returns the cached export).
 * @returns the ONNX path and the pretraining record
 */
export async function pretrainFractalDb(
  o: EncoderLoadOptions,
): Promise<{ onnx: string; record: FractalDbRecord; cached: boolean }> {
  const s = settingsFrom(o);
  const full = { ...s, crop_size: o.cropSize, seed: o.seed, version: FRACTALDB_VERSION };
  const id = contentHash(full).slice(0, 16);
  const dir = fractalCacheDir(o);
  const onnx = join(dir, `resnet18-fractaldb-${id}.onnx`);
  const recFile = join(dir, `resnet18-fractaldb-${id}.json`);
  if (existsSync(onnx) && existsSync(recFile)) {
    return { onnx, record: JSON.parse(readFileSync(recFile, 'utf8')) as FractalDbRecord, cached: true };
  }
  const log = o.log ?? defaultLogger;
  const S = o.cropSize;
  const t0 = Date.now();
  const db = generateFractalDb({
    categories: s.categories,
    instances: s.instances,
    size: S,
    seed: o.seed,
    maxMaps: s.max_maps,
    fillThreshold: s.fill_threshold,
  });
  log.info('FractalDB: generated fractal categories', {
    categories: s.categories,
    instances: s.instances,
    size: S,
    seconds: (Date.now() - t0) / 1000,
  });

  const K = s.categories;
  const b = new GraphBuilder('resnet18_fractaldb');
  const input = b.input('input', 'float32', ['N', 3, S, S]);
  const y = b.input('y', 'float32', ['N', K]);
  const r = buildResNet18(b, input, { seed: o.seed, width: s.width });
  b.output(r.features, 'features');
  const { logits, params: head } = appendLinearHead(b, 'features', 8 * s.width, K, o.seed + 1, 'fc.');
  b.output(appendCrossEntropy(b, logits, y), 'loss');
  const trainer = await Trainer.create(
    {
      graph: b.build(),
      loss: 'loss',
      trainable: [...r.params, ...head],
      optimizer: new Sgd({ momentum: s.momentum, weightDecay: s.weight_decay }),
      extraOutputs: [logits],
    },
    { intraOpNumThreads: o.threads, noCache: true },
  );
  const crops = { data: db.images, n: db.labels.length, channels: 3, size: S };
  const n = crops.n;
  const loss: FractalDbRecord['loss'] = [];
  const prog = log.startProgress('FractalDB pretraining', s.epochs * n, 'images');
  const tTrain = Date.now();
  let correct = 0;
  for (let epoch = 0; epoch < s.epochs; epoch++) {
    const lr = multiStepLr(s.lr, epoch, s.milestones, 0.1);
    const perm = permutation(n, (o.seed * 7919 + epoch) >>> 0);
    correct = 0;
    for (let st = 0; st < n; st += s.batch_size) {
      const rows = perm.slice(st, st + s.batch_size);
      if (rows.length < 2) continue; // BatchNorm statistics need two samples
      const x = cropsToInput(crops, rows, IMAGENET_PREPROCESS);
      const oh = new Float32Array(rows.length * K);
      rows.forEach((row, i) => {
        oh[i * K + db.labels[row]] = 1;
      });
      const res = await trainer.step(
        {
          input: { dtype: 'float32', dims: [rows.length, 3, S, S], data: x },
          y: { dtype: 'float32', dims: [rows.length, K], data: oh },
        },
        lr,
      );
      const lg = res.outputs[logits].data as Float32Array;
      rows.forEach((row, i) => {
        let best = 0;
        for (let k = 1; k < K; k++) if (lg[i * K + k] > lg[i * K + best]) best = k;
        if (best === db.labels[row]) correct++;
      });
      loss.push({ epoch, step: trainer.steps, loss: res.loss, lr });
      prog.tick(rows.length, `loss ${res.loss.toFixed(3)}`);
    }
  }
  prog.finish('FractalDB pretraining: done');
  const seconds = (Date.now() - tTrain) / 1000;
  const record: FractalDbRecord = {
    id,
    settings: full,
    loss,
    train_accuracy: (100 * correct) / n,
    images_per_second: (s.epochs * n) / Math.max(seconds, 1e-9),
    seconds,
    onnx,
    finished_at: new Date().toISOString(),
  };
  exportInference(trainer, onnx, {
    outputs: ['features'],
    metadata: {
      'qcbench.kind': 'supervised-synthetic',
      'qcbench.label': 'ResNet18 FractalDB (supervised, synthetic)',
      'qcbench.preprocess.mean': JSON.stringify(IMAGENET_PREPROCESS.mean),
      'qcbench.preprocess.std': JSON.stringify(IMAGENET_PREPROCESS.std),
      'qcbench.fractaldb': JSON.stringify(full),
    },
  });
  await trainer.session.session.release();
  writeJsonAtomic(recFile, record);
  log.info('FractalDB: encoder exported', {
    file: onnx,
    train_accuracy: record.train_accuracy.toFixed(1),
    images_per_second: record.images_per_second.toFixed(1),
  });
  return { onnx, record, cached: false };
}

/** Registry loader: pretrains (or reuses the cached) FractalDB ResNet18 and loads its export. */
export async function loadFractalDbResNet18(o: EncoderLoadOptions): Promise<EncoderGraph> {
  const { onnx, record, cached } = await pretrainFractalDb(o);
  const eg = loadOnnxEncoder(onnx, o.cropSize);
  const { info: _info, ...rest } = eg;
  return {
    ...rest,
    source: {
      ...eg.source,
      pretraining: 'supervised on synthetic fractals (FractalDB, Kataoka et al. 2020), not ImageNet',
      record: record.id,
      cached,
      train_accuracy: record.train_accuracy,
    },
  };
}

/** ResNet18 pretrained supervised on fractals generated here: transfer learning without a download. */
export const FRACTALDB_RESNET18: Encoder = {
  name: 'resnet18-fractaldb',
  label: 'ResNet18 FractalDB (supervised, synthetic)',
  kind: 'supervised-synthetic',
  dim: 512,
  preprocess: IMAGENET_PREPROCESS,
  description:
    'ResNet18 pretrained supervised on locally generated fractal images (Kataoka et al., ACCV 2020): transfer learning that needs no download; not ImageNet',
  settings: FRACTALDB_SETTINGS,
  load: loadFractalDbResNet18,
};
