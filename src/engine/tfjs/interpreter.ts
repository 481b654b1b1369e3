/**
 * A reference interpreter of the engine's IR on TF.js (CPU backend, float32; int64 held as int32): it runs forward
 * graphs and the backward graphs autodiff emits, and — through TF.js's own autodiff over the interpreted forward
 * graph — gives independent gradients to check our rules against (issue 3, item 7).
 *
 * Forward ops are written with differentiable TF.js ops in NCHW (converted to NHWC around TF's conv/pool kernels;
 * dilations become zero-inserted kernels because TF.js has no conv gradient for dilation > 1). Ops that only the
 * backward graph uses (ScatterElements, ScatterND, MaxPool indices) are evaluated in plain JS.
 */
import * as tf from '@tensorflow/tfjs';
import { QcbError } from '../../errors.js';
import { resolvePads } from '../grad/conv.js';
import { normAxis } from '../grad/util.js';
import { floatAttr, intAttr, intsAttr, stringAttr } from '../ir/attrs.js';
import { dtypeFromCode } from '../onnx/dtypes.js';
import { mulberry32 } from '../../util/random.js';
import type { DType, Graph, Node, Tensor } from '../ir/graph.js';
import { sliceIndices } from '../ir/shapes.js';

let backendReady = false;
let preferredBackend = 'cpu';
/** Selects the backend once: the pure-JS CPU backend unless initTfjsEngine found tfjs-node (TF.js would otherwise probe WebGL). */
function ensureBackend(): void {
  if (backendReady) return;
  if (tf.getBackend() !== preferredBackend) void tf.setBackend(preferredBackend);
  // the CPU backend prints a "use tfjs-node" banner on first use; this is a reference engine, so skip it
  const be = tf.backend() as unknown as { firstUse?: boolean };
  if (be && 'firstUse' in be) be.firstUse = false;
  backendReady = true;
}

/**
 * Optional native engine: loads `@tensorflow/tfjs-node-gpu` or `@tensorflow/tfjs-node` when the user installed one
 * (they cannot be installed offline, so they are not dependencies) and makes the interpreter run on it.
 * @returns the backend in use: 'tensorflow' (native) or 'cpu' (pure JS)
 */
export async function initTfjsEngine(): Promise<string> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      const spec: string = pkg; // not a literal: the packages are optional and absent at type-check time
      await import(spec);
      if (tf.findBackend('tensorflow')) {
        preferredBackend = 'tensorflow';
        await tf.setBackend('tensorflow');
        backendReady = true;
        return 'tensorflow';
      }
    } catch {
      // not installed or failed to load its native library: try the next, then use the CPU backend
    }
  }
  preferredBackend = 'cpu';
  backendReady = false;
  ensureBackend();
  return tf.getBackend();
}

type T = tf.Tensor;
type OpImpl = (node: Node, ins: (T | undefined)[]) => T[];

// ---------------------------------------------------------------------------------------------------------------
// conversions

/** IR tensor → TF.js tensor (float types → float32, integer types → int32, bool → bool). */
export function toTf(t: Tensor): T {
  const shape = [...t.dims];
  switch (t.dtype) {
    case 'float32':
    case 'float64':
      return tf.tensor(Float32Array.from(t.data as Float32Array), shape, 'float32');
    case 'bool':
      return tf.tensor(Uint8Array.from(t.data as Uint8Array), shape, 'bool');
    case 'int64':
      return tf.tensor(
        Int32Array.from(t.data as BigInt64Array, (v) => Number(v)),
        shape,
        'int32',
      );
    case 'int32':
    case 'int8':
    case 'uint8':
      return tf.tensor(Int32Array.from(t.data as Int32Array), shape, 'int32');
    default:
      throw new QcbError('QCB_FEED', `the TF.js interpreter does not handle ${t.dtype} tensors`, {
        value: t.dtype,
        fix: 'cast to float32',
      });
  }
}

/** TF.js tensor → IR tensor of `dtype` (default: float32 / int64 / bool by the TF dtype). Reads data synchronously. */
export function fromTf(t: T, dtype?: DType): Tensor {
  const dims = [...t.shape];
  const d = t.dataSync();
  const want: DType = dtype ?? (t.dtype === 'bool' ? 'bool' : t.dtype === 'int32' ? 'int64' : 'float32');
  switch (want) {
    case 'float64':
      return { dtype: want, dims, data: Float64Array.from(d as Float32Array) };
    case 'int64':
      return { dtype: want, dims, data: BigInt64Array.from(d as Int32Array, (v) => BigInt(Math.round(v))) };
    case 'int32':
      return { dtype: want, dims, data: Int32Array.from(d as Int32Array) };
    case 'bool':
    case 'uint8':
      return { dtype: want, dims, data: Uint8Array.from(d as Uint8Array) };
    case 'int8':
      return { dtype: want, dims, data: Int8Array.from(d as unknown as ArrayLike<number>) };
    default:
      return { dtype: 'float32', dims, data: Float32Array.from(d as Float32Array) };
  }
}

const tfDtype = (code: number): tf.DataType => {
  const d = dtypeFromCode(code);
  return d === 'bool' ? 'bool' : d === 'float32' || d === 'float64' || d === 'float16' ? 'float32' : 'int32';
};

const nums = (t: T | undefined): number[] => (t ? Array.from(t.dataSync() as ArrayLike<number>) : []);

function need(node: Node, ins: (T | undefined)[], i: number): T {
  const t = ins[i];
  if (!t)
    throw new QcbError('QCB_ONNX_GRAPH', `${node.opType} node '${node.name}' lacks input ${i}`, { key: node.name });
  return t;
}

function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    out.push(x === 1 ? y : x);
  }
  return out;
}

function bcast(t: T, shape: number[]): T {
  return t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]) ? t : tf.broadcastTo(t, shape);
}

// ---------------------------------------------------------------------------------------------------------------
// spatial helpers (NHWC inside)

/** Inserts `factor − 1` zeros between elements along `axis` (differentiable): length n → (n−1)·factor + 1. */
function dilate(t: T, axis: number, factor: number): T {
  if (factor === 1) return t;
  const shape = t.shape;
  const n = shape[axis];
  const expanded = tf.expandDims(t, axis + 1);
  const pads: [number, number][] = expanded.shape.map(() => [0, 0]);
  pads[axis + 1] = [0, factor - 1];
  const padded = tf.pad(expanded, pads);
  const merged = tf.reshape(padded, [...shape.slice(0, axis), n * factor, ...shape.slice(axis + 1)]);
  const begin = shape.map(() => 0);
  const size = [...shape];
  size[axis] = (n - 1) * factor + 1;
  return tf.slice(merged, begin, size);
}

/** Pads (positive) or crops (negative) spatial axes 1..s of an NHWC tensor. */
function padCrop(t: T, begin: number[], end: number[], value = 0): T {
  const s = begin.length;
  const pads: [number, number][] = t.shape.map(() => [0, 0]);
  let needPad = false;
  for (let i = 0; i < s; i++) {
    pads[i + 1] = [Math.max(0, begin[i]), Math.max(0, end[i])];
    if (begin[i] > 0 || end[i] > 0) needPad = true;
  }
  let out = needPad ? tf.pad(t, pads, value) : t;
  if (begin.some((b) => b < 0) || end.some((e) => e < 0)) {
    const b0 = out.shape.map(() => 0);
    const size = [...out.shape];
    for (let i = 0; i < s; i++) {
      b0[i + 1] = Math.max(0, -begin[i]);
      size[i + 1] = out.shape[i + 1] - b0[i + 1] - Math.max(0, -end[i]);
    }
    out = tf.slice(out, b0, size);
  }
  return out;
}

/** Keeps every stride-th element along spatial axes 1..s (NHWC), starting at 0. */
function subsample(t: T, strides: number[]): T {
  if (strides.every((s) => s === 1)) return t;
  const begin = t.shape.map(() => 0);
  const end = [...t.shape];
  const st = t.shape.map(() => 1);
  strides.forEach((s, i) => {
    st[i + 1] = s;
  });
  return tf.stridedSlice(t, begin, end, st);
}

/** 2-D view helpers: 1-D spatial ops run as 2-D with H = 1. */
function to4d(x: T): T {
  return x.rank === 3 ? tf.expandDims(x, 2) : x;
}

function nchwToNhwc(x: T): T {
  return tf.transpose(x, [0, 2, 3, 1]);
}
function nhwcToNchw(x: T): T {
  return tf.transpose(x, [0, 3, 1, 2]);
}

/**
 * Conv on an already padded NHWC input, stride/dilation/group handled: W is ONNX K×(C/g)×kh×kw.
 */
function convNhwc(xp: T, w: T, strides: number[], dilations: number[], group: number): T {
  // dilation as a zero-inserted kernel: TF.js has no conv gradient for dilation > 1
  let wd = w;
  wd = dilate(wd, 2, dilations[0]);
  wd = dilate(wd, 3, dilations[1]);
  const C = xp.shape[3];
  const K = w.shape[0];
  const st: [number, number] = [strides[0], strides[1]];
  if (group === 1) {
    const filt = tf.transpose(wd, [2, 3, 1, 0]) as tf.Tensor4D; // kh×kw×C×K
    return tf.conv2d(xp as tf.Tensor4D, filt, st, 'valid');
  }
  if (group === C) {
    const m = K / C;
    const filt = tf.reshape(tf.transpose(wd, [2, 3, 1, 0]), [
      wd.shape[2] as number,
      wd.shape[3] as number,
      C,
      m,
    ]) as tf.Tensor4D;
    return tf.depthwiseConv2d(xp as tf.Tensor4D, filt, st, 'valid');
  }
  const xs = tf.split(xp, group, 3);
  const ws = tf.split(wd, group, 0);
  const outs = xs.map((xg, i) =>
    tf.conv2d(xg as tf.Tensor4D, tf.transpose(ws[i], [2, 3, 1, 0]) as tf.Tensor4D, st, 'valid'),
  );
  return tf.concat(outs, 3);
}

function spatialParams(node: Node, x: T, kernel: number[]) {
  const s = x.rank - 2;
  const inSize = x.shape.slice(2);
  const strides = intsAttr(node, 'strides') ?? new Array(s).fill(1);
  const dilations = intsAttr(node, 'dilations') ?? new Array(s).fill(1);
  const { begin, end } = resolvePads(node, inSize, kernel, strides, dilations);
  // 1-D → 2-D with a unit H axis
  const up = (v: number[], d: number) => (s === 1 ? [d, ...v] : v);
  return {
    s,
    strides: up(strides, 1),
    dilations: up(dilations, 1),
    begin: up(begin, 0),
    end: up(end, 0),
    kernel: up(kernel, 1),
  };
}

function opConv(node: Node, ins: (T | undefined)[]): T[] {
  const x = need(node, ins, 0);
  const w = need(node, ins, 1);
  const kernel = intsAttr(node, 'kernel_shape') ?? w.shape.slice(2);
  const p = spatialParams(node, x, kernel);
  const group = intAttr(node, 'group', 1);
  const xn = padCrop(nchwToNhwc(to4d(x)), p.begin, p.end);
  let y = nhwcToNchw(convNhwc(xn, to4d(w), p.strides, p.dilations, group));
  if (ins[2]) y = tf.add(y, tf.reshape(ins[2], [1, -1, 1, 1]));
  return [p.s === 1 ? tf.squeeze(y, [2]) : y];
}

function opConvTranspose(node: Node, ins: (T | undefined)[]): T[] {
  const x = to4d(need(node, ins, 0));
  const w4 = to4d(need(node, ins, 1)); // Cin×(Cout/g)×kh×kw
  const s1 = need(node, ins, 0).rank === 3;
  const group = intAttr(node, 'group', 1);
  const up = (v: number[] | undefined, d: number, n: number) => (v ? (s1 ? [d, ...v] : v) : new Array(n).fill(d));
  const kernel = s1
    ? [1, ...(intsAttr(node, 'kernel_shape') ?? w4.shape.slice(3))]
    : (intsAttr(node, 'kernel_shape') ?? w4.shape.slice(2));
  const strides = up(intsAttr(node, 'strides'), 1, 2);
  const dilations = up(intsAttr(node, 'dilations'), 1, 2);
  const outPad = up(intsAttr(node, 'output_padding'), 0, 2);
  const H = x.shape.slice(2);
  let pb: number[];
  let pe: number[];
  const pads = intsAttr(node, 'pads');
  const outShape = intsAttr(node, 'output_shape');
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  if (outShape || autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const target = outShape ? (s1 ? [1, ...outShape.slice(-1)] : outShape.slice(-2)) : H.map((h, i) => h * strides[i]);
    pb = [];
    pe = [];
    for (let i = 0; i < 2; i++) {
      const total = strides[i] * (H[i] - 1) + outPad[i] + (kernel[i] - 1) * dilations[i] + 1 - target[i];
      const small = Math.floor(total / 2);
      pb.push(autoPad === 'SAME_LOWER' ? total - small : small);
      pe.push(autoPad === 'SAME_LOWER' ? small : total - small);
    }
  } else {
    const pp = pads ?? [0, 0, 0, 0];
    pb = s1 ? [0, pp[0]] : pp.slice(0, 2);
    pe = s1 ? [0, pp[1]] : pp.slice(2, 4);
  }
  const [Cin, Cog, kh, kw] = w4.shape as number[];
  const Cig = Cin / group;
  // equivalent conv weight: (g·Cog)×Cig×kh×kw, spatially flipped
  let wc = tf.reshape(w4, [group, Cig, Cog, kh, kw]);
  wc = tf.transpose(wc, [0, 2, 1, 3, 4]);
  wc = tf.reshape(wc, [group * Cog, Cig, kh, kw]);
  wc = tf.reverse(wc, [2, 3]);
  let xn = nchwToNhwc(x);
  xn = dilate(xn, 1, strides[0]);
  xn = dilate(xn, 2, strides[1]);
  const keff = kernel.map((k, i) => (k - 1) * dilations[i]);
  xn = padCrop(xn, [keff[0] - pb[0], keff[1] - pb[1]], [keff[0] - pe[0] + outPad[0], keff[1] - pe[1] + outPad[1]]);
  let y = nhwcToNchw(convNhwc(xn, wc, [1, 1], dilations, group));
  if (ins[2]) y = tf.add(y, tf.reshape(ins[2], [1, -1, 1, 1]));
  return [s1 ? tf.squeeze(y, [2]) : y];
}

/** Output size of a pooling window along one axis, onnxruntime's rule (ceil_mode drops a window starting in the end pad). */
function poolOutSize(n: number, k: number, s: number, d: number, pb: number, pe: number, ceil: boolean): number {
  const span = n + pb + pe - ((k - 1) * d + 1);
  if (!ceil) return Math.floor(span / s) + 1;
  let out = Math.ceil(span / s) + 1;
  if ((out - 1) * s >= n + pb) out--;
  return out;
}

function poolSetup(node: Node, x: T) {
  const kernel = intsAttr(node, 'kernel_shape') ?? [];
  const p = spatialParams(node, x, kernel);
  const ceil = intAttr(node, 'ceil_mode', 0) === 1;
  const x4 = to4d(x);
  const inSize = x4.shape.slice(2);
  const outSize = inSize.map((n, i) =>
    poolOutSize(n, p.kernel[i], p.strides[i], p.dilations[i], p.begin[i], p.end[i], ceil),
  );
  // extra end padding so that a 'valid' pool yields outSize windows
  const extra = inSize.map((n, i) =>
    Math.max(0, (outSize[i] - 1) * p.strides[i] + (p.kernel[i] - 1) * p.dilations[i] + 1 - (n + p.begin[i] + p.end[i])),
  );
  return { ...p, x4, inSize, outSize, extra };
}

function opMaxPool(node: Node, ins: (T | undefined)[]): T[] {
  const x = need(node, ins, 0);
  const q = poolSetup(node, x);
  const xn = padCrop(
    nchwToNhwc(q.x4),
    q.begin,
    q.end.map((e, i) => e + q.extra[i]),
    Number.NEGATIVE_INFINITY,
  );
  let y: T;
  const win: [number, number] = [q.kernel[0], q.kernel[1]];
  if (q.dilations.every((d) => d === 1)) y = tf.maxPool(xn as tf.Tensor4D, win, [q.strides[0], q.strides[1]], 'valid');
  else
    y = subsample(tf.pool(xn as tf.Tensor4D, win, 'max', 'valid', [q.dilations[0], q.dilations[1]], [1, 1]), q.strides);
  y = tf.slice(y, [0, 0, 0, 0], [y.shape[0] as number, q.outSize[0], q.outSize[1], y.shape[3] as number]);
  const out = nhwcToNchw(y);
  const res = [q.s === 1 ? tf.squeeze(out, [2]) : out];
  if (node.outputs.length > 1 && node.outputs[1])
    res.push(maxPoolIndices(x, q, intAttr(node, 'storage_order', 0) === 1));
  return res;
}

/** Arg-max positions as flat indices into the whole N×C×H×W tensor (row-major, or column-major per plane). */
function maxPoolIndices(x: T, q: ReturnType<typeof poolSetup>, colMajor: boolean): T {
  const [N, C, H, W] = q.x4.shape;
  const [Ho, Wo] = q.outSize;
  const data = q.x4.dataSync() as Float32Array;
  const out = new Int32Array(N * C * Ho * Wo);
  let o = 0;
  for (let nc = 0; nc < N * C; nc++) {
    const base = nc * H * W;
    for (let i = 0; i < Ho; i++) {
      for (let j = 0; j < Wo; j++) {
        let best = Number.NEGATIVE_INFINITY;
        let bi = -1;
        for (let a = 0; a < q.kernel[0]; a++) {
          const h = i * q.strides[0] - q.begin[0] + a * q.dilations[0];
          if (h < 0 || h >= H) continue;
          for (let b = 0; b < q.kernel[1]; b++) {
            const w = j * q.strides[1] - q.begin[1] + b * q.dilations[1];
            if (w < 0 || w >= W) continue;
            const v = data[base + h * W + w];
            if (v > best) {
              best = v;
              bi = colMajor ? base + w * H + h : base + h * W + w;
            }
          }
        }
        out[o++] = bi;
      }
    }
  }
  const t = tf.tensor(out, [N, C, Ho, Wo], 'int32');
  return x.rank === 3 ? tf.squeeze(t, [2]) : t;
}

function opAveragePool(node: Node, ins: (T | undefined)[]): T[] {
  const x = need(node, ins, 0);
  const q = poolSetup(node, x);
  const includePad = intAttr(node, 'count_include_pad', 0) === 1;
  const xn = padCrop(
    nchwToNhwc(q.x4),
    q.begin,
    q.end.map((e, i) => e + q.extra[i]),
    0,
  );
  const kk = q.kernel[0] * q.kernel[1];
  let y = tf.mul(tf.avgPool(xn as tf.Tensor4D, [q.kernel[0], q.kernel[1]], [q.strides[0], q.strides[1]], 'valid'), kk);
  y = tf.slice(y, [0, 0, 0, 0], [y.shape[0] as number, q.outSize[0], q.outSize[1], y.shape[3] as number]);
  const counts = new Float32Array(q.outSize[0] * q.outSize[1]);
  const axisCount = (a: number, o: number) => {
    const st = o * q.strides[a] - q.begin[a];
    const lo = includePad ? -q.begin[a] : 0;
    const hi = includePad ? q.inSize[a] + q.end[a] : q.inSize[a];
    return Math.max(0, Math.min(st + q.kernel[a], hi) - Math.max(st, lo));
  };
  for (let i = 0; i < q.outSize[0]; i++)
    for (let j = 0; j < q.outSize[1]; j++) counts[i * q.outSize[1] + j] = axisCount(0, i) * axisCount(1, j);
  y = tf.div(y, tf.tensor(counts, [1, q.outSize[0], q.outSize[1], 1]));
  const out = nhwcToNchw(y);
  return [q.s === 1 ? tf.squeeze(out, [2]) : out];
}

// ---------------------------------------------------------------------------------------------------------------
// other op helpers

function reduceAxesOf(node: Node, ins: (T | undefined)[], rank: number): number[] | null {
  let axes = intsAttr(node, 'axes');
  if (axes === undefined && ins[1]) axes = nums(ins[1]);
  if (!axes || axes.length === 0)
    return intAttr(node, 'noop_with_empty_axes', 0) === 1 ? null : Array.from({ length: rank }, (_, i) => i);
  return axes.map((a) => normAxis(a, rank));
}

function reduce(fn: (x: T, axes: number[], keep: boolean) => T): OpImpl {
  return (node, ins) => {
    const x = need(node, ins, 0);
    const axes = reduceAxesOf(node, ins, x.rank);
    if (axes === null) return [x];
    return [fn(x, axes, intAttr(node, 'keepdims', 1) === 1)];
  };
}

function alongAxis(x: T, axis: number, fn: (t: T) => T): T {
  const a = normAxis(axis, x.rank);
  if (a === x.rank - 1) return fn(x);
  const perm = x.shape.map((_, i) => i);
  perm[a] = x.rank - 1;
  perm[x.rank - 1] = a;
  return tf.transpose(fn(tf.transpose(x, perm)), perm);
}

function reshapeOnnx(x: T, target: number[], allowZero: boolean): T {
  const shape = target.map((d, i) => (d === 0 && !allowZero ? x.shape[i] : d));
  return tf.reshape(x, shape);
}

function scatterJs(data: T, indices: T, updates: T, mode: string, positions: (i: number) => number): T {
  const out = Float32Array.from(data.dataSync() as Float32Array);
  const u = updates.dataSync() as Float32Array;
  for (let i = 0; i < u.length; i++) {
    const p = positions(i);
    if (mode === 'add') out[p] += u[i];
    else if (mode === 'mul') out[p] *= u[i];
    else if (mode === 'max') out[p] = Math.max(out[p], u[i]);
    else if (mode === 'min') out[p] = Math.min(out[p], u[i]);
    else out[p] = u[i];
  }
  void indices;
  return tf.tensor(out, data.shape, data.dtype);
}

const strides = (shape: number[]) => {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
};

function constantOf(node: Node): T {
  const a = node.attrs;
  if (a.value?.type === 'tensor') return toTf(a.value.value);
  if (a.value_float) return tf.scalar(a.value_float.value as number);
  if (a.value_floats?.type === 'floats') return tf.tensor1d(a.value_floats.value);
  if (a.value_int) return tf.scalar(a.value_int.value as number, 'int32');
  if (a.value_ints?.type === 'ints') return tf.tensor1d(a.value_ints.value, 'int32');
  throw new QcbError('QCB_ONNX_UNSUPPORTED_OP', `Constant node '${node.name}' has no supported value attribute`, {
    key: node.name,
  });
}

/** A copy outside TF.js's gradient tape: for piecewise-constant uses (comparisons, masks) that have no TF gradient. */
function detach(t: T): T {
  return tf.tensor(t.dataSync() as Float32Array, t.shape, t.dtype);
}
/** Comparison/logical op: no gradient flows, so its inputs are detached from the tape. */
const compare =
  (fn: (a: T, b: T) => T): OpImpl =>
  (node, ins) => [fn(detach(need(node, ins, 0)), detach(need(node, ins, 1)))];

const unary =
  (fn: (x: T) => T): OpImpl =>
  (node, ins) => [fn(need(node, ins, 0))];
const binary =
  (fn: (a: T, b: T) => T): OpImpl =>
  (node, ins) => [fn(need(node, ins, 0), need(node, ins, 1))];
const variadic =
  (fn: (a: T, b: T) => T): OpImpl =>
  (_node, ins) => [(ins.filter(Boolean) as T[]).reduce((a, b) => fn(a, b))];

function hardSigmoid(x: T, alpha: number, beta: number): T {
  return tf.clipByValue(tf.add(tf.mul(x, alpha), beta), 0, 1);
}

function layerNormStats(x: T, axes: number[], eps: number) {
  const mean = tf.mean(x, axes, true);
  const xc = tf.sub(x, mean);
  const v = tf.mean(tf.mul(xc, xc), axes, true);
  const inv = tf.rsqrt(tf.add(v, eps));
  return { mean, xc, v, inv };
}

// ---------------------------------------------------------------------------------------------------------------
// the op table

const OPS = {
  Identity: unary((x) => x),
  Add: binary((a, b) => tf.add(a, b)),
  Sub: binary((a, b) => tf.sub(a, b)),
  Mul: binary((a, b) => tf.mul(a, b)),
  Div: binary((a, b) => (a.dtype === 'int32' ? tf.floorDiv(a, b) : tf.div(a, b))),
  Pow: binary((a, b) => tf.pow(a, b.dtype === a.dtype ? b : tf.cast(b, a.dtype))),
  Mod: binary((a, b) => tf.mod(a, b)),
  Sqrt: unary((x) => tf.sqrt(x)),
  Exp: unary((x) => tf.exp(x)),
  Log: unary((x) => tf.log(x)),
  Neg: unary((x) => tf.neg(x)),
  Abs: unary((x) => tf.abs(x)),
  Reciprocal: unary((x) => tf.reciprocal(x)),
  Sign: unary((x) => tf.sign(x)),
  Floor: unary((x) => tf.floor(x)),
  Ceil: unary((x) => tf.ceil(x)),
  // broadcast first: TF.js's Minimum/Maximum gradients do not reduce broadcast inputs
  Min: variadic((a, b) =>
    tf.minimum(bcast(a, broadcastShape(a.shape, b.shape)), bcast(b, broadcastShape(a.shape, b.shape))),
  ),
  Max: variadic((a, b) =>
    tf.maximum(bcast(a, broadcastShape(a.shape, b.shape)), bcast(b, broadcastShape(a.shape, b.shape))),
  ),
  Sum: variadic((a, b) => tf.add(a, b)),
  Mean: (node, ins) => [tf.div(variadic((a, b) => tf.add(a, b))(node, ins)[0], ins.filter(Boolean).length)],
  Equal: compare((a, b) => tf.equal(a, b)),
  Less: compare((a, b) => tf.less(a, b)),
  Greater: compare((a, b) => tf.greater(a, b)),
  LessOrEqual: compare((a, b) => tf.lessEqual(a, b)),
  GreaterOrEqual: compare((a, b) => tf.greaterEqual(a, b)),
  And: compare((a, b) => tf.logicalAnd(a, b)),
  Or: compare((a, b) => tf.logicalOr(a, b)),
  Not: unary((x) => tf.logicalNot(detach(x))),
  Where: (node, ins) => {
    const c = need(node, ins, 0);
    const a = need(node, ins, 1);
    const b = need(node, ins, 2);
    const shape = broadcastShape(broadcastShape(c.shape, a.shape), b.shape);
    return [tf.where(bcast(c, shape), bcast(a, shape), bcast(b, shape))];
  },
  Cast: (node, ins) => {
    const to = tfDtype(intAttr(node, 'to', 1));
    const x = need(node, ins, 0);
    // a cast to an integer type is piecewise constant: no gradient (TF.js would pass dy through)
    return [tf.cast(to === 'float32' ? x : detach(x), to)];
  },
  // activations
  Relu: unary((x) => tf.relu(x)),
  LeakyRelu: (node, ins) => [tf.leakyRelu(need(node, ins, 0), floatAttr(node, 'alpha', 0.01))],
  PRelu: (node, ins) => {
    const x = need(node, ins, 0);
    const s = need(node, ins, 1);
    const shape = broadcastShape(x.shape, s.shape);
    return [tf.where(tf.greater(detach(x), 0), x, tf.mul(x, bcast(s, shape)))];
  },
  Elu: (node, ins) => {
    const x = need(node, ins, 0);
    const alpha = floatAttr(node, 'alpha', 1);
    return [tf.where(tf.greater(detach(x), 0), x, tf.mul(tf.sub(tf.exp(tf.minimum(x, 0)), 1), alpha))];
  },
  Sigmoid: unary((x) => tf.sigmoid(x)),
  Softplus: unary((x) => tf.softplus(x)),
  HardSigmoid: (node, ins) => [
    hardSigmoid(need(node, ins, 0), floatAttr(node, 'alpha', 0.2), floatAttr(node, 'beta', 0.5)),
  ],
  HardSwish: unary((x) => tf.mul(x, hardSigmoid(x, 1 / 6, 0.5))),
  Tanh: unary((x) => tf.tanh(x)),
  Erf: unary((x) => tf.erf(x)),
  Gelu: (node, ins) => {
    const x = need(node, ins, 0);
    if (stringAttr(node, 'approximate', 'none') === 'tanh') {
      const u = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
      return [tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(u)))];
    }
    return [tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))))];
  },
  Softmax: (node, ins) => [alongAxis(need(node, ins, 0), intAttr(node, 'axis', -1), (t) => tf.softmax(t))],
  LogSoftmax: (node, ins) => [alongAxis(need(node, ins, 0), intAttr(node, 'axis', -1), (t) => tf.logSoftmax(t))],
  Clip: (node, ins) => {
    let x = need(node, ins, 0);
    const lo = ins[1] ?? (node.attrs.min ? tf.scalar(floatAttr(node, 'min', 0)) : undefined);
    const hi = ins[2] ?? (node.attrs.max ? tf.scalar(floatAttr(node, 'max', 0)) : undefined);
    // where-based so TF's gradient passes inside [lo, hi] inclusive, as onnxruntime-trained models expect
    if (lo) x = tf.where(tf.less(detach(x), detach(bcast(lo, x.shape))), bcast(lo, x.shape), x);
    if (hi) x = tf.where(tf.greater(detach(x), detach(bcast(hi, x.shape))), bcast(hi, x.shape), x);
    return [x];
  },
  Dropout: (node, ins) => {
    const x = need(node, ins, 0);
    const training = ins[2] ? nums(ins[2])[0] !== 0 : false;
    const ratio = ins[1] ? nums(ins[1])[0] : floatAttr(node, 'ratio', 0.5);
    if (!training || ratio === 0) return [x, tf.ones(x.shape, 'bool')];
    const rnd = mulberry32(intAttr(node, 'seed', 0) + 1);
    const m = new Uint8Array(x.size);
    for (let i = 0; i < m.length; i++) m[i] = rnd() >= ratio ? 1 : 0;
    const mask = tf.tensor(m, x.shape, 'bool');
    return [tf.mul(tf.mul(x, tf.cast(mask, 'float32')), 1 / (1 - ratio)), mask];
  },
  // linear algebra
  MatMul: (node, ins) => {
    let a = need(node, ins, 0);
    let b = need(node, ins, 1);
    const av = a.rank === 1;
    const bv = b.rank === 1;
    if (av) a = tf.expandDims(a, 0);
    if (bv) b = tf.expandDims(b, 1);
    if (a.rank !== b.rank || a.rank > 3) {
      const batch = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
      a = bcast(a, [...batch, ...a.shape.slice(-2)]);
      b = bcast(b, [...batch, ...b.shape.slice(-2)]);
    }
    let y: T;
    if (a.rank > 3) {
      const batch = a.shape.slice(0, -2);
      const a3 = tf.reshape(a, [-1, a.shape[a.rank - 2], a.shape[a.rank - 1]]);
      const b3 = tf.reshape(b, [-1, b.shape[b.rank - 2], b.shape[b.rank - 1]]);
      const y3 = tf.matMul(a3 as tf.Tensor3D, b3 as tf.Tensor3D);
      y = tf.reshape(y3, [...batch, y3.shape[1] as number, y3.shape[2] as number]);
    } else y = tf.matMul(a, b);
    if (av) y = tf.squeeze(y, [y.rank - 2]);
    if (bv) y = tf.squeeze(y, [y.rank - 1]);
    return [y];
  },
  Gemm: (node, ins) => {
    const a = need(node, ins, 0);
    const b = need(node, ins, 1);
    let y = tf.mul(
      tf.matMul(a, b, intAttr(node, 'transA', 0) === 1, intAttr(node, 'transB', 0) === 1),
      floatAttr(node, 'alpha', 1),
    );
    if (ins[2]) y = tf.add(y, tf.mul(ins[2], floatAttr(node, 'beta', 1)));
    return [y];
  },
  // conv / pool / norm
  Conv: opConv,
  ConvTranspose: opConvTranspose,
  MaxPool: opMaxPool,
  AveragePool: opAveragePool,
  GlobalAveragePool: unary((x) =>
    tf.mean(
      x,
      x.shape.slice(2).map((_, i) => i + 2),
      true,
    ),
  ),
  GlobalMaxPool: unary((x) =>
    tf.max(
      x,
      x.shape.slice(2).map((_, i) => i + 2),
      true,
    ),
  ),
  BatchNormalization: (node, ins) => {
    const x = need(node, ins, 0);
    const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => need(node, ins, i));
    const eps = floatAttr(node, 'epsilon', 1e-5);
    const bshape = [1, -1, ...new Array(x.rank - 2).fill(1)];
    const rs = (t: T) => tf.reshape(t, bshape);
    const training = intAttr(node, 'training_mode', 0) === 1 || node.outputs.slice(1).some((o) => o !== '');
    if (!training) {
      return [tf.add(tf.mul(tf.mul(tf.sub(x, rs(mean)), tf.rsqrt(tf.add(rs(variance), eps))), rs(scale)), rs(bias))];
    }
    const axes = [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2)];
    const st = layerNormStats(x, axes, eps);
    const y = tf.add(tf.mul(tf.mul(st.xc, st.inv), rs(scale)), rs(bias));
    const mom = floatAttr(node, 'momentum', 0.9);
    const bm = tf.reshape(st.mean, [-1]);
    const bv = tf.reshape(st.v, [-1]);
    return [y, tf.add(tf.mul(mean, mom), tf.mul(bm, 1 - mom)), tf.add(tf.mul(variance, mom), tf.mul(bv, 1 - mom))];
  },
  LayerNormalization: (node, ins) => {
    const x = need(node, ins, 0);
    const axis = normAxis(intAttr(node, 'axis', -1), x.rank);
    const axes = Array.from({ length: x.rank - axis }, (_, i) => axis + i);
    const st = layerNormStats(x, axes, floatAttr(node, 'epsilon', 1e-5));
    let y = tf.mul(tf.mul(st.xc, st.inv), need(node, ins, 1));
    if (ins[2]) y = tf.add(y, ins[2]);
    return [y, st.mean, st.inv];
  },
  // shapes
  Shape: (node, ins) => {
    const x = need(node, ins, 0);
    const r = x.rank;
    const start = normAxis(intAttr(node, 'start', 0), r);
    const end = node.attrs.end ? normAxis(intAttr(node, 'end', r), r) : r;
    return [tf.tensor1d(x.shape.slice(Math.max(0, start), Math.min(r, end)), 'int32')];
  },
  Size: unary((x) => tf.scalar(x.size, 'int32')),
  Constant: (node) => [constantOf(node)],
  ConstantOfShape: (node, ins) => {
    const shape = nums(need(node, ins, 0));
    const v = node.attrs.value;
    if (v && v.type === 'tensor') {
      const t = toTf(v.value);
      return [tf.fill(shape, nums(t)[0], t.dtype)];
    }
    return [tf.zeros(shape)];
  },
  Range: (node, ins) => {
    const [s, l, d] = [0, 1, 2].map((i) => nums(need(node, ins, i))[0]);
    return [tf.range(s, l, d, need(node, ins, 0).dtype === 'int32' ? 'int32' : 'float32')];
  },
  Transpose: (node, ins) => {
    const x = need(node, ins, 0);
    return [tf.transpose(x, intsAttr(node, 'perm') ?? x.shape.map((_, i) => x.rank - 1 - i))];
  },
  Reshape: (node, ins) => [
    reshapeOnnx(need(node, ins, 0), nums(need(node, ins, 1)), intAttr(node, 'allowzero', 0) === 1),
  ],
  Flatten: (node, ins) => {
    const x = need(node, ins, 0);
    const a = normAxis(intAttr(node, 'axis', 1), x.rank);
    const lead = x.shape.slice(0, a).reduce((p, q) => p * q, 1);
    return [tf.reshape(x, [lead, x.size / Math.max(1, lead)])];
  },
  Squeeze: (node, ins) => {
    const x = need(node, ins, 0);
    const axes = intsAttr(node, 'axes') ?? (ins[1] ? nums(ins[1]) : undefined);
    return [
      tf.squeeze(
        x,
        axes?.map((a) => normAxis(a, x.rank)),
      ),
    ];
  },
  Unsqueeze: (node, ins) => {
    const x = need(node, ins, 0);
    const axes = intsAttr(node, 'axes') ?? nums(need(node, ins, 1));
    const r = x.rank + axes.length;
    const norm = axes.map((a) => normAxis(a, r)).sort((p, q) => p - q);
    const shape = [...x.shape];
    for (const a of norm) shape.splice(a, 0, 1);
    return [tf.reshape(x, shape)];
  },
  Concat: (node, ins) => {
    const xs = ins.filter(Boolean) as T[];
    return [tf.concat(xs, normAxis(intAttr(node, 'axis', 0), xs[0].rank))];
  },
  Split: (node, ins) => {
    const x = need(node, ins, 0);
    const axis = normAxis(intAttr(node, 'axis', 0), x.rank);
    const sizes = intsAttr(node, 'split') ?? (ins[1] ? nums(ins[1]) : undefined);
    if (sizes) return tf.split(x, sizes, axis);
    const n = node.outputs.length;
    const each = Math.ceil(x.shape[axis] / n);
    const parts = Array.from({ length: n }, (_, i) => Math.min(each, x.shape[axis] - i * each));
    return tf.split(x, parts, axis);
  },
  Slice: (node, ins) => {
    let x = need(node, ins, 0);
    const starts = nums(need(node, ins, 1));
    const ends = nums(need(node, ins, 2));
    const axes = ins[3] ? nums(ins[3]) : starts.map((_, i) => i);
    const steps = ins[4] ? nums(ins[4]) : starts.map(() => 1);
    axes.forEach((ax, i) => {
      const a = normAxis(ax, x.rank);
      const { idx } = sliceIndices(starts[i], ends[i], steps[i], x.shape[a]);
      x = tf.gather(x, tf.tensor1d(idx, 'int32'), a);
    });
    return [x];
  },
  Gather: (node, ins) => {
    const x = need(node, ins, 0);
    const a = normAxis(intAttr(node, 'axis', 0), x.rank);
    let ind = need(node, ins, 1);
    ind = detach(ind);
    ind = tf.where(tf.less(ind, 0), tf.add(ind, tf.scalar(x.shape[a], 'int32')), ind);
    return [tf.gather(x, ind, a)];
  },
  Expand: (node, ins) => {
    const x = need(node, ins, 0);
    return [bcast(x, broadcastShape(x.shape, nums(need(node, ins, 1))))];
  },
  Tile: (node, ins) => [tf.tile(need(node, ins, 0), nums(need(node, ins, 1)))],
  Pad: (node, ins) => {
    const x = need(node, ins, 0);
    const mode = stringAttr(node, 'mode', 'constant');
    let pads = intsAttr(node, 'pads') ?? nums(need(node, ins, 1));
    const r = x.rank;
    if (ins[3]) {
      const ax = nums(ins[3]).map((a) => normAxis(a, r));
      const full = new Array<number>(2 * r).fill(0);
      ax.forEach((a, i) => {
        full[a] = pads[i];
        full[a + r] = pads[i + ax.length];
      });
      pads = full;
    }
    const value = ins[2] ? nums(ins[2])[0] : 0;
    const pos: [number, number][] = Array.from({ length: r }, (_, i) => [
      Math.max(0, pads[i]),
      Math.max(0, pads[i + r]),
    ]);
    let y = mode === 'reflect' ? tf.mirrorPad(x, pos, 'reflect') : tf.pad(x, pos, value);
    if (pads.some((p) => p < 0)) {
      const begin = Array.from({ length: r }, (_, i) => Math.max(0, -pads[i]));
      const size = y.shape.map((d, i) => d - begin[i] - Math.max(0, -pads[i + r]));
      y = tf.slice(y, begin, size);
    }
    return [y];
  },
  ScatterElements: (node, ins) => {
    const data = need(node, ins, 0);
    const indices = need(node, ins, 1);
    const updates = need(node, ins, 2);
    const axis = normAxis(intAttr(node, 'axis', 0), data.rank);
    const idx = indices.dataSync() as Int32Array;
    const ds = strides(data.shape);
    const us = strides(updates.shape);
    const D = data.shape[axis];
    return [
      scatterJs(data, indices, updates, stringAttr(node, 'reduction', 'none'), (i) => {
        let rem = i;
        let p = 0;
        for (let k = 0; k < updates.rank; k++) {
          const c = Math.floor(rem / us[k]);
          rem -= c * us[k];
          const v = k === axis ? (idx[i] < 0 ? idx[i] + D : idx[i]) : c;
          p += v * ds[k];
        }
        return p;
      }),
    ];
  },
  ScatterND: (node, ins) => {
    const data = need(node, ins, 0);
    const indices = need(node, ins, 1);
    const updates = need(node, ins, 2);
    const k = indices.shape[indices.rank - 1];
    const idx = indices.dataSync() as Int32Array;
    const ds = strides(data.shape);
    const slice = data.shape.slice(k).reduce((p, q) => p * q, 1);
    return [
      scatterJs(data, indices, updates, stringAttr(node, 'reduction', 'none'), (i) => {
        const row = Math.floor(i / slice);
        let p = 0;
        for (let j = 0; j < k; j++) {
          const v = idx[row * k + j];
          p += (v < 0 ? v + data.shape[j] : v) * ds[j];
        }
        return p + (i % slice);
      }),
    ];
  },
  // reductions
  ReduceSum: reduce((x, a, k) => tf.sum(x, a, k)),
  ReduceMean: reduce((x, a, k) => tf.mean(x, a, k)),
  ReduceMax: reduce((x, a, k) => tf.max(x, a, k)),
  ReduceMin: reduce((x, a, k) => tf.min(x, a, k)),
  ReduceProd: reduce((x, a, k) => tf.prod(x, a, k)),
  ReduceL2: reduce((x, a, k) => tf.sqrt(tf.sum(tf.mul(x, x), a, k))),
  ReduceSumSquare: reduce((x, a, k) => tf.sum(tf.mul(x, x), a, k)),
  ReduceLogSumExp: reduce((x, a, k) => tf.logSumExp(x, a, k)),
  TopK: (node, ins) => {
    // tf.topk works on the last axis: move `axis` there and back; ONNX indices are int64 (int32 in TF.js)
    const x = need(node, ins, 0);
    const k = nums(need(node, ins, 1))[0];
    const a = normAxis(intAttr(node, 'axis', -1), x.rank);
    const largest = intAttr(node, 'largest', 1) === 1;
    const perm = Array.from({ length: x.rank }, (_, i) => i);
    perm[a] = x.rank - 1;
    perm[x.rank - 1] = a;
    const xt = a === x.rank - 1 ? x : tf.transpose(x, perm);
    const r = tf.topk(largest ? xt : tf.neg(xt), k, true);
    const values = largest ? r.values : tf.neg(r.values);
    const back = (t: tf.Tensor) => (a === x.rank - 1 ? t : tf.transpose(t, perm));
    return [back(values), back(r.indices)];
  },
  ArgMax: (node, ins) => {
    const x = need(node, ins, 0);
    const a = normAxis(intAttr(node, 'axis', 0), x.rank);
    const y = tf.argMax(x, a);
    return [intAttr(node, 'keepdims', 1) === 1 ? tf.expandDims(y, a) : y];
  },
} satisfies Record<string, OpImpl>;

/** Op types the interpreter runs. */
export const TFJS_OPS: readonly string[] = Object.keys(OPS).sort();

// ---------------------------------------------------------------------------------------------------------------
// graph evaluation

/** Nodes needed to compute `targets` (in graph order). */
function neededNodes(graph: Graph, targets: string[]): Node[] {
  const need = new Set(targets);
  const keep: boolean[] = new Array(graph.nodes.length).fill(false);
  for (let k = graph.nodes.length - 1; k >= 0; k--) {
    const n = graph.nodes[k];
    if (n.outputs.some((o) => need.has(o))) {
      keep[k] = true;
      for (const i of n.inputs) if (i) need.add(i);
    }
  }
  return graph.nodes.filter((_, k) => keep[k]);
}

/**
 * Evaluates the nodes needed for `targets` on TF.js tensors; `env` holds inputs and initializers and receives every
 * computed value. Must run inside tf.tidy / a gradient closure (intermediates are not disposed here).
 */
export function evalGraph(graph: Graph, env: Map<string, T>, targets: string[]): void {
  ensureBackend();
  for (const [name, t] of graph.initializers) if (!env.has(name)) env.set(name, toTf(t));
  for (const node of neededNodes(graph, targets)) {
    if (node.outputs.every((o) => !o || env.has(o))) continue;
    const impl = node.domain === '' || node.domain === 'ai.onnx' ? OPS[node.opType as keyof typeof OPS] : undefined;
    if (!impl) {
      throw new QcbError(
        'QCB_ONNX_UNSUPPORTED_OP',
        `the TF.js interpreter has no implementation of ${node.opType} (node '${node.name}')`,
        {
          key: node.name,
          value: node.opType,
          allowed: TFJS_OPS.join(', '),
          fix: 'run this graph with onnxruntime instead',
        },
      );
    }
    const ins = node.inputs.map((i) => {
      if (!i) return undefined;
      const t = env.get(i);
      if (!t)
        throw new QcbError('QCB_ONNX_GRAPH', `node '${node.name}' reads '${i}', which is not computed or fed`, {
          key: node.name,
          value: i,
          fix: 'feed every graph input',
        });
      return t;
    });
    const outs = (impl as OpImpl)(node, ins);
    node.outputs.forEach((o, i) => {
      if (o && outs[i]) env.set(o, outs[i]);
    });
  }
}

/**
 * Runs a graph on TF.js. `feeds` must hold every graph input the requested outputs need.
 * @param outputs value names to return (default: the graph outputs)
 * @returns IR tensors in the dtypes `graph.values` declares (int64 for shapes, float32 otherwise)
 */
export function runGraph(graph: Graph, feeds: Record<string, Tensor>, outputs?: string[]): Record<string, Tensor> {
  ensureBackend();
  const targets = outputs ?? graph.outputs.map((o) => o.name);
  const kept = tf.tidy(() => {
    const env = new Map<string, T>();
    for (const [k, v] of Object.entries(feeds)) env.set(k, toTf(v));
    evalGraph(graph, env, targets);
    return targets.map((t) => {
      const v = env.get(t);
      if (!v) throw new QcbError('QCB_ONNX_GRAPH', `value '${t}' was not computed`, { key: t });
      return v;
    });
  });
  const res: Record<string, Tensor> = {};
  targets.forEach((t, i) => {
    const dt = graph.values.get(t)?.dtype;
    res[t] = fromTf(kept[i], dt === 'float64' || dt === 'float16' ? 'float32' : dt);
  });
  tf.dispose(kept);
  return res;
}

/**
 * Gradients of a scalar `loss` with respect to `wrt` (graph inputs or initializers) by TF.js's own autodiff over the
 * interpreted forward graph: the independent reference for our gradient rules.
 */
export function tfjsGradients(
  graph: Graph,
  loss: string,
  wrt: string[],
  feeds: Record<string, Tensor>,
): { loss: number; grads: Record<string, Tensor> } {
  ensureBackend();
  const base = (): Map<string, T> => {
    const env = new Map<string, T>();
    for (const [k, v] of Object.entries(feeds)) env.set(k, toTf(v));
    return env;
  };
  const kept = tf.tidy(() => {
    const env0 = base();
    for (const [name, t] of graph.initializers) if (!env0.has(name)) env0.set(name, toTf(t));
    const xs = wrt.map((w) => {
      const t = env0.get(w);
      if (!t)
        throw new QcbError(
          'QCB_ONNX_GRAPH',
          `cannot differentiate with respect to '${w}': not fed and not an initializer`,
          { key: w },
        );
      return t;
    });
    const f = (...args: T[]): tf.Scalar => {
      const env = new Map(env0);
      wrt.forEach((w, i) => {
        env.set(w, args[i]);
      });
      evalGraph(graph, env, [loss]);
      const l = env.get(loss) as T;
      return (l.rank === 0 ? l : tf.sum(l)) as tf.Scalar;
    };
    const { value, grads } = tf.valueAndGrads(f)(xs);
    return [value, ...grads];
  });
  const lossValue = (kept[0].dataSync() as Float32Array)[0];
  const grads: Record<string, Tensor> = {};
  wrt.forEach((w, i) => {
    grads[w] = fromTf(kept[i + 1], 'float32');
  });
  tf.dispose(kept);
  return { loss: lossValue, grads };
}
