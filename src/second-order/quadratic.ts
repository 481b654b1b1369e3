/**
 * Second-order (quadratic) layers as engine graph functions (Fan, Cong & Wang 2017, Eq. 1/3):
 *
 *   dense:  h(x) = (x·W_rᵀ + b_r) ⊙ (x·W_gᵀ + b_g) + (x ⊙ x)·W_bᵀ + c            x N×D_in → N×D_out
 *   conv:   h(x) = conv_r(x) ⊙ conv_g(x) + conv_b(x ⊙ x)                          x N×C×H×W → N×K×H'×W'
 *
 * (conv_r, conv_g carry biases b_r, b_g; conv_b carries c.) An activation follows outside the layer. Every op used
 * (Gemm, Conv, Mul, Add, Sigmoid, Softplus, ReduceSum) has a gradient rule in src/engine/grad, so a network of these
 * layers trains through `compileTrainStep` / `Trainer` like any other.
 *
 * Initialisation `first-order`: W_g = 0, b_g = 1, W_b = 0, c = 0, so the layer starts exactly as an inner-product
 * layer x·W_rᵀ + b_r (its first-order twin) and gradient descent grows the quadratic terms only where they help.
 */

import type { ConvOpts, GraphBuilder } from '../engine/ir/builder.js';
import { GraphBuilder as Builder } from '../engine/ir/builder.js';
import type { Graph, Tensor } from '../engine/ir/graph.js';
import { QcbError } from '../errors.js';
import {
  type Activation,
  type InitMode,
  keysOf,
  type LayerParams,
  type LossKind,
  type NetParams,
  normalSampler,
  type Order,
  type ParamKey,
} from './analytic.js';

/** float64 array → float32 engine tensor. */
export function f32(data: ArrayLike<number>, dims: number[]): Tensor {
  return { dtype: 'float32', dims: [...dims], data: Float32Array.from(data as ArrayLike<number>) };
}

/** Parameter value names of one emitted layer, by key (order 1: wr, br only). */
export type LayerParamNames = Partial<Record<ParamKey, string>>;

/**
 * Emits a dense layer of either order from float64 parameters (a {@link LayerParams}): pre-activation N×out.
 * Parameter initializers are named `<name>.wr`, `<name>.br`, `<name>.wg`, `<name>.bg`, `<name>.wb`, `<name>.c`.
 * @param x N×in value
 */
export function denseFromParams(
  b: GraphBuilder,
  x: string,
  p: LayerParams,
  name: string,
): { output: string; params: LayerParamNames } {
  const params: LayerParamNames = {};
  const t = (k: ParamKey) => {
    const dims = k === 'wr' || k === 'wg' || k === 'wb' ? [p.out, p.in] : [p.out];
    const v = b.param(`${name}.${k}`, f32(p[k], dims));
    params[k] = v;
    return v;
  };
  if (p.order === 1) return { output: b.gemm(x, t('wr'), t('br'), { transB: true }), params };
  const r = b.gemm(x, t('wr'), t('br'), { transB: true });
  const g = b.gemm(x, t('wg'), t('bg'), { transB: true });
  const q = b.gemm(b.mul(x, x), t('wb'), t('c'), { transB: true });
  return { output: b.add(b.mul(r, g), q), params };
}

export interface QuadraticDenseOptions {
  /** Parameter name prefix (`head` → `head.wr`, …). */
  name: string;
  in: number;
  out: number;
  seed: number;
  /** `random` (default) or `first-order` (W_g = 0, b_g = 1, W_b = 0, c = 0). */
  init?: InitMode;
  gain?: number;
  /** Ordinary inner-product layer instead (the first-order twin). */
  order?: Order;
}

/** Random float64 parameters of one dense layer (the same scheme as analytic.ts `initNet`). */
export function initDense(o: QuadraticDenseOptions): LayerParams {
  const order = o.order ?? 2;
  const gain = o.gain ?? 1;
  const first = (o.init ?? 'random') === 'first-order';
  const rn = normalSampler(o.seed);
  const sd = gain / Math.sqrt(o.in);
  const fill = (n: number, f: () => number) => Float64Array.from({ length: n }, f);
  const wr = fill(o.out * o.in, () => rn() * sd);
  const br = fill(o.out, () => (first || order === 1 ? 0 : (rn() * gain) / 2));
  if (order === 1)
    return {
      order,
      in: o.in,
      out: o.out,
      wr,
      br,
      wg: new Float64Array(0),
      bg: new Float64Array(0),
      wb: new Float64Array(0),
      c: new Float64Array(0),
    };
  return {
    order,
    in: o.in,
    out: o.out,
    wr,
    br,
    wg: fill(o.out * o.in, () => (first ? 0 : rn() * sd)),
    bg: fill(o.out, () => (first ? 1 : 1 + (rn() * gain) / 2)),
    wb: fill(o.out * o.in, () => (first ? 0 : rn() * sd)),
    c: new Float64Array(o.out),
  };
}

/**
 * A quadratic (or, with `order: 1`, ordinary) dense layer: x N×in → pre-activation N×out (Eq. 1).
 * @returns the output value and the parameter names
 */
export function quadraticDense(
  b: GraphBuilder,
  x: string,
  o: QuadraticDenseOptions,
): { output: string; params: LayerParamNames } {
  return denseFromParams(b, x, initDense(o), o.name);
}

export interface QuadraticConvOptions {
  name: string;
  inChannels: number;
  outChannels: number;
  /** Square kernel size. */
  kernel: number;
  seed: number;
  init?: InitMode;
  gain?: number;
  /** Ordinary convolution instead (the first-order twin). */
  order?: Order;
  strides?: number[];
  pads?: number[];
}

/**
 * A quadratic convolution `conv_r(x) ⊙ conv_g(x) + conv_b(x²)` (or, with `order: 1`, an ordinary one):
 * x N×C×H×W → pre-activation N×K×H'×W'. Weights K×C×k×k named `<name>.wr|wg|wb`, biases K `<name>.br|bg|c`.
 * `random` init: W_r, W_g, W_b ~ N(0, gain²/(C·k·k)), b_r = 0, b_g = 1, c = 0; `first-order`: W_g = W_b = 0.
 */
export function quadraticConv(
  b: GraphBuilder,
  x: string,
  o: QuadraticConvOptions,
): { output: string; params: LayerParamNames } {
  const order = o.order ?? 2;
  const K = o.outChannels;
  const C = o.inChannels;
  const k = o.kernel;
  if (![K, C, k].every((v) => Number.isInteger(v) && v > 0)) {
    throw new QcbError('QCB_USAGE', `quadratic conv '${o.name}': channels and kernel must be positive integers`, {
      key: o.name,
      value: { K, C, k },
    });
  }
  const sd = (o.gain ?? 1) / Math.sqrt(C * k * k);
  const rn = normalSampler(o.seed);
  const first = (o.init ?? 'random') === 'first-order';
  const wdims = [K, C, k, k];
  const nW = K * C * k * k;
  const rand = (zero: boolean) =>
    f32(zero ? new Float64Array(nW) : Float64Array.from({ length: nW }, () => rn() * sd), wdims);
  const conv: ConvOpts = {
    strides: o.strides,
    pads: o.pads ?? [Math.floor(k / 2), Math.floor(k / 2), Math.floor(k / 2), Math.floor(k / 2)],
  };
  const params: LayerParamNames = {};
  params.wr = b.param(`${o.name}.wr`, rand(false));
  params.br = b.param(`${o.name}.br`, f32(new Float64Array(K), [K]));
  const r = b.conv(x, params.wr, params.br, conv);
  if (order === 1) return { output: r, params };
  params.wg = b.param(`${o.name}.wg`, rand(first));
  params.bg = b.param(`${o.name}.bg`, f32(new Float64Array(K).fill(1), [K]));
  params.wb = b.param(`${o.name}.wb`, rand(first));
  params.c = b.param(`${o.name}.c`, f32(new Float64Array(K), [K]));
  const g = b.conv(x, params.wg, params.bg, conv);
  const q = b.conv(b.mul(x, x), params.wb, params.c, conv);
  return { output: b.add(b.mul(r, g), q), params };
}

/** Applies an activation by name. */
export function activate(b: GraphBuilder, x: string, a: Activation): string {
  return a === 'sigmoid' ? b.sigmoid(x) : a === 'tanh' ? b.tanh(x) : b.relu(x);
}

/** Parameter name of layer l's key k in {@link mlpGraph}. */
export function mlpParamName(l: number, k: ParamKey): string {
  return `fc${l}.${k}`;
}

export interface MlpGraphOptions {
  /** Loss (default `sse`, Eq. 2). */
  loss?: LossKind;
}

/**
 * The training graph of a fully connected network of either order (Eq. 3 in every layer, activation after each).
 * Inputs: `x` N×in, `y` N×out targets, `w` N×1 per-sample loss weights (1 = use, 0 = skip: the curriculum).
 * Outputs: `pred` N×out (after the last activation) and `loss` (scalar): Σ_i w_i·½‖pred_i − y_i‖² (Eq. 2) or the
 * weighted binary cross-entropy, computed from the last pre-activation z as softplus(z) − y·z (stable for large |z|).
 */
export function mlpGraph(net: NetParams, o: MlpGraphOptions = {}): Graph {
  const b = new Builder(`mlp-${net.order === 2 ? 'quadratic' : 'linear'}-${net.sizes.join('-')}`);
  const inW = net.sizes[0];
  const outW = net.sizes[net.sizes.length - 1];
  const x = b.input('x', 'float32', ['N', inW]);
  const y = b.input('y', 'float32', ['N', outW]);
  const w = b.input('w', 'float32', ['N', 1]);
  let h = x;
  let z = x;
  net.layers.forEach((L, l) => {
    z = denseFromParams(b, h, L, `fc${l}`).output;
    h = activate(b, z, net.activation);
  });
  b.output(h, 'pred');
  let per: string;
  if ((o.loss ?? 'sse') === 'sse') {
    const d = b.sub('pred', y);
    per = b.mul(b.mul(d, d), b.scalar(0.5));
  } else {
    if (net.activation !== 'sigmoid')
      throw new QcbError('QCB_USAGE', 'the bce loss needs sigmoid outputs', {
        key: 'loss',
        allowed: 'sse',
        fix: 'use the sse loss',
      });
    per = b.sub(b.op1('Softplus', [z]), b.mul(y, z));
  }
  const loss = b.reduceSum(b.mul(per, w), undefined, false);
  b.output(loss, 'loss');
  return b.build();
}

/** Reads trained parameters (engine tensors named as in {@link mlpGraph}) back into float64 {@link NetParams}. */
export function netFromTensors(template: NetParams, tensors: Map<string, Tensor>): NetParams {
  return {
    sizes: [...template.sizes],
    order: template.order,
    activation: template.activation,
    layers: template.layers.map((L, l) => {
      const out: LayerParams = {
        ...L,
        wr: L.wr.slice(),
        br: L.br.slice(),
        wg: L.wg.slice(),
        bg: L.bg.slice(),
        wb: L.wb.slice(),
        c: L.c.slice(),
      };
      for (const k of keysOf(L.order)) {
        const t = tensors.get(mlpParamName(l, k));
        if (!t) throw new QcbError('QCB_INTERNAL', `trained parameter '${mlpParamName(l, k)}' missing`);
        out[k] = Float64Array.from(t.data as Float32Array);
      }
      return out;
    }),
  };
}
