/**
 * A small second-order CNN as an encoder, after Fan, Cong & Wang 2017 Fig. 6 (§III-C: a convolutional layer, a
 * pooling layer and a fully connected layer, "10-60" and "5-70" configurations), and its first-order twin:
 *
 *   x N×C×S×S → quadratic conv k×k, K maps (same padding) → activation → MaxPool p×p
 *     → flatten N×(K·⌊S/p⌋²) → quadratic dense → activation → features N×D
 *
 * With `order: 1` both layers are ordinary (the twin); with `order: 2, init: 'first-order'` the network starts as
 * exactly the twin of the same seed (W_r drawn identically, W_g = W_b = 0, b_g = 1), so any difference after training
 * comes from the quadratic terms. Default K = 10, D = 60 (the paper's 10-60 configuration).
 */

import { GraphBuilder } from '../engine/ir/builder.js';
import type { Graph } from '../engine/ir/graph.js';
import { QcbError } from '../errors.js';
import type { Activation, InitMode, Order } from './analytic.js';
import { activate, quadraticConv, quadraticDense } from './quadratic.js';

export interface SecondOrderCnnOptions {
  order: Order;
  seed: number;
  /** Input channels C (default 3). */
  inChannels?: number;
  /** Crop size S (static: the fully connected layer's width depends on it). */
  cropSize: number;
  /** Feature maps K of the convolution (default 10). */
  convChannels?: number;
  /** Convolution kernel k (default 5, odd). */
  kernel?: number;
  /** Max-pool window and stride p (default 2). */
  pool?: number;
  /** Feature width D (default 60). */
  features?: number;
  /** Activation after the convolution and after the dense layer (default sigmoid, as the paper). */
  activation?: Activation;
  /** Quadratic layers: `random` (default) or `first-order` (start as the twin). */
  init?: InitMode;
  /** Parameter name prefix (default `so_cnn.`). */
  prefix?: string;
}

export interface SecondOrderCnnResult {
  /** N×D features. */
  features: string;
  /** Trainable parameter names. */
  params: string[];
  /** D. */
  dim: number;
}

/**
 * Appends the CNN to `b`.
 * @param input N×C×S×S float32 value
 */
export function buildSecondOrderCnn(b: GraphBuilder, input: string, o: SecondOrderCnnOptions): SecondOrderCnnResult {
  const C = o.inChannels ?? 3;
  const K = o.convChannels ?? 10;
  const k = o.kernel ?? 5;
  const p = o.pool ?? 2;
  const D = o.features ?? 60;
  const a = o.activation ?? 'sigmoid';
  const prefix = o.prefix ?? 'so_cnn.';
  const S = o.cropSize;
  if (!Number.isInteger(S) || S < p || !(k % 2 === 1) || p < 1) {
    throw new QcbError('QCB_USAGE', `second-order CNN: crop size ${S}, kernel ${k} and pool ${p} do not fit`, {
      key: 'cropSize',
      value: { cropSize: S, kernel: k, pool: p },
      allowed: 'an integer crop size ≥ pool, an odd kernel, pool ≥ 1',
      fix: 'use e.g. crop size 64, kernel 5, pool 2',
    });
  }
  const conv = quadraticConv(b, input, {
    name: `${prefix}conv`,
    inChannels: C,
    outChannels: K,
    kernel: k,
    seed: o.seed,
    init: o.init,
    order: o.order,
  });
  const pooled = b.maxPool(activate(b, conv.output, a), { kernel: [p, p], strides: [p, p] });
  const S2 = Math.floor(S / p);
  const flat = b.flatten(pooled, 1);
  const fc = quadraticDense(b, flat, {
    name: `${prefix}fc`,
    in: K * S2 * S2,
    out: D,
    seed: o.seed + 1,
    init: o.init,
    order: o.order,
  });
  const features = activate(b, fc.output, a);
  return { features, params: [...Object.values(conv.params), ...Object.values(fc.params)] as string[], dim: D };
}

/** The encoder alone as a graph: input `images` N×C×S×S → output `features` N×D. */
export function secondOrderCnnGraph(o: SecondOrderCnnOptions): { graph: Graph; result: SecondOrderCnnResult } {
  const b = new GraphBuilder(`${o.order === 2 ? 'second' : 'first'}-order-cnn`);
  const x = b.input('images', 'float32', ['N', o.inChannels ?? 3, o.cropSize, o.cropSize]);
  const result = buildSecondOrderCnn(b, x, o);
  b.output(result.features, 'features');
  return { graph: b.build(), result: { ...result, features: 'features' } };
}
