/**
 * Fully connected second-order (quadratic) networks in plain TypeScript, float64: parameters, initialisation, the
 * forward pass of Eq. 3 and the backpropagation of Fan, Cong & Wang 2017 §II (Eqs. 5–11) re-derived (the printed
 * equations have typos; docs/second-order.md lists them), plus central finite differences.
 *
 * This is the reference the engine's autodiff is checked against, and a fast trainer for tiny networks (two spirals,
 * rings) where one onnxruntime call per step costs more than the arithmetic.
 *
 * Neuron j of layer l with inputs o (p values, the previous layer's outputs):
 *   r_j = Σ_k wr_jk o_k + br_j,  g_j = Σ_k wg_jk o_k + bg_j,  q_j = Σ_k wb_jk o_k²
 *   net_j = r_j·g_j + q_j + c_j,  o_j = σ(net_j)                                          (Eq. 3)
 * A first-order layer has only wr, br: net_j = r_j.
 */

import { mulberry32 } from '../util/random.js';
import { QcbError } from '../errors.js';

/** 1 = ordinary (inner-product) neurons, 2 = quadratic neurons (Eq. 1). */
export type Order = 1 | 2;

/** Activation after every layer (the paper: sigmoid everywhere, Eq. 3–4). */
export type Activation = 'sigmoid' | 'tanh' | 'relu';

/**
 * Parameters of one layer, row-major `out×in` weight matrices. For order 1 only `wr`, `br` are used (and `wg`, `bg`,
 * `wb`, `c` are empty arrays).
 */
export interface LayerParams {
  order: Order;
  in: number;
  out: number;
  /** out×in */
  wr: Float64Array;
  /** out */
  br: Float64Array;
  /** out×in */
  wg: Float64Array;
  /** out */
  bg: Float64Array;
  /** out×in, weights of the squared inputs */
  wb: Float64Array;
  /** out */
  c: Float64Array;
}

/** A fully connected network `sizes[0]-sizes[1]-…-sizes[L]` of one order, with one activation after every layer. */
export interface NetParams {
  sizes: number[];
  order: Order;
  activation: Activation;
  layers: LayerParams[];
}

/** Names of a layer's parameter tensors, in a fixed order (order 1 uses the first two). */
export const PARAM_KEYS = ['wr', 'br', 'wg', 'bg', 'wb', 'c'] as const;
export type ParamKey = (typeof PARAM_KEYS)[number];

/** Parameter keys a layer of this order has. */
export function keysOf(order: Order): readonly ParamKey[] {
  return order === 2 ? PARAM_KEYS : PARAM_KEYS.slice(0, 2);
}

/**
 * Initialisation:
 * - `random`: the paper's "randomly selected initial parameters"; the distributions are given at {@link initNet}.
 * - `first-order`: wr ~ N(0, gain²/in), br = 0, wg = 0, bg = 1, wb = 0, c = 0 — the layer starts as an ordinary
 *   inner-product layer (the first-order twin) and the quadratic terms grow only where the gradient asks for them.
 */
export type InitMode = 'random' | 'first-order';

export interface InitOptions {
  seed: number;
  init?: InitMode;
  /** Weight scale multiplier (default 1). */
  gain?: number;
  activation?: Activation;
}

/** A normal sampler on mulberry32 (Box–Muller). */
export function normalSampler(seed: number): () => number {
  const rnd = mulberry32(seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u = Math.max(rnd(), 1e-300);
    const v = rnd();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/**
 * Random parameters for a network of `sizes` (e.g. [2, 20, 20, 1]).
 * `random`: wr, wg, wb ~ N(0, gain²/in); br ~ N(0, gain²/4); bg ~ 1 + N(0, gain²/4); c = 0. bg centred on 1 keeps
 * the factor g near 1 so that r·g starts close to an inner product with a random quadratic perturbation (with
 * both biases near 0 the product r·g starts as a pure quadratic form with no linear part, which trains poorly).
 */
export function initNet(sizes: number[], order: Order, opts: InitOptions): NetParams {
  if (sizes.length < 2 || sizes.some((s) => !Number.isInteger(s) || s < 1)) {
    throw new QcbError('QCB_USAGE', `network sizes must be two or more positive integers, got [${sizes}]`, {
      key: 'sizes',
      value: sizes,
      allowed: 'e.g. [2, 20, 20, 1]',
      fix: 'give the input width, hidden widths and output width',
    });
  }
  const gain = opts.gain ?? 1;
  const mode = opts.init ?? 'random';
  const rn = normalSampler(opts.seed);
  const layers: LayerParams[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const nin = sizes[l];
    const nout = sizes[l + 1];
    const sd = gain / Math.sqrt(nin);
    const fill = (n: number, f: () => number) => Float64Array.from({ length: n }, f);
    const wr = fill(nout * nin, () => rn() * sd);
    let br = fill(nout, () => (mode === 'random' ? (rn() * gain) / 2 : 0));
    if (order === 1) {
      layers.push({
        order,
        in: nin,
        out: nout,
        wr,
        br,
        wg: new Float64Array(0),
        bg: new Float64Array(0),
        wb: new Float64Array(0),
        c: new Float64Array(0),
      });
      continue;
    }
    const first = mode === 'first-order';
    const wg = fill(nout * nin, () => (first ? 0 : rn() * sd));
    const bg = fill(nout, () => (first ? 1 : 1 + (rn() * gain) / 2));
    const wb = fill(nout * nin, () => (first ? 0 : rn() * sd));
    const c = new Float64Array(nout);
    if (first) br = new Float64Array(nout);
    layers.push({ order, in: nin, out: nout, wr, br, wg, bg, wb, c });
  }
  return { sizes: [...sizes], order, activation: opts.activation ?? 'sigmoid', layers };
}

/** Deep copy. */
export function cloneNet(net: NetParams): NetParams {
  return {
    sizes: [...net.sizes],
    order: net.order,
    activation: net.activation,
    layers: net.layers.map((l) => ({
      ...l,
      wr: l.wr.slice(),
      br: l.br.slice(),
      wg: l.wg.slice(),
      bg: l.bg.slice(),
      wb: l.wb.slice(),
      c: l.c.slice(),
    })),
  };
}

/** Number of trainable parameters. */
export function paramCount(net: NetParams): number {
  let n = 0;
  for (const l of net.layers) for (const k of keysOf(l.order)) n += l[k].length;
  return n;
}

function act(a: Activation, z: number): number {
  if (a === 'sigmoid') return 1 / (1 + Math.exp(-z));
  if (a === 'tanh') return Math.tanh(z);
  return z > 0 ? z : 0;
}

/** dσ/dz written through the output o = σ(z) (Eq. 4/10: σ' = o(1 − o)) and, for relu, through z. */
function actDeriv(a: Activation, o: number, z: number): number {
  if (a === 'sigmoid') return o * (1 - o);
  if (a === 'tanh') return 1 - o * o;
  return z > 0 ? 1 : 0;
}

/** Everything the backward pass needs from the forward pass of one batch. */
export interface ForwardTrace {
  n: number;
  /** outs[0] = input (N×sizes[0]), outs[l+1] = output of layer l (N×sizes[l+1]). */
  outs: Float64Array[];
  /** Per layer: r, g (order 2) and net, each N×out. */
  r: Float64Array[];
  g: Float64Array[];
  net: Float64Array[];
}

/**
 * Forward pass of Eq. 3 over a batch.
 * @param x N×sizes[0], row-major
 */
export function forward(net: NetParams, x: ArrayLike<number>, n: number): ForwardTrace {
  const outs: Float64Array[] = [Float64Array.from(x as ArrayLike<number>)];
  if (outs[0].length !== n * net.sizes[0]) {
    throw new QcbError(
      'QCB_USAGE',
      `input has ${outs[0].length} values, expected N×${net.sizes[0]} = ${n * net.sizes[0]}`,
      { key: 'x' },
    );
  }
  const rs: Float64Array[] = [];
  const gs: Float64Array[] = [];
  const nets: Float64Array[] = [];
  for (const L of net.layers) {
    const o = outs[outs.length - 1];
    const r = new Float64Array(n * L.out);
    const g = new Float64Array(L.order === 2 ? n * L.out : 0);
    const z = new Float64Array(n * L.out);
    const y = new Float64Array(n * L.out);
    for (let s = 0; s < n; s++) {
      const ob = s * L.in;
      for (let j = 0; j < L.out; j++) {
        const wb0 = j * L.in;
        let rj = L.br[j];
        if (L.order === 1) {
          for (let k = 0; k < L.in; k++) rj += L.wr[wb0 + k] * o[ob + k];
          r[s * L.out + j] = rj;
          z[s * L.out + j] = rj;
        } else {
          let gj = L.bg[j];
          let qj = 0;
          for (let k = 0; k < L.in; k++) {
            const ok = o[ob + k];
            rj += L.wr[wb0 + k] * ok;
            gj += L.wg[wb0 + k] * ok;
            qj += L.wb[wb0 + k] * ok * ok;
          }
          r[s * L.out + j] = rj;
          g[s * L.out + j] = gj;
          z[s * L.out + j] = rj * gj + qj + L.c[j];
        }
        y[s * L.out + j] = act(net.activation, z[s * L.out + j]);
      }
    }
    rs.push(r);
    gs.push(g);
    nets.push(z);
    outs.push(y);
  }
  return { n, outs, r: rs, g: gs, net: nets };
}

/** Network outputs N×sizes[L]. */
export function predict(net: NetParams, x: ArrayLike<number>, n: number): Float64Array {
  const t = forward(net, x, n);
  return t.outs[t.outs.length - 1];
}

/** Gradients with the same layout as the parameters. */
export type NetGrads = Record<ParamKey, Float64Array>[];

/**
 * Losses, summed over samples (Eq. 5) and outputs:
 * - `sse`: Eq. 2, E = ½ Σ (y' − y)², the paper's;
 * - `bce`: binary cross-entropy −Σ [y ln y' + (1 − y) ln(1 − y')] of sigmoid outputs, whose ∂E/∂net = y' − y does
 *   not vanish when an output saturates on the wrong side (an option, not the paper's).
 */
export type LossKind = 'sse' | 'bce';

/** Eq. 2: E = ½ Σ_i Σ_j (y'_ij − y_ij)², summed over samples (Eq. 5) and outputs. */
export function sseLoss(pred: ArrayLike<number>, y: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < pred.length; i++) e += 0.5 * (pred[i] - y[i]) ** 2;
  return e;
}

/** Binary cross-entropy summed over all outputs (predictions clamped to [1e-12, 1 − 1e-12]). */
export function bceLoss(pred: ArrayLike<number>, y: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = Math.min(1 - 1e-12, Math.max(1e-12, pred[i]));
    e -= y[i] * Math.log(p) + (1 - y[i]) * Math.log(1 - p);
  }
  return e;
}

/** The loss of `kind`. */
export function lossOf(kind: LossKind, pred: ArrayLike<number>, y: ArrayLike<number>): number {
  return kind === 'sse' ? sseLoss(pred, y) : bceLoss(pred, y);
}

/** Σ_i w_i·loss(sample i) (all weights 1 when `weights` is undefined). */
export function weightedLoss(
  outW: number,
  kind: LossKind,
  pred: Float64Array,
  y: ArrayLike<number>,
  n: number,
  weights?: ArrayLike<number>,
): number {
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const w = weights ? weights[i] : 1;
    if (w === 0) continue;
    for (let j = i * outW; j < (i + 1) * outW; j++) {
      if (kind === 'sse') loss += w * 0.5 * (pred[j] - y[j]) ** 2;
      else {
        const p = Math.min(1 - 1e-12, Math.max(1e-12, pred[j]));
        loss -= w * (y[j] * Math.log(p) + (1 - y[j]) * Math.log(1 - p));
      }
    }
  }
  return loss;
}

/**
 * Loss (Eq. 2) and its gradient by the corrected Eqs. 5–11 (see docs/second-order.md):
 *   δ_j = ∂E/∂net_j = ∂E/∂o_j · o_j(1 − o_j)                                                (Eqs. 6, 10)
 *   ∂E/∂o_j = o_j − y_j at the output (Eq. 7); below it, Σ_v δ_v ∂net_v/∂o_j with           (Eq. 8)
 *   ∂net_v/∂o_j = wr_vj·g_v + wg_vj·r_v + 2·wb_vj·o_j                                        (Eq. 9, corrected)
 *   ∂net_j/∂wr_jk = o_k·g_j, ∂net_j/∂wg_jk = o_k·r_j, ∂net_j/∂wb_jk = o_k²,
 *   ∂net_j/∂br_j = g_j, ∂net_j/∂bg_j = r_j, ∂net_j/∂c_j = 1                                  (Eq. 11, corrected)
 * where o_k are the outputs of the previous layer. Summed over the batch (Eq. 5).
 * @param x N×sizes[0]; @param y N×sizes[L] targets
 */
export function lossAndGrads(
  net: NetParams,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  n: number,
  lossKind: LossKind = 'sse',
  /** Per-sample loss weights (N; default all 1): a 0 leaves the sample out (the curriculum). */
  weights?: ArrayLike<number>,
): { loss: number; grads: NetGrads; pred: Float64Array } {
  const t = forward(net, x, n);
  const L = net.layers.length;
  const pred = t.outs[L];
  if (y.length !== pred.length) {
    throw new QcbError('QCB_USAGE', `targets have ${y.length} values, expected N×${net.sizes[L]} = ${pred.length}`, {
      key: 'y',
    });
  }
  if (lossKind === 'bce' && net.activation !== 'sigmoid') {
    throw new QcbError('QCB_USAGE', `the bce loss needs sigmoid outputs, the network uses ${net.activation}`, {
      key: 'loss',
      value: lossKind,
      allowed: 'sse',
      fix: 'use the sse loss (Eq. 2)',
    });
  }
  const outW = net.sizes[L];
  const loss = weightedLoss(outW, lossKind, pred, y, n, weights);
  const grads: NetGrads = net.layers.map((l) => ({
    wr: new Float64Array(l.wr.length),
    br: new Float64Array(l.br.length),
    wg: new Float64Array(l.wg.length),
    bg: new Float64Array(l.bg.length),
    wb: new Float64Array(l.wb.length),
    c: new Float64Array(l.c.length),
  }));
  // dO: ∂E/∂o for the current layer's outputs, N×out (Eq. 7 at the top)
  let dO = new Float64Array(pred.length);
  for (let i = 0; i < pred.length; i++) dO[i] = (pred[i] - y[i]) * (weights ? weights[Math.floor(i / outW)] : 1);
  for (let l = L - 1; l >= 0; l--) {
    const bceTop = lossKind === 'bce' && l === L - 1; // ∂E/∂net = y' − y directly
    const P = net.layers[l];
    const G = grads[l];
    const o = t.outs[l];
    const out = t.outs[l + 1];
    const r = t.r[l];
    const g = t.g[l];
    const z = t.net[l];
    const dIn = new Float64Array(n * P.in);
    for (let s = 0; s < n; s++) {
      for (let j = 0; j < P.out; j++) {
        const sj = s * P.out + j;
        const delta = bceTop ? dO[sj] : dO[sj] * actDeriv(net.activation, out[sj], z[sj]);
        if (delta === 0) continue;
        const w0 = j * P.in;
        const ob = s * P.in;
        if (P.order === 1) {
          G.br[j] += delta;
          for (let k = 0; k < P.in; k++) {
            G.wr[w0 + k] += delta * o[ob + k];
            dIn[ob + k] += delta * P.wr[w0 + k];
          }
        } else {
          const rj = r[sj];
          const gj = g[sj];
          G.br[j] += delta * gj;
          G.bg[j] += delta * rj;
          G.c[j] += delta;
          for (let k = 0; k < P.in; k++) {
            const ok = o[ob + k];
            G.wr[w0 + k] += delta * gj * ok;
            G.wg[w0 + k] += delta * rj * ok;
            G.wb[w0 + k] += delta * ok * ok;
            dIn[ob + k] += delta * (P.wr[w0 + k] * gj + P.wg[w0 + k] * rj + 2 * P.wb[w0 + k] * ok);
          }
        }
      }
    }
    dO = dIn;
  }
  return { loss, grads, pred };
}

/**
 * Central finite differences of the loss (Eq. 2) for every parameter: (E(θ+h) − E(θ−h)) / 2h, float64.
 * O(parameters × forward): for small networks only.
 */
export function finiteDifferenceGrads(
  net: NetParams,
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  n: number,
  h = 1e-6,
  lossKind: LossKind = 'sse',
  weights?: ArrayLike<number>,
): NetGrads {
  const work = cloneNet(net);
  const E = () => weightedLoss(net.sizes[net.sizes.length - 1], lossKind, predict(work, x, n), y, n, weights);
  return work.layers.map((l) => {
    const out = {} as Record<ParamKey, Float64Array>;
    for (const k of PARAM_KEYS) {
      const arr = l[k];
      const d = new Float64Array(arr.length);
      for (let i = 0; i < arr.length; i++) {
        const v = arr[i];
        arr[i] = v + h;
        const ep = E();
        arr[i] = v - h;
        const em = E();
        arr[i] = v;
        d[i] = (ep - em) / (2 * h);
      }
      out[k] = d;
    }
    return out;
  });
}

/** Largest |a − b| / max(|b|, floor) over all parameters: how two gradient computations agree. */
export function maxRelDiff(a: NetGrads, b: NetGrads, floor = 1e-3): number {
  let m = 0;
  a.forEach((la, i) => {
    for (const k of PARAM_KEYS) {
      const x = la[k];
      const y = b[i][k];
      for (let j = 0; j < x.length; j++) m = Math.max(m, Math.abs(x[j] - y[j]) / Math.max(Math.abs(y[j]), floor));
    }
  });
  return m;
}

/** Options of plain (momentum) gradient descent, Eq. 12: α ← α − η ∂E/∂α (+ μ·velocity when momentum > 0). */
export interface GdOptions {
  lr: number;
  momentum?: number;
}

/** State of gradient descent with momentum: one velocity per parameter. */
export class GradientDescent {
  private vel: NetGrads | undefined;
  constructor(private readonly o: GdOptions) {}
  /** Applies one update in place. */
  step(net: NetParams, grads: NetGrads, lr = this.o.lr): void {
    const mu = this.o.momentum ?? 0;
    if (mu !== 0 && !this.vel)
      this.vel = grads.map(
        (g) =>
          Object.fromEntries(PARAM_KEYS.map((k) => [k, new Float64Array(g[k].length)])) as Record<
            ParamKey,
            Float64Array
          >,
      );
    net.layers.forEach((l, i) => {
      for (const k of keysOf(l.order)) {
        const p = l[k];
        const g = grads[i][k];
        if (mu !== 0) {
          const v = (this.vel as NetGrads)[i][k];
          for (let j = 0; j < p.length; j++) {
            v[j] = mu * v[j] + g[j];
            p[j] -= lr * v[j];
          }
        } else for (let j = 0; j < p.length; j++) p[j] -= lr * g[j];
      }
    });
  }
}
