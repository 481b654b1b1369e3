/**
 * Static shape inference over the IR: fills `graph.values` with the dtype and shape of every input, initializer and
 * node output. Symbolic dimensions (the batch `'N'`) propagate; arithmetic on them yields readable expressions
 * (`'N*3'`), and a size that cannot be expressed becomes a fresh symbol named after the node.
 *
 * Small integer tensors (shape vectors from initializers, Constant nodes, `Shape`, and ops over them) are tracked by
 * value so that `Reshape(x, Concat(Shape(y)[0], -1))`, as autodiff and exporters emit, gets a static output shape.
 *
 * One table, `SHAPE_RULES`, maps each supported operator to its shape function; an operator not in it throws
 * QCB_ONNX_UNSUPPORTED_OP naming the op, the node and the supported list.
 */
import { QcbError } from '../../errors.js';
import { dtypeFromCode, ONNX_TYPE_CODE } from '../onnx/dtypes.js';
import { intAttr, intsAttr, stringAttr } from './attrs.js';
import type { Attr, Dim, DType, Graph, Node, Tensor, ValueInfo } from './graph.js';

/** Type, shape and (for small integer tensors) the known contents of a value during inference. */
export interface Inferred {
  dtype: DType;
  shape?: Dim[];
  /** Known flat contents of a small int/float tensor; entries may be symbolic dims. */
  value?: Dim[];
}

/** What a shape rule sees: the node, its inputs' inferred info ('' inputs → undefined) and helpers. */
export interface ShapeCtx {
  node: Node;
  ins: (Inferred | undefined)[];
  opset: number;
  /** A fresh symbolic dim for a size that cannot be expressed (`<node>_d<i>`). */
  fresh(i: number): string;
}

export type ShapeRule = (c: ShapeCtx) => Inferred[];

const KNOWN_LIMIT = 1024;

// ---------------------------------------------------------------------------------------------------------------
// dim arithmetic

/** Product of dims: numeric when all are numbers, else `'a*b*6'`-style expression. */
export function mulDims(dims: readonly Dim[]): Dim {
  let n = 1;
  const syms: string[] = [];
  for (const d of dims) {
    if (typeof d === 'number') n *= d;
    else syms.push(d);
  }
  if (syms.length === 0) return n;
  if (n === 0) return 0;
  const parts = syms.map((s) => (/^[A-Za-z0-9_.]+$/.test(s) ? s : `(${s})`));
  if (n !== 1) parts.push(String(n));
  return parts.join('*');
}

function addDim(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (b === 0) return a;
  if (a === 0) return b;
  return `${a}+${b}`;
}

function subDim(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (b === 0) return a;
  if (a === b) return 0;
  return `${a}-${typeof b === 'number' ? b : `(${b})`}`;
}

function divDim(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return Math.floor(a / b);
  if (b === 1) return a;
  if (a === b) return 1;
  // cancel a numeric factor in `sym*k` / k
  if (typeof a === 'string' && typeof b === 'number') {
    const m = /^(.*)\*(\d+)$/.exec(a);
    if (m && Number(m[2]) % b === 0) {
      const r = Number(m[2]) / b;
      return r === 1 ? m[1] : `${m[1]}*${r}`;
    }
  }
  return `(${a})/(${b})`;
}

/** Broadcast two shapes numpy-style. Symbolic dims: 1 yields to anything; a number > 1 wins over a symbol. */
export function broadcastShapes(a: readonly Dim[], b: readonly Dim[], where: () => string): Dim[] {
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const da = i < r - a.length ? 1 : a[i - (r - a.length)];
    const db = i < r - b.length ? 1 : b[i - (r - b.length)];
    if (da === db) out.push(da);
    else if (da === 1) out.push(db);
    else if (db === 1) out.push(da);
    else if (typeof da === 'number' && typeof db === 'number') {
      throw new QcbError('QCB_ONNX_GRAPH', `cannot broadcast shapes [${a}] and [${b}] at ${where()}`, {
        key: where(),
        value: { a, b },
        fix: 'the operands of an elementwise operator must have broadcast-compatible shapes',
      });
    } else out.push(typeof da === 'number' ? da : typeof db === 'number' ? db : da);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// attribute helpers

function graphErr(c: ShapeCtx, msg: string, fix: string): QcbError {
  return new QcbError('QCB_ONNX_GRAPH', `${c.node.opType} node '${c.node.name}': ${msg}`, { key: c.node.name, fix });
}

function need(c: ShapeCtx, i: number): Inferred {
  const v = c.ins[i];
  if (!v) throw graphErr(c, `input ${i} is missing`, `give ${c.node.opType} its required input ${i}`);
  return v;
}

function shapeOf(c: ShapeCtx, i: number): Dim[] | undefined {
  return need(c, i).shape;
}

/** Known integer contents of input i (a constant or shape-derived tensor), numbers only. */
function knownInts(c: ShapeCtx, i: number): number[] | undefined {
  const v = c.ins[i]?.value;
  if (!v || v.some((d) => typeof d !== 'number')) return undefined;
  return v as number[];
}

function normAxis(axis: number, rank: number, c: ShapeCtx): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    throw graphErr(c, `axis ${axis} is out of range for rank ${rank}`, 'use an axis in [-rank, rank)');
  return a;
}

function dtypeOfInt(to: number): DType {
  const d = dtypeFromCode(to);
  if (!d)
    throw new QcbError('QCB_ONNX_UNSUPPORTED_OP', `Cast to ONNX data type ${to} is not supported`, {
      value: to,
      allowed: Object.keys(ONNX_TYPE_CODE).join(', '),
    });
  return d;
}

// ---------------------------------------------------------------------------------------------------------------
// rule families

const same: ShapeRule = (c) => {
  const x = need(c, 0);
  return [{ dtype: x.dtype, shape: x.shape }];
};

const sameBool: ShapeRule = (c) => [{ dtype: 'bool', shape: need(c, 0).shape }];

function elementwiseValue(c: ShapeCtx, f: (a: Dim, b: Dim) => Dim | undefined): Dim[] | undefined {
  const vals = c.ins.map((i) => i?.value);
  if (vals.some((v) => !v) || c.ins.length < 2) return undefined;
  const [a, b] = vals as Dim[][];
  const n = Math.max(a.length, b.length);
  if ((a.length !== n && a.length !== 1) || (b.length !== n && b.length !== 1)) return undefined;
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const r = f(a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]);
    if (r === undefined) return undefined;
    out.push(r);
  }
  return out;
}

function broadcastAll(c: ShapeCtx, from = 0): Dim[] | undefined {
  let s: Dim[] | undefined = [];
  for (let i = from; i < c.ins.length; i++) {
    const v = c.ins[i];
    if (!v) continue;
    if (!v.shape || !s) {
      s = undefined;
      continue;
    }
    s = broadcastShapes(s, v.shape, () => c.node.name);
  }
  return s;
}

function binary(f?: (a: Dim, b: Dim) => Dim | undefined, outDtype?: DType): ShapeRule {
  return (c) => {
    const dtype = outDtype ?? need(c, 0).dtype;
    const out: Inferred = { dtype, shape: broadcastAll(c) };
    if (f) {
      const v = elementwiseValue(c, f);
      if (v) out.value = v;
    }
    return [out];
  };
}

const num =
  (f: (a: number, b: number) => number, sym?: (a: Dim, b: Dim) => Dim) =>
  (a: Dim, b: Dim): Dim | undefined =>
    typeof a === 'number' && typeof b === 'number' ? f(a, b) : sym ? sym(a, b) : undefined;

const variadic: ShapeRule = (c) => [{ dtype: need(c, 0).dtype, shape: broadcastAll(c) }];

const where: ShapeRule = (c) => [{ dtype: need(c, 1).dtype, shape: broadcastAll(c) }];

const matMul: ShapeRule = (c) => {
  const a = shapeOf(c, 0);
  const b = shapeOf(c, 1);
  const dtype = need(c, 0).dtype;
  if (!a || !b) return [{ dtype }];
  const a2 = a.length === 1 ? [1, a[0]] : a;
  const b2 = b.length === 1 ? [b[0], 1] : b;
  const k1 = a2[a2.length - 1];
  const k2 = b2[b2.length - 2];
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
    throw graphErr(
      c,
      `inner dimensions differ: [${a}] × [${b}]`,
      'the last dim of A must equal the second-to-last dim of B',
    );
  }
  const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2), () => c.node.name);
  const out = [...batch, a2[a2.length - 2], b2[b2.length - 1]];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.splice(out.length - 1, 1);
  return [{ dtype, shape: out }];
};

const gemm: ShapeRule = (c) => {
  const a = shapeOf(c, 0);
  const b = shapeOf(c, 1);
  const dtype = need(c, 0).dtype;
  if (!a || !b) return [{ dtype }];
  if (a.length !== 2 || b.length !== 2)
    throw graphErr(c, `Gemm needs 2-D A and B, got [${a}] and [${b}]`, 'Flatten the inputs first');
  const m = intAttr(c.node, 'transA', 0) ? a[1] : a[0];
  const ka = intAttr(c.node, 'transA', 0) ? a[0] : a[1];
  const kb = intAttr(c.node, 'transB', 0) ? b[1] : b[0];
  const n = intAttr(c.node, 'transB', 0) ? b[0] : b[1];
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb) {
    throw graphErr(
      c,
      `inner dimensions differ: A [${a}] B [${b}] (transA/transB applied)`,
      'check the weight orientation (transB)',
    );
  }
  return [{ dtype, shape: [m, n] }];
};

/** Output size of a sliding window along one spatial axis (Conv, pooling). */
function windowOut(
  c: ShapeCtx,
  i: number,
  size: Dim,
  k: number,
  s: number,
  d: number,
  padBegin: number,
  padEnd: number,
  autoPad: string,
  ceil: boolean,
): Dim {
  const ek = (k - 1) * d + 1;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    return typeof size === 'number' ? Math.ceil(size / s) : s === 1 ? size : c.fresh(i);
  }
  if (autoPad === 'VALID') {
    return typeof size === 'number' ? Math.floor((size - ek) / s) + 1 : c.fresh(i);
  }
  if (typeof size !== 'number') return s === 1 && padBegin + padEnd === ek - 1 ? size : c.fresh(i);
  const span = size + padBegin + padEnd - ek;
  let o = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  // ONNX/PyTorch: with ceil_mode the last window must start inside the input or left padding.
  if (ceil && (o - 1) * s >= size + padBegin) o--;
  if (o <= 0)
    throw graphErr(
      c,
      `spatial axis ${i} of size ${size} is too small for a window of ${ek} (stride ${s})`,
      'use larger input images or a smaller kernel',
    );
  return o;
}

function spatialRule(kind: 'conv' | 'pool'): ShapeRule {
  return (c) => {
    const x = need(c, 0);
    if (!x.shape) return kind === 'pool' ? [{ dtype: x.dtype }, { dtype: 'int64' }] : [{ dtype: x.dtype }];
    const nsp = x.shape.length - 2;
    const n = c.node;
    let kernel = intsAttr(n, 'kernel_shape');
    let outC: Dim = x.shape[1];
    if (kind === 'conv') {
      const w = shapeOf(c, 1);
      if (!w) return [{ dtype: x.dtype }];
      if (!kernel) kernel = w.slice(2).map(Number);
      outC = w[0];
      const g = intAttr(n, 'group', 1);
      if (typeof x.shape[1] === 'number' && typeof w[1] === 'number' && x.shape[1] !== w[1] * g) {
        throw graphErr(
          c,
          `input has ${x.shape[1]} channels but weight [${w}] with group=${g} expects ${Number(w[1]) * g}`,
          'check the weight shape and group attribute',
        );
      }
    }
    if (!kernel) throw graphErr(c, 'kernel_shape is missing', 'set kernel_shape');
    const strides = intsAttr(n, 'strides') ?? new Array(nsp).fill(1);
    const dil = intsAttr(n, 'dilations') ?? new Array(nsp).fill(1);
    const pads = intsAttr(n, 'pads') ?? new Array(2 * nsp).fill(0);
    const autoPad = stringAttr(n, 'auto_pad', 'NOTSET');
    const ceil = intAttr(n, 'ceil_mode', 0) === 1;
    const sp = x.shape
      .slice(2)
      .map((d, i) => windowOut(c, i, d, kernel![i], strides[i], dil[i], pads[i], pads[i + nsp], autoPad, ceil));
    const y: Inferred = { dtype: x.dtype, shape: [x.shape[0], outC, ...sp] };
    return kind === 'pool' ? [y, { dtype: 'int64', shape: y.shape }] : [y];
  };
}

const convTranspose: ShapeRule = (c) => {
  const x = need(c, 0);
  const w = shapeOf(c, 1);
  if (!x.shape || !w) return [{ dtype: x.dtype }];
  const n = c.node;
  const nsp = x.shape.length - 2;
  const g = intAttr(n, 'group', 1);
  const kernel = intsAttr(n, 'kernel_shape') ?? w.slice(2).map(Number);
  const strides = intsAttr(n, 'strides') ?? new Array(nsp).fill(1);
  const dil = intsAttr(n, 'dilations') ?? new Array(nsp).fill(1);
  const pads = intsAttr(n, 'pads') ?? new Array(2 * nsp).fill(0);
  const outPad = intsAttr(n, 'output_padding') ?? new Array(nsp).fill(0);
  const outShape = intsAttr(n, 'output_shape');
  const autoPad = stringAttr(n, 'auto_pad', 'NOTSET');
  const outC = typeof w[1] === 'number' ? w[1] * g : mulDims([w[1], g]);
  const sp = x.shape.slice(2).map((d, i) => {
    if (outShape) return outShape[outShape.length - nsp + i];
    if (typeof d !== 'number') return c.fresh(i);
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return d * strides[i];
    return strides[i] * (d - 1) + outPad[i] + ((kernel[i] - 1) * dil[i] + 1) - pads[i] - pads[i + nsp];
  });
  return [{ dtype: x.dtype, shape: [x.shape[0], outC, ...sp] }];
};

const globalPool: ShapeRule = (c) => {
  const x = need(c, 0);
  return [{ dtype: x.dtype, shape: x.shape ? [x.shape[0], x.shape[1], ...x.shape.slice(2).map(() => 1)] : undefined }];
};

const maxUnpool: ShapeRule = (c) => {
  const x = need(c, 0);
  const os = knownInts(c, 2);
  if (os) return [{ dtype: x.dtype, shape: os }];
  if (!x.shape) return [{ dtype: x.dtype }];
  const n = c.node;
  const nsp = x.shape.length - 2;
  const kernel = intsAttr(n, 'kernel_shape') ?? [];
  const strides = intsAttr(n, 'strides') ?? new Array(nsp).fill(1);
  const pads = intsAttr(n, 'pads') ?? new Array(2 * nsp).fill(0);
  const sp = x.shape
    .slice(2)
    .map((d, i) => (typeof d === 'number' ? (d - 1) * strides[i] + kernel[i] - pads[i] - pads[i + nsp] : c.fresh(i)));
  return [{ dtype: x.dtype, shape: [x.shape[0], x.shape[1], ...sp] }];
};

const batchNorm: ShapeRule = (c) => {
  const x = need(c, 0);
  const cdim: Dim[] | undefined = x.shape ? [x.shape[1]] : shapeOf(c, 1);
  const outs: Inferred[] = [{ dtype: x.dtype, shape: x.shape }];
  // training_mode=1 (opset 15): running_mean, running_var; opset < 14 had saved mean/var too, same [C] shape.
  for (let i = 1; i < c.node.outputs.length; i++) outs.push({ dtype: x.dtype, shape: cdim });
  return outs;
};

/**
 * qcbench.BatchNormTrain (the engine's training-mode BN, expanded to standard ops after differentiation; see
 * train/batchnorm.ts): X N×C×…, scale C, B C → Y like X, batch mean C, biased batch variance C, X − mean like X.
 */
const batchNormTrain: ShapeRule = (c) => {
  const x = need(c, 0);
  const cdim: Dim[] | undefined = x.shape ? [x.shape[1]] : shapeOf(c, 1);
  return [
    { dtype: x.dtype, shape: x.shape },
    { dtype: x.dtype, shape: cdim },
    { dtype: x.dtype, shape: cdim },
    { dtype: x.dtype, shape: x.shape },
  ];
};

const layerNorm: ShapeRule = (c) => {
  const x = need(c, 0);
  const outs: Inferred[] = [{ dtype: x.dtype, shape: x.shape }];
  if (c.node.outputs.length > 1) {
    const st = (intAttr(c.node, 'stash_type', 1) === 1 ? 'float32' : x.dtype) as DType;
    let s: Dim[] | undefined;
    if (x.shape) {
      const axis = normAxis(intAttr(c.node, 'axis', -1), x.shape.length, c);
      s = x.shape.map((d, i) => (i < axis ? d : 1));
    }
    for (let i = 1; i < c.node.outputs.length; i++) outs.push({ dtype: st, shape: s });
  }
  return outs;
};

const dropout: ShapeRule = (c) => {
  const x = need(c, 0);
  return [
    { dtype: x.dtype, shape: x.shape, value: x.value },
    { dtype: 'bool', shape: x.shape },
  ];
};

const identity: ShapeRule = (c) => {
  const x = need(c, 0);
  return [{ ...x }];
};

const cast: ShapeRule = (c) => {
  const x = need(c, 0);
  const dtype = dtypeOfInt(intAttr(c.node, 'to', 1));
  return [{ dtype, shape: x.shape, value: x.value }];
};

const castLike: ShapeRule = (c) => {
  const x = need(c, 0);
  return [{ dtype: need(c, 1).dtype, shape: x.shape, value: x.value }];
};

/** QuantizeLinear: the zero point's type (uint8 without one), DequantizeLinear: float32; both keep the shape. */
const quantizeLinear: ShapeRule = (c) => [{ dtype: c.ins[2]?.dtype ?? 'uint8', shape: need(c, 0).shape }];
const dequantizeLinear: ShapeRule = (c) => [{ dtype: 'float32', shape: need(c, 0).shape }];

const transpose: ShapeRule = (c) => {
  const x = need(c, 0);
  if (!x.shape) return [{ dtype: x.dtype }];
  const perm = intsAttr(c.node, 'perm') ?? x.shape.map((_, i) => x.shape!.length - 1 - i);
  if (perm.length !== x.shape.length)
    throw graphErr(c, `perm [${perm}] does not match rank ${x.shape.length}`, 'give one perm entry per axis');
  return [{ dtype: x.dtype, shape: perm.map((p) => x.shape![p]) }];
};

/** Resolves a Reshape target (0 = copy, -1 = infer), keeping symbolic dims by cancelling common factors. */
export function reshapeTarget(input: readonly Dim[], target: readonly Dim[], allowZero: boolean, where: string): Dim[] {
  const out: Dim[] = target.map((t, i) => (t === 0 && !allowZero ? input[i] : t));
  const neg = out.indexOf(-1);
  if (neg < 0) return out;
  const inNum = input.filter((d): d is number => typeof d === 'number').reduce((a, b) => a * b, 1);
  const inSym = input.filter((d): d is string => typeof d === 'string');
  let outNum = 1;
  const outSym: string[] = [];
  out.forEach((d, i) => {
    if (i === neg) return;
    if (typeof d === 'number') outNum *= d;
    else outSym.push(d);
  });
  const left = [...inSym];
  for (const s of outSym) {
    const j = left.indexOf(s);
    if (j >= 0) left.splice(j, 1);
    else left.push(`1/${s}`); // cannot cancel: keep an expression
  }
  if (outNum === 0)
    throw new QcbError('QCB_ONNX_GRAPH', `Reshape '${where}': cannot infer -1 with a zero-size dim`, { key: where });
  let inferred: Dim;
  if (left.length === 0) {
    if (inNum % outNum !== 0) {
      throw new QcbError('QCB_ONNX_GRAPH', `Reshape '${where}': [${input}] cannot be reshaped to [${target}]`, {
        key: where,
        value: { input, target },
        fix: 'the number of elements must stay the same',
      });
    }
    inferred = inNum / outNum;
  } else if (inNum % outNum === 0) inferred = mulDims([...left, inNum / outNum]);
  else inferred = `${mulDims([...left, inNum])}/${outNum}`;
  out[neg] = inferred;
  return out;
}

const reshape: ShapeRule = (c) => {
  const x = need(c, 0);
  const t = need(c, 1).value;
  if (!t) {
    // shape unknown by value: rank is known from the shape input's length
    const s = shapeOf(c, 1);
    if (s && typeof s[0] === 'number')
      return [{ dtype: x.dtype, shape: Array.from({ length: s[0] }, (_, i) => c.fresh(i)) }];
    return [{ dtype: x.dtype }];
  }
  if (!x.shape) return [{ dtype: x.dtype }];
  const shape = reshapeTarget(x.shape, t, intAttr(c.node, 'allowzero', 0) === 1, c.node.name);
  const known = typeof shape.find((d) => typeof d === 'number' && d > 0) !== 'undefined' || shape.length === 0;
  if (known) {
    const a = mulDims(x.shape);
    const b = mulDims(shape);
    if (typeof a === 'number' && typeof b === 'number' && a !== b) {
      throw graphErr(
        c,
        `[${x.shape}] (${a} elements) cannot be reshaped to [${t}] (${b} elements)`,
        'the number of elements must stay the same',
      );
    }
  }
  return [{ dtype: x.dtype, shape, value: x.value }];
};

const flatten: ShapeRule = (c) => {
  const x = need(c, 0);
  if (!x.shape) return [{ dtype: x.dtype }];
  const r = x.shape.length;
  let axis = intAttr(c.node, 'axis', 1);
  if (axis < 0) axis += r;
  return [{ dtype: x.dtype, shape: [mulDims(x.shape.slice(0, axis)), mulDims(x.shape.slice(axis))] }];
};

/** Axes from the input (opset ≥ 13 for Squeeze/Unsqueeze/ReduceSum, ≥ 18 for other reductions) or the attribute. */
function axesOf(c: ShapeCtx, inputIdx: number): number[] | undefined | 'unknown' {
  if (c.node.inputs.length > inputIdx && c.node.inputs[inputIdx] !== '') {
    const k = knownInts(c, inputIdx);
    return k ?? 'unknown';
  }
  return intsAttr(c.node, 'axes');
}

const squeeze: ShapeRule = (c) => {
  const x = need(c, 0);
  if (!x.shape) return [{ dtype: x.dtype }];
  const ax = axesOf(c, 1);
  if (ax === 'unknown') return [{ dtype: x.dtype }];
  const r = x.shape.length;
  const drop = new Set((ax ?? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => normAxis(a, r, c)));
  for (const a of drop) {
    if (typeof x.shape[a] === 'number' && x.shape[a] !== 1)
      throw graphErr(c, `axis ${a} has size ${x.shape[a]}, not 1`, 'squeeze only axes of size 1');
  }
  return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !drop.has(i)), value: x.value }];
};

const unsqueeze: ShapeRule = (c) => {
  const x = need(c, 0);
  if (!x.shape) return [{ dtype: x.dtype }];
  const ax = axesOf(c, 1);
  if (ax === 'unknown' || !ax) return [{ dtype: x.dtype }];
  const r = x.shape.length + ax.length;
  const set = new Set(ax.map((a) => normAxis(a, r, c)));
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < r; i++) out.push(set.has(i) ? 1 : x.shape[j++]);
  return [{ dtype: x.dtype, shape: out, value: x.value }];
};

const concat: ShapeRule = (c) => {
  const present = c.ins.filter((v): v is Inferred => !!v);
  const dtype = present[0]?.dtype ?? 'float32';
  if (present.some((v) => !v.shape)) return [{ dtype }];
  const r = present[0].shape!.length;
  const axis = normAxis(intAttr(c.node, 'axis', 0), r, c);
  const shape = [...present[0].shape!];
  let total: Dim = 0;
  for (const v of present) {
    if (v.shape!.length !== r) throw graphErr(c, 'inputs have different ranks', 'concatenate tensors of the same rank');
    total = addDim(total, v.shape![axis]);
  }
  shape[axis] = total;
  const out: Inferred = { dtype, shape };
  if (r === 1 && present.every((v) => v.value)) out.value = present.flatMap((v) => v.value!);
  return [out];
};

const split: ShapeRule = (c) => {
  const x = need(c, 0);
  const nOut = c.node.outputs.length;
  if (!x.shape) return Array.from({ length: nOut }, () => ({ dtype: x.dtype }));
  const axis = normAxis(intAttr(c.node, 'axis', 0), x.shape.length, c);
  let sizes: Dim[] | undefined;
  if (c.node.inputs.length > 1 && c.node.inputs[1] !== '') sizes = knownInts(c, 1);
  else sizes = intsAttr(c.node, 'split');
  const d = x.shape[axis];
  if (!sizes) {
    if (typeof d === 'number') {
      const each = Math.ceil(d / nOut);
      sizes = Array.from({ length: nOut }, (_, i) => Math.min(each, d - each * i));
    } else sizes = Array.from({ length: nOut }, (_, i) => c.fresh(i));
  }
  return sizes.map((s) => {
    const shape = [...x.shape!];
    shape[axis] = s;
    return { dtype: x.dtype, shape };
  });
};

function clampSliceIndex(v: number, size: number, step: number, isEnd: boolean): number {
  if (v < 0) v += size;
  if (step > 0) return Math.max(0, Math.min(size, v));
  // negative step: start clamps to [0, size-1], end to [-1, size-1]
  return isEnd ? Math.max(-1, Math.min(size - 1, v)) : Math.max(0, Math.min(size - 1, v));
}

/**
 * The positions an ONNX Slice keeps along one axis of length `size`: from `start` towards `end` (exclusive) by
 * `step`, negative start/end counting from the end and both clamped as the ONNX spec says for the sign of `step`.
 * Returns them in slice order with the clamped start (the first position when any is kept).
 */
export function sliceIndices(start: number, end: number, step: number, size: number): { start: number; idx: number[] } {
  const s = clampSliceIndex(start, size, step, false);
  const e = clampSliceIndex(end, size, step, true);
  const idx: number[] = [];
  if (step > 0) for (let k = s; k < e; k += step) idx.push(k);
  else for (let k = s; k > e; k += step) idx.push(k);
  return { start: s, idx };
}

const slice: ShapeRule = (c) => {
  const x = need(c, 0);
  if (!x.shape) return [{ dtype: x.dtype }];
  const r = x.shape.length;
  let starts: number[] | undefined;
  let ends: number[] | undefined;
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (c.opset >= 10 && c.node.inputs.length > 1) {
    starts = knownInts(c, 1);
    ends = knownInts(c, 2);
    axes = c.node.inputs[3] ? knownInts(c, 3) : undefined;
    steps = c.node.inputs[4] ? knownInts(c, 4) : undefined;
    if (!starts || !ends || (c.node.inputs[3] && !axes) || (c.node.inputs[4] && !steps)) {
      return [{ dtype: x.dtype, shape: x.shape.map((_, i) => c.fresh(i)) }];
    }
  } else {
    starts = intsAttr(c.node, 'starts');
    ends = intsAttr(c.node, 'ends');
    axes = intsAttr(c.node, 'axes');
  }
  if (!starts || !ends) return [{ dtype: x.dtype }];
  axes ??= starts.map((_, i) => i);
  steps ??= starts.map(() => 1);
  const shape = [...x.shape];
  const sel: { axis: number; s: number; e: number; st: number }[] = [];
  axes.forEach((a0, i) => {
    const a = normAxis(a0, r, c);
    const size = x.shape![a];
    const st = steps![i];
    if (typeof size !== 'number') {
      // symbolic size: a full slice keeps the symbol
      const full = st === 1 && starts![i] === 0 && ends![i] >= 2 ** 31 - 1;
      shape[a] = full ? size : c.fresh(a);
      return;
    }
    const s = clampSliceIndex(starts![i], size, st, false);
    const e = clampSliceIndex(ends![i], size, st, true);
    shape[a] = st > 0 ? Math.max(0, Math.ceil((e - s) / st)) : Math.max(0, Math.ceil((s - e) / -st));
    sel.push({ axis: a, s, e, st });
  });
  const out: Inferred = { dtype: x.dtype, shape };
  if (x.value && r === 1 && sel.length === 1) {
    const { s, st } = sel[0];
    const n = shape[0] as number;
    out.value = Array.from({ length: n }, (_, i) => x.value![s + i * st]);
  }
  return [out];
};

const gather: ShapeRule = (c) => {
  const x = need(c, 0);
  const idx = need(c, 1);
  if (!x.shape || !idx.shape) return [{ dtype: x.dtype }];
  const axis = normAxis(intAttr(c.node, 'axis', 0), x.shape.length, c);
  const shape = [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)];
  const out: Inferred = { dtype: x.dtype, shape };
  const iv = knownInts(c, 1);
  if (x.value && x.shape.length === 1 && iv) {
    const n = x.value.length;
    out.value = iv.map((i) => x.value![i < 0 ? i + n : i]);
  }
  return [out];
};

const gatherElements: ShapeRule = (c) => [{ dtype: need(c, 0).dtype, shape: need(c, 1).shape }];

const scatterElements: ShapeRule = same;

const expand: ShapeRule = (c) => {
  const x = need(c, 0);
  const s = need(c, 1).value;
  if (!x.shape || !s) return [{ dtype: x.dtype }];
  return [{ dtype: x.dtype, shape: broadcastShapes(x.shape, s, () => c.node.name) }];
};

const tile: ShapeRule = (c) => {
  const x = need(c, 0);
  const reps = need(c, 1).value;
  if (!x.shape || !reps) return [{ dtype: x.dtype }];
  return [{ dtype: x.dtype, shape: x.shape.map((d, i) => mulDims([d, reps[i]])) }];
};

const pad: ShapeRule = (c) => {
  const x = need(c, 0);
  if (!x.shape) return [{ dtype: x.dtype }];
  const r = x.shape.length;
  let pads: number[] | undefined;
  if (c.node.inputs.length > 1 && c.node.inputs[1]) pads = knownInts(c, 1);
  else pads = intsAttr(c.node, 'pads');
  if (!pads) return [{ dtype: x.dtype, shape: x.shape.map((_, i) => c.fresh(i)) }];
  let axes = c.node.inputs[3] ? knownInts(c, 3) : undefined;
  axes = (axes ?? x.shape.map((_, i) => i)).map((a) => normAxis(a, r, c));
  const shape = [...x.shape];
  const na = axes.length;
  axes.forEach((a, i) => {
    shape[a] = addDim(shape[a], pads![i] + pads![i + na]);
  });
  return [{ dtype: x.dtype, shape }];
};

const shapeOp: ShapeRule = (c) => {
  const x = need(c, 0);
  if (!x.shape) return [{ dtype: 'int64' }];
  const r = x.shape.length;
  let start = intAttr(c.node, 'start', 0);
  let end = intAttr(c.node, 'end', r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = Math.max(0, Math.min(r, start));
  end = Math.max(start, Math.min(r, end));
  const v = x.shape.slice(start, end);
  return [{ dtype: 'int64', shape: [v.length], value: v }];
};

const size: ShapeRule = (c) => {
  const x = need(c, 0);
  return [{ dtype: 'int64', shape: [], value: x.shape ? [mulDims(x.shape)] : undefined }];
};

const constantOfShape: ShapeRule = (c) => {
  const s = need(c, 0).value;
  const a = c.node.attrs.value;
  const t = a && a.type === 'tensor' ? a.value : undefined;
  const dtype = t?.dtype ?? 'float32';
  if (!s) {
    const l = shapeOf(c, 0);
    return [
      { dtype, shape: l && typeof l[0] === 'number' ? Array.from({ length: l[0] }, (_, i) => c.fresh(i)) : undefined },
    ];
  }
  const out: Inferred = { dtype, shape: s };
  const n = mulDims(s);
  if (typeof n === 'number' && n <= KNOWN_LIMIT && s.length <= 1)
    out.value = new Array(n).fill(t ? tensorScalar(t) : 0);
  return [out];
};

const range: ShapeRule = (c) => {
  const dtype = need(c, 0).dtype;
  const [s, l, d] = [0, 1, 2].map((i) => knownInts(c, i)?.[0]);
  if (s === undefined || l === undefined || d === undefined) return [{ dtype, shape: [c.fresh(0)] }];
  const n = Math.max(0, Math.ceil((l - s) / d));
  const out: Inferred = { dtype, shape: [n] };
  if (n <= KNOWN_LIMIT) out.value = Array.from({ length: n }, (_, i) => s + i * d);
  return [out];
};

function reduceRule(axesInputFromOpset: number, outDtype?: DType): ShapeRule {
  return (c) => {
    const x = need(c, 0);
    const dtype = outDtype ?? x.dtype;
    if (!x.shape) return [{ dtype }];
    const r = x.shape.length;
    const keep = intAttr(c.node, 'keepdims', 1) === 1;
    let ax: number[] | undefined;
    if (c.opset >= axesInputFromOpset) {
      if (c.node.inputs.length > 1 && c.node.inputs[1]) {
        const k = knownInts(c, 1);
        if (!k) return [{ dtype, shape: keep ? x.shape.map((_, i) => c.fresh(i)) : undefined }];
        ax = k;
      }
    } else ax = intsAttr(c.node, 'axes');
    if (ax && ax.length === 0) ax = undefined;
    if (!ax && intAttr(c.node, 'noop_with_empty_axes', 0) === 1) return [{ dtype, shape: x.shape }];
    const set = new Set((ax ?? x.shape.map((_, i) => i)).map((a) => normAxis(a, r, c)));
    const shape = keep ? x.shape.map((d, i) => (set.has(i) ? 1 : d)) : x.shape.filter((_, i) => !set.has(i));
    const out: Inferred = { dtype, shape };
    if (c.node.opType === 'ReduceProd' && x.value && r === 1 && !keep) out.value = [mulDims(x.value)];
    return [out];
  };
}

const argReduce: ShapeRule = (c) => {
  const x = need(c, 0);
  if (!x.shape) return [{ dtype: 'int64' }];
  const a = normAxis(intAttr(c.node, 'axis', 0), x.shape.length, c);
  const keep = intAttr(c.node, 'keepdims', 1) === 1;
  return [
    { dtype: 'int64', shape: keep ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a) },
  ];
};

const oneHot: ShapeRule = (c) => {
  const idx = need(c, 0);
  const depth = need(c, 1).value?.[0] ?? c.fresh(0);
  const dtype = need(c, 2).dtype;
  if (!idx.shape) return [{ dtype }];
  const r = idx.shape.length + 1;
  let axis = intAttr(c.node, 'axis', -1);
  if (axis < 0) axis += r;
  const shape = [...idx.shape];
  shape.splice(axis, 0, depth);
  return [{ dtype, shape }];
};

const topK: ShapeRule = (c) => {
  const x = need(c, 0);
  if (!x.shape) return [{ dtype: x.dtype }, { dtype: 'int64' }];
  const a = normAxis(intAttr(c.node, 'axis', -1), x.shape.length, c);
  const k = c.opset >= 10 ? (need(c, 1).value?.[0] ?? c.fresh(a)) : intAttr(c.node, 'k', 1);
  const shape = x.shape.map((d, i) => (i === a ? k : d));
  return [
    { dtype: x.dtype, shape },
    { dtype: 'int64', shape },
  ];
};

const einsum: ShapeRule = (c) => {
  const eq = stringAttr(c.node, 'equation', '').replace(/\s/g, '');
  const dtype = need(c, 0).dtype;
  const [lhs, rhs0] = eq.split('->');
  const terms = lhs.split(',');
  if (terms.some((t) => t.includes('...'))) return [{ dtype }];
  const size = new Map<string, Dim>();
  terms.forEach((t, i) => {
    const s = shapeOf(c, i);
    if (!s) return;
    [...t].forEach((ch, j) => {
      size.set(ch, size.get(ch) === undefined || size.get(ch) === 1 ? s[j] : size.get(ch)!);
    });
  });
  const rhs =
    rhs0 ??
    [...new Set(terms.join(''))]
      .filter((ch) => terms.join('').split(ch).length === 2)
      .sort()
      .join('');
  if ([...rhs].some((ch) => size.get(ch) === undefined)) return [{ dtype }];
  return [{ dtype, shape: [...rhs].map((ch) => size.get(ch)!) }];
};

/** Scalar value of a one-element tensor as a number. */
function tensorScalar(t: Tensor): number {
  const v = t.data[0];
  return typeof v === 'bigint' ? Number(v) : (v ?? 0);
}

/** Known contents of a small tensor as dims (numbers), or undefined when too large / not numeric. */
export function tensorKnownValue(t: Tensor): Dim[] | undefined {
  if (t.data.length > KNOWN_LIMIT || t.dims.length > 1) return undefined;
  if (t.dtype === 'float16') return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
}

function constantAttr(a: Attr | undefined, key: string): Inferred | undefined {
  if (!a) return undefined;
  switch (key) {
    case 'value':
      if (a.type === 'tensor')
        return { dtype: a.value.dtype, shape: [...a.value.dims], value: tensorKnownValue(a.value) };
      break;
    case 'value_float':
      return { dtype: 'float32', shape: [], value: [a.value as number] };
    case 'value_floats':
      return { dtype: 'float32', shape: [(a.value as number[]).length], value: [...(a.value as number[])] };
    case 'value_int':
      return { dtype: 'int64', shape: [], value: [a.value as number] };
    case 'value_ints':
      return { dtype: 'int64', shape: [(a.value as number[]).length], value: [...(a.value as number[])] };
  }
  return undefined;
}

const constant: ShapeRule = (c) => {
  for (const k of ['value', 'value_float', 'value_floats', 'value_int', 'value_ints']) {
    const r = constantAttr(c.node.attrs[k], k);
    if (r) return [r];
  }
  throw graphErr(c, 'Constant has no supported value attribute', 'use value, value_float(s) or value_int(s)');
};

const arith = {
  add: num((a, b) => a + b, addDim),
  sub: num((a, b) => a - b, subDim),
  mul: num(
    (a, b) => a * b,
    (a, b) => mulDims([a, b]),
  ),
  div: num((a, b) => Math.trunc(a / b), divDim),
};

/**
 * Shape functions per ONNX operator (default domain). Every operator the engine imports, differentiates or emits in
 * a backward graph is listed here; this list is also what error messages give as "supported".
 */
export const SHAPE_RULES = {
  // elementwise unary, same type and shape
  Relu: same,
  LeakyRelu: same,
  PRelu: binary(),
  Elu: same,
  Selu: same,
  Celu: same,
  Sigmoid: same,
  HardSigmoid: same,
  HardSwish: same,
  Tanh: same,
  Erf: same,
  Gelu: same,
  Softplus: same,
  Softsign: same,
  Mish: same,
  Sqrt: same,
  Exp: same,
  Log: same,
  Neg: same,
  Abs: same,
  Reciprocal: same,
  Sign: same,
  Ceil: same,
  Floor: same,
  Round: same,
  Sin: same,
  Cos: same,
  Clip: same,
  Softmax: same,
  LogSoftmax: same,
  Not: sameBool,
  IsNaN: sameBool,
  IsInf: sameBool,
  Identity: identity,
  Dropout: dropout,
  Cast: cast,
  CastLike: castLike,
  QuantizeLinear: quantizeLinear,
  DequantizeLinear: dequantizeLinear,
  // broadcasting binary / variadic
  Add: binary(arith.add),
  Sub: binary(arith.sub),
  Mul: binary(arith.mul),
  Div: binary(arith.div),
  Pow: binary(),
  Mod: binary(),
  Min: variadic,
  Max: variadic,
  Sum: variadic,
  Mean: variadic,
  Equal: binary(undefined, 'bool'),
  Less: binary(undefined, 'bool'),
  Greater: binary(undefined, 'bool'),
  LessOrEqual: binary(undefined, 'bool'),
  GreaterOrEqual: binary(undefined, 'bool'),
  And: binary(undefined, 'bool'),
  Or: binary(undefined, 'bool'),
  Xor: binary(undefined, 'bool'),
  Where: where,
  // linear algebra
  MatMul: matMul,
  Gemm: gemm,
  Einsum: einsum,
  // convolution, pooling, normalisation
  Conv: spatialRule('conv'),
  ConvTranspose: convTranspose,
  MaxPool: spatialRule('pool'),
  AveragePool: spatialRule('pool'),
  LpPool: spatialRule('pool'),
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  MaxUnpool: maxUnpool,
  BatchNormalization: batchNorm,
  LayerNormalization: layerNorm,
  // shape manipulation
  Transpose: transpose,
  Reshape: reshape,
  Flatten: flatten,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Concat: concat,
  Split: split,
  Slice: slice,
  Gather: gather,
  GatherElements: gatherElements,
  ScatterElements: scatterElements,
  Expand: expand,
  Tile: tile,
  Pad: pad,
  Shape: shapeOp,
  Size: size,
  ConstantOfShape: constantOfShape,
  Range: range,
  Constant: constant,
  OneHot: oneHot,
  TopK: topK,
  // reductions
  ReduceSum: reduceRule(13),
  ReduceMean: reduceRule(18),
  ReduceMax: reduceRule(18),
  ReduceMin: reduceRule(18),
  ReduceProd: reduceRule(18),
  ReduceL1: reduceRule(18),
  ReduceL2: reduceRule(18),
  ReduceSumSquare: reduceRule(18),
  ReduceLogSumExp: reduceRule(18),
  ArgMax: argReduce,
  ArgMin: argReduce,
} satisfies Record<string, ShapeRule>;

/** Names of all operators with a shape rule, sorted. */
export const SUPPORTED_OPS: readonly string[] = Object.keys(SHAPE_RULES).sort();

/**
 * The engine's private operator domain: ops that exist only while a training step is compiled (a custom gradient),
 * expanded into standard ops before the model reaches a runtime. Not listed in {@link SUPPORTED_OPS}.
 */
export const QCBENCH_DOMAIN = 'qcbench';

/** Shape rules of the private-domain ops. */
const QCBENCH_SHAPE_RULES: Record<string, ShapeRule> = {
  BatchNormTrain: batchNormTrain,
};

/** The shape rule for an op, or throws QCB_ONNX_UNSUPPORTED_OP naming op, node and the supported list. */
export function shapeRule(node: Node, file?: string): ShapeRule {
  const rule =
    node.domain === '' || node.domain === 'ai.onnx'
      ? (SHAPE_RULES as Record<string, ShapeRule>)[node.opType]
      : node.domain === QCBENCH_DOMAIN && Object.hasOwn(QCBENCH_SHAPE_RULES, node.opType)
        ? QCBENCH_SHAPE_RULES[node.opType]
        : undefined;
  if (!rule) {
    const op = node.domain ? `${node.domain}.${node.opType}` : node.opType;
    throw new QcbError(
      'QCB_ONNX_UNSUPPORTED_OP',
      `operator ${op} (node '${node.name}') is not supported by the engine`,
      {
        file,
        key: node.name,
        value: op,
        allowed: SUPPORTED_OPS.join(', '),
        fix: 'export the model with operators from the supported list (e.g. a different opset or torch.onnx.export options), or ask for the operator to be added',
      },
    );
  }
  return rule;
}

/**
 * Infers dtype and static shape of every value and fills `graph.values` (overwriting node outputs; inputs and
 * initializers are taken from their declarations). Also returns the known contents of small constant-like values.
 *
 * @throws QCB_ONNX_UNSUPPORTED_OP for an operator without a shape rule; QCB_ONNX_GRAPH for a node reading a value
 *   that nothing defines, or for inconsistent shapes.
 */
export function inferShapes(graph: Graph, options: { file?: string } = {}): Map<string, Inferred> {
  const opts = { file: options.file ?? graph.source };
  const known = new Map<string, Inferred>();
  for (const v of graph.inputs) known.set(v.name, { dtype: v.dtype, shape: v.shape ? [...v.shape] : undefined });
  for (const [name, t] of graph.initializers) {
    known.set(name, { dtype: t.dtype, shape: [...t.dims], value: tensorKnownValue(t) });
  }
  for (const node of graph.nodes) {
    const ins = node.inputs.map((name) => {
      if (name === '') return undefined;
      const v = known.get(name);
      if (!v) {
        throw new QcbError(
          'QCB_ONNX_GRAPH',
          `node '${node.name}' (${node.opType}) reads '${name}', which no input, initializer or earlier node defines`,
          {
            file: opts.file,
            key: node.name,
            value: name,
            fix: 'nodes must be in topological order and every value must be defined before use',
          },
        );
      }
      return v;
    });
    const rule = shapeRule(node, opts.file);
    const opsetForNode = graph.opset;
    let k = 0;
    const ctx: ShapeCtx = {
      node,
      ins,
      opset: opsetForNode,
      fresh: (i) => `${node.name || node.outputs[0]}_d${i}_${k++}`,
    };
    let outs: Inferred[];
    try {
      outs = rule(ctx);
    } catch (e) {
      if (e instanceof QcbError && opts.file && e.context.file === undefined) {
        throw new QcbError(e.code, e.message, { ...e.context, file: opts.file, cause: e });
      }
      throw e;
    }
    node.outputs.forEach((o, i) => {
      if (o === '') return;
      const r = outs[i] ?? { dtype: outs[0]?.dtype ?? 'float32' };
      if (r.value && (r.value.length > KNOWN_LIMIT || (r.shape && r.shape.length > 1))) delete r.value;
      known.set(o, r);
    });
  }
  for (const [name, v] of known) {
    const vi: ValueInfo = { name, dtype: v.dtype };
    if (v.shape) vi.shape = v.shape;
    graph.values.set(name, vi);
  }
  // graph outputs get the inferred type where the declaration lacks a shape
  for (const o of graph.outputs) {
    const v = known.get(o.name);
    if (!v) {
      throw new QcbError(
        'QCB_ONNX_GRAPH',
        `graph output '${o.name}' is not produced by any node, input or initializer`,
        {
          file: opts.file,
          key: o.name,
          fix: 'name an existing value as the output',
        },
      );
    }
    if (!o.shape && v.shape) o.shape = v.shape;
    o.dtype = v.dtype;
  }
  return known;
}
