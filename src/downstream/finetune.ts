/**
 * Fine-tuning (Masud et al. 2022 §3.3, task 3): "a dense linear layer with 2 output classes as in the previous
 * settings. However, this time we did not freeze the encoder network … We trained the models for 50 epochs. The
 * learning rate was 0.001 with a momentum of 0.9 with a SGD optimizer … a step scheduler with a gamma value of 0.1 at
 * 25 on 40 epochs."
 *
 * The encoder graph plus a linear head and softmax cross-entropy are compiled into one training step by the engine
 * (autodiff + the `tasks.finetune.optimizer`, SGD by default as the paper, in ONNX) and run in onnxruntime;
 * BatchNorm trains with batch statistics (PyTorch's `model.train()`), and the exported inference graph (running statistics) predicts the test crops. Batches of one crop are skipped:
 * BatchNorm needs two samples for a batch statistic (PyTorch raises there).
 *
 * As a downstream task (`FINETUNE_TASK`) with the optional line search; a saved model is the inference graph as
 * `model.onnx` (the engine's export) with its input size, normalisation and classes as JSON.
 */
import { join } from 'node:path';
import { QcbError } from '../errors.js';
import { GraphBuilder } from '../engine/ir/builder.js';
import type { Graph } from '../engine/ir/graph.js';
import { exportOnnx } from '../engine/onnx/export.js';
import { importOnnx } from '../engine/onnx/import.js';
import { loadSession, ortF32 } from '../engine/runtime/session.js';
import { cloneGraph } from '../engine/train/compile.js';
import { inferenceGraph } from '../engine/train/export-inference.js';
import { LossWatch, nonFiniteTensor } from '../engine/train/divergence.js';
import { Trainer } from '../engine/train/trainer.js';
import type { EncoderGraph, Preprocess } from '../encoders/types.js';
import { optimizerFields } from '../protocol/fields.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Logger } from '../util/log.js';
import { type CropSet, cropsToInput, selectCrops } from '../encoders/features.js';
import {
  CLASSES,
  classIndices,
  type HeadTrainSettings,
  headDiverged,
  headOptimizer,
  oneHot,
  predictionsFromLogits,
} from './head.js';
import { permutation } from '../util/random.js';
import { multiStepLr } from '../engine/train/schedule.js';
import { appendCrossEntropy, appendLinearHead } from '../engine/train/head.js';
import { type DownstreamTask, trainHead } from './task.js';

/** Paper §3.3 task 3: fine-tuning the whole encoder with a linear head (the protocol's `tasks.finetune` defaults). */
export const FINETUNE = {
  epochs: 50,
  batch_size: 32,
  optimizer: 'sgd',
  lr: 0.001,
  momentum: 0.9,
  weight_decay: 0,
  milestones: [25, 40],
  gamma: 0.1,
} as const;

/** The fine-tuning settings at the defaults. */
export const FINETUNE_DEFAULTS: HeadTrainSettings = {
  epochs: FINETUNE.epochs,
  batch_size: FINETUNE.batch_size,
  optimizer: FINETUNE.optimizer,
  lr: FINETUNE.lr,
  momentum: FINETUNE.momentum,
  weight_decay: FINETUNE.weight_decay,
  milestones: [...FINETUNE.milestones],
  gamma: FINETUNE.gamma,
};

export interface FinetuneOptions {
  seed: number;
  settings?: Partial<HeadTrainSettings>;
  threads?: number;
  log?: Logger;
}

/** A fine-tuned classifier: the inference graph `input` N×3×T×T → `logits` N×2, and its training curve. */
export interface FinetuneModel {
  graph: Graph;
  inputSize: number;
  preprocess: Preprocess;
  classes: readonly string[];
  /** Mean training loss per epoch. */
  lossCurve: number[];
  images_per_second: number;
}

/**
 * Fine-tunes the whole encoder with a linear head on the training crops.
 * @param eg the encoder (not modified)
 * @param crops N×C×S×S training crops, `labels` their N labels
 */
export async function trainFinetune(
  eg: EncoderGraph,
  pre: Preprocess,
  crops: CropSet,
  labels: readonly string[],
  o: FinetuneOptions,
): Promise<FinetuneModel> {
  const s = { ...FINETUNE_DEFAULTS, ...o.settings };
  if (crops.n !== labels.length)
    throw new QcbError('QCB_FEED', `${crops.n} crops but ${labels.length} labels`, {
      key: 'labels',
      fix: 'give one label per training crop',
    });
  if (crops.n < 2)
    throw new QcbError('QCB_ANNOTATIONS', `fine-tuning needs at least 2 training images, got ${crops.n}`, {
      key: 'budget',
      fix: 'use a label budget of at least one image per class',
    });
  const K = CLASSES.length;
  const y = classIndices(labels);
  const T = eg.inputSize ?? crops.size;
  const g = cloneGraph(eg.graph);
  g.inputs = g.inputs.map((v) => (v.name === 'input' ? { ...v, shape: ['N', 3, T, T] } : v));
  const b = new GraphBuilder(g);
  const yin = b.input('qcb_y', 'float32', ['N', K]);
  const head = appendLinearHead(b, 'features', eg.dim, K, o.seed, 'qcb_head.');
  g.outputs = [];
  b.output(head.logits, 'logits');
  b.output(appendCrossEntropy(b, 'logits', yin), 'qcb_loss');
  b.build();
  const trainable = eg.params ? [...eg.params, ...head.params] : undefined;
  const trainer = await Trainer.create(
    {
      graph: g,
      loss: 'qcb_loss',
      trainable,
      optimizer: headOptimizer(s),
    },
    { intraOpNumThreads: o.threads, noCache: true },
  );
  const lossCurve: number[] = [];
  const watch = new LossWatch();
  const prog = o.log?.startProgress('fine-tuning', s.epochs * crops.n, 'images');
  const t0 = Date.now();
  let seen = 0;
  for (let epoch = 0; epoch < s.epochs; epoch++) {
    const lr = multiStepLr(s.lr, epoch, s.milestones, s.gamma);
    const perm = permutation(crops.n, (o.seed * 1_000_003 + epoch) >>> 0);
    let sum = 0;
    let cnt = 0;
    for (let st = 0; st < perm.length; st += s.batch_size) {
      const rows = perm.slice(st, st + s.batch_size);
      if (rows.length < 2) continue;
      const x = cropsToInput(crops, rows, pre, T);
      const r = await trainer.step(
        {
          input: { dtype: 'float32', dims: [rows.length, 3, T, T], data: x },
          qcb_y: { dtype: 'float32', dims: [rows.length, K], data: oneHot(y, rows, K) },
        },
        lr,
      );
      const why = watch.check(r.loss);
      if (why) {
        await trainer.session.session.release();
        throw headDiverged('finetune', { epoch, step: st / s.batch_size }, why, s.lr);
      }
      sum += r.loss * rows.length;
      cnt += rows.length;
      seen += rows.length;
      prog?.tick(rows.length, `loss ${r.loss.toFixed(3)}`);
    }
    lossCurve.push(cnt ? sum / cnt : Number.NaN);
  }
  prog?.finish('fine-tuning: done');
  const seconds = (Date.now() - t0) / 1000;
  const graph = inferenceGraph(trainer, { outputs: ['logits'] });
  await trainer.session.session.release();
  const bad = nonFiniteTensor(graph.initializers);
  if (bad) throw headDiverged('finetune', { epoch: s.epochs - 1 }, `parameter ${bad.name} became non-finite`, s.lr);
  return {
    graph,
    inputSize: T,
    preprocess: pre,
    classes: CLASSES,
    lossCurve,
    images_per_second: seen / Math.max(seconds, 1e-9),
  };
}

/** N×K logits of a fine-tuned model on crops, in batches. */
export async function finetuneLogits(
  m: FinetuneModel,
  crops: CropSet,
  o: { threads?: number; batchSize?: number } = {},
): Promise<Float32Array> {
  // every fine-tuned model is unique: an uncached session, released after use, keeps long runs from growing
  const session = await loadSession(m.graph, { intraOpNumThreads: o.threads, noCache: true });
  const K = m.classes.length;
  const bs = Math.max(1, o.batchSize ?? 64);
  const T = m.inputSize;
  const out = new Float32Array(crops.n * K);
  try {
    for (let st = 0; st < crops.n; st += bs) {
      const rows = Array.from({ length: Math.min(bs, crops.n - st) }, (_, i) => st + i);
      const r = await session.run(
        { input: ortF32(cropsToInput(crops, rows, m.preprocess, T), [rows.length, 3, T, T]) },
        ['logits'],
      );
      out.set(r.logits.data as Float32Array, st * K);
    }
  } finally {
    await session.session.release();
  }
  return out;
}

/** Predicted labels and abnormal-class probabilities for test crops. */
export async function predictFinetune(
  m: FinetuneModel,
  crops: CropSet,
  o: { threads?: number } = {},
): Promise<{ pred: string[]; score: number[] }> {
  return predictionsFromLogits(await finetuneLogits(m, crops, o), m.classes);
}

/** The JSON part of a saved fine-tuned model (the graph is `model.onnx`: `input` N×3×T×T → `logits` N×K). */
export interface FinetuneSaved {
  input_size: number;
  preprocess: Preprocess;
  classes: string[];
  images_per_second: number;
}

const GRAPH_FILE = 'model.onnx';

/** Fine-tuning of the whole encoder with a linear head (paper §3.3 task 3); settings over FINETUNE_DEFAULTS. */
export const FINETUNE_TASK = {
  name: 'finetune',
  label: 'Fine-tuned',
  description: 'dense layer with the whole encoder trained',
  frozen: false,
  settings: optimizerFields(FINETUNE),
  lineSearch: true,
  async train(ctx) {
    const t = await trainHead(ctx, FINETUNE_DEFAULTS, {
      all: ctx.train.crops,
      rows: selectCrops,
      fit: (crops, labels, settings, log) =>
        trainFinetune(ctx.eg, ctx.preprocess, crops, labels, { seed: ctx.seed, settings, threads: ctx.threads, log }),
      predict: async (m, crops) => (await predictFinetune(m, crops, { threads: ctx.threads })).pred,
    });
    return { ...t, settings: { ...t.settings, images_per_second: t.model.images_per_second } };
  },
  predict(m, input, o) {
    return predictFinetune(m, input.crops, o);
  },
  save(m, dir, o) {
    writeFileAtomic(join(dir, GRAPH_FILE), exportOnnx(m.graph, { metadata: o?.metadata }));
    return {
      input_size: m.inputSize,
      preprocess: m.preprocess,
      classes: [...m.classes],
      images_per_second: m.images_per_second,
    };
  },
  load(dir, s) {
    return {
      graph: importOnnx(join(dir, GRAPH_FILE)),
      inputSize: s.input_size,
      preprocess: s.preprocess,
      classes: s.classes,
      // the loss curve is not part of the graph: the caller keeps it beside (Trained.lossCurve)
      lossCurve: [],
      images_per_second: s.images_per_second,
    };
  },
} satisfies DownstreamTask<FinetuneModel, FinetuneSaved>;
