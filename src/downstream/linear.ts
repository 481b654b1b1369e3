/**
 * Linear classifier on a frozen encoder (Masud et al. 2022 §3.3, task 2): "a single dense layer with 2 output
 * classes … the weights of the pre-trained encoder were frozen. We trained this layer for 150 epochs and with a batch
 * size of 32. The optimizer was SGD with a learning rate set to 0.001 and momentum to 0.9 … a step scheduler with
 * gamma value set to 0.1 at 40, 70 and 120 epochs."
 *
 * The encoder is frozen and no augmentation is used, so its features are computed once and the head is trained on
 * them: exactly the same optimisation as running the frozen encoder every step, and ~1000× cheaper. The head trains
 * through the engine's training step (Gemm + softmax cross-entropy, the `optimizer` of `tasks.linear`: SGD by
 * default, as the paper) in onnxruntime.
 *
 * As a downstream task (`LINEAR_TASK`) with the optional line search; a saved model is the head's weights as JSON.
 */
import { QcbError } from '../errors.js';
import { GraphBuilder } from '../engine/ir/builder.js';
import type { Tensor } from '../engine/ir/graph.js';
import { LossWatch, nonFiniteTensor } from '../engine/train/divergence.js';
import { Trainer } from '../engine/train/trainer.js';
import { optimizerFields } from '../protocol/fields.js';
import type { Logger } from '../util/log.js';
import { type Features, selectFeatureRows } from '../encoders/features.js';
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
import { type DownstreamTask, needFeatures, trainHead } from './task.js';

/** Paper §3.3 task 2: linear layer on a frozen encoder (the protocol's `tasks.linear` defaults). */
export const LINEAR = {
  epochs: 150,
  batch_size: 32,
  optimizer: 'sgd',
  lr: 0.001,
  momentum: 0.9,
  weight_decay: 0,
  milestones: [40, 70, 120],
  gamma: 0.1,
} as const;

/** The head's training settings at the defaults. */
export const LINEAR_DEFAULTS: HeadTrainSettings = {
  epochs: LINEAR.epochs,
  batch_size: LINEAR.batch_size,
  optimizer: LINEAR.optimizer,
  lr: LINEAR.lr,
  momentum: LINEAR.momentum,
  weight_decay: LINEAR.weight_decay,
  milestones: [...LINEAR.milestones],
  gamma: LINEAR.gamma,
};

/** A trained head: weight K×D, bias K, and the mean training loss per epoch. */
export interface LinearModel {
  weight: Float32Array;
  bias: Float32Array;
  dim: number;
  classes: readonly string[];
  lossCurve: number[];
}

export interface LinearOptions {
  seed: number;
  settings?: Partial<HeadTrainSettings>;
  threads?: number;
  log?: Logger;
}

/**
 * Trains the dense layer on frozen features.
 * @param x N×D training features
 * @param labels N labels (`normal` / `abnormal`)
 */
export async function trainLinear(x: Features, labels: readonly string[], o: LinearOptions): Promise<LinearModel> {
  const s = { ...LINEAR_DEFAULTS, ...o.settings };
  if (x.rows !== labels.length)
    throw new QcbError('QCB_FEED', `${x.rows} feature rows but ${labels.length} labels`, {
      key: 'labels',
      fix: 'give one label per training crop',
    });
  if (x.rows === 0)
    throw new QcbError('QCB_ANNOTATIONS', 'the linear head has no training images', {
      key: 'budget',
      fix: 'use a label budget of at least one image per class',
    });
  const K = CLASSES.length;
  const y = classIndices(labels);
  const b = new GraphBuilder('linear_head');
  const xin = b.input('x', 'float32', ['N', x.cols]);
  const yin = b.input('y', 'float32', ['N', K]);
  const { logits, params } = appendLinearHead(b, xin, x.cols, K, o.seed);
  b.output(logits, 'logits');
  b.output(appendCrossEntropy(b, 'logits', yin), 'loss');
  const trainer = await Trainer.create(
    {
      graph: b.build(),
      loss: 'loss',
      trainable: params,
      optimizer: headOptimizer(s),
    },
    // a fresh step model per training: uncached, released below, so line searches and long runs do not accumulate
    { intraOpNumThreads: o.threads ?? 1, noCache: true },
  );
  const lossCurve: number[] = [];
  const watch = new LossWatch();
  for (let epoch = 0; epoch < s.epochs; epoch++) {
    const lr = multiStepLr(s.lr, epoch, s.milestones, s.gamma);
    const perm = permutation(x.rows, (o.seed * 1_000_003 + epoch) >>> 0);
    let sum = 0;
    for (let st = 0; st < perm.length; st += s.batch_size) {
      const rows = perm.slice(st, st + s.batch_size);
      const feeds: Record<string, Tensor> = {
        x: { dtype: 'float32', dims: [rows.length, x.cols], data: selectFeatureRows(x, rows).data },
        y: { dtype: 'float32', dims: [rows.length, K], data: oneHot(y, rows, K) },
      };
      const r = await trainer.step(feeds, lr);
      const why = watch.check(r.loss);
      if (why) {
        await trainer.session.session.release();
        throw headDiverged('linear', { epoch, step: st / s.batch_size }, why, s.lr);
      }
      sum += r.loss * rows.length;
    }
    lossCurve.push(sum / x.rows);
  }
  const p = trainer.getParams();
  await trainer.session.session.release();
  const bad = nonFiniteTensor(p);
  if (bad) throw headDiverged('linear', { epoch: s.epochs - 1 }, `parameter ${bad.name} became non-finite`, s.lr);
  o.log?.debug('linear head trained', {
    epochs: s.epochs,
    first_loss: lossCurve[0],
    last_loss: lossCurve[lossCurve.length - 1],
  });
  return {
    weight: Float32Array.from(p.get(params[0])!.data as Float32Array),
    bias: Float32Array.from(p.get(params[1])!.data as Float32Array),
    dim: x.cols,
    classes: CLASSES,
    lossCurve,
  };
}

/** Logits N×K of a trained head (plain JS: a 2×D matrix-vector product per row). */
export function linearLogits(m: LinearModel, x: Features): Float32Array {
  if (x.cols !== m.dim)
    throw new QcbError('QCB_FEED', `features have ${x.cols} columns, the head expects ${m.dim}`, {
      key: 'features',
      fix: 'use the same encoder for training and test features',
    });
  const K = m.classes.length;
  const out = new Float32Array(x.rows * K);
  const d = x.data;
  for (let i = 0; i < x.rows; i++) {
    for (let k = 0; k < K; k++) {
      let acc = m.bias[k];
      for (let j = 0; j < x.cols; j++) acc += m.weight[k * x.cols + j] * d[i * x.cols + j];
      out[i * K + k] = acc;
    }
  }
  return out;
}

/** Predicted labels and abnormal-class probabilities (the AUC score) for test features. */
export function predictLinear(m: LinearModel, x: Features): { pred: string[]; score: number[] } {
  return predictionsFromLogits(linearLogits(m, x), m.classes);
}

/** The JSON form of a saved linear head (weight K×D row-major, bias K). */
export interface LinearSaved {
  weight: number[];
  bias: number[];
  dim: number;
  classes: string[];
}

/** Linear layer on frozen features (paper §3.3 task 2); settings as HeadTrainSettings over LINEAR_DEFAULTS. */
export const LINEAR_TASK = {
  name: 'linear',
  label: 'Linear layer',
  description: 'one dense layer trained on a frozen encoder',
  frozen: true,
  settings: optimizerFields(LINEAR),
  lineSearch: true,
  train(ctx) {
    return trainHead(ctx, LINEAR_DEFAULTS, {
      all: needFeatures(ctx.features, 'linear', 'training'),
      rows: selectFeatureRows,
      fit: (x, labels, settings, log) =>
        trainLinear(x, labels, { seed: ctx.seed, settings, threads: ctx.threads, log }),
      predict: async (m, x) => predictLinear(m, x).pred,
    });
  },
  async predict(m, input) {
    return predictLinear(m, needFeatures(input.features, 'linear', 'test'));
  },
  save(m) {
    return { weight: Array.from(m.weight), bias: Array.from(m.bias), dim: m.dim, classes: [...m.classes] };
  },
  load(dir, s) {
    if (s.weight.length !== s.classes.length * s.dim || s.bias.length !== s.classes.length)
      throw new QcbError(
        'QCB_FILE_TRUNCATED',
        `the saved linear head has ${s.weight.length} weights, expected ${s.classes.length}×${s.dim}`,
        {
          file: dir,
          fix: 'delete the model folder: it is trained again',
        },
      );
    // the loss curve is not part of the head: the caller keeps it beside (Trained.lossCurve)
    return {
      weight: Float32Array.from(s.weight),
      bias: Float32Array.from(s.bias),
      dim: s.dim,
      classes: s.classes,
      lossCurve: [],
    };
  },
} satisfies DownstreamTask<LinearModel, LinearSaved>;
