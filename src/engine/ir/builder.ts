/**
 * GraphBuilder: write models and losses in TypeScript as ONNX graphs of the IR.
 *
 * ```ts
 * const b = new GraphBuilder('probe');
 * const x = b.input('x', 'float32', ['N', 512]);
 * const w = b.param('head.weight', randn([10, 512], 0.01));
 * const y = b.gemm(x, w, b.param('head.bias', zeros([10])), { transB: true });
 * b.output(y, 'logits');
 * const g = b.build(); // shapes inferred
 * ```
 * Value names are readable and unique: `<hint>` or `<opType>_<k>` with a counter; `scope(prefix, fn)` prefixes them.
 */
import { QcbError } from '../../errors.js';
import { allocData, ONNX_TYPE_CODE } from '../onnx/dtypes.js';
import { mulberry32 } from '../../util/random.js';
import type { Attr, Dim, DType, Graph, Node, Tensor, TensorData } from './graph.js';
import { attr, emptyGraph, numel } from './graph.js';
import { inferShapes } from './shapes.js';

// ---------------------------------------------------------------------------------------------------------------
// tensor helpers

/** A zero tensor of `dims`. */
export function zeros(dims: number[], dtype: DType = 'float32'): Tensor {
  return { dtype, dims: [...dims], data: allocData(dtype, numel(dims)) };
}

/** A tensor filled with `value`. */
export function full(dims: number[], value: number, dtype: DType = 'float32'): Tensor {
  const t = zeros(dims, dtype);
  if (t.data instanceof BigInt64Array) t.data.fill(BigInt(value));
  else (t.data as Float32Array).fill(value);
  return t;
}

/** A tensor from a flat array (row-major) and dims; int64 values may be numbers or bigints. */
export function fromArray(
  values: ArrayLike<number> | ArrayLike<bigint>,
  dims: number[],
  dtype: DType = 'float32',
): Tensor {
  const n = numel(dims);
  if (values.length !== n) {
    throw new QcbError('QCB_INTERNAL', `fromArray: ${values.length} values for dims [${dims}] (${n} elements)`);
  }
  const data: TensorData = allocData(dtype, n);
  if (data instanceof BigInt64Array) for (let i = 0; i < n; i++) data[i] = BigInt(values[i] as number | bigint);
  else for (let i = 0; i < n; i++) (data as Float32Array)[i] = Number(values[i]);
  return { dtype, dims: [...dims], data };
}

/** A rank-0 tensor. */
export function scalar(value: number, dtype: DType = 'float32'): Tensor {
  return fromArray([value], [], dtype);
}

/** A 1-D int64 tensor (shapes, axes, indices). */
export function int64s(values: number[]): Tensor {
  return fromArray(values, [values.length], 'int64');
}

/**
 * Seeded pseudo-random normal tensor (mulberry32 + Box–Muller), scaled by `std`: reproducible initial weights.
 */
export function randn(dims: number[], std = 1, seed = 1): Tensor {
  const t = zeros(dims);
  const rnd = mulberry32(seed);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i += 2) {
    const u = Math.max(rnd(), 1e-12);
    const v = rnd();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    d[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < d.length) d[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return t;
}

/** Seeded uniform tensor in [lo, hi). */
export function randu(dims: number[], lo = 0, hi = 1, seed = 1): Tensor {
  const t = zeros(dims);
  const rnd = mulberry32(seed);
  const d = t.data as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * rnd();
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// builder

type AttrValue = number | number[] | string | string[] | Tensor | Attr;

/** Converts plain attribute values: integers → int(s), non-integers → float(s); use `attr.float(1)` to force. */
function toAttr(v: AttrValue): Attr {
  if (typeof v === 'object' && v !== null && 'type' in v && !('dims' in v)) return v as Attr;
  if (typeof v === 'number') return Number.isInteger(v) ? attr.int(v) : attr.float(v);
  if (typeof v === 'string') return attr.string(v);
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return attr.strings(v as string[]);
    const nums = v as number[];
    return nums.every((x) => Number.isInteger(x)) ? attr.ints(nums) : attr.floats(nums);
  }
  return attr.tensor(v as Tensor);
}

export interface ConvOpts {
  strides?: number[];
  pads?: number[];
  dilations?: number[];
  group?: number;
  autoPad?: 'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID';
}

export interface PoolOpts {
  kernel: number[];
  strides?: number[];
  pads?: number[];
  ceilMode?: boolean;
}

/** Builds an IR graph op by op. Values are referred to by name (string). */
export class GraphBuilder {
  readonly graph: Graph;
  private readonly used = new Set<string>();
  private readonly counters = new Map<string, number>();
  private prefix = '';
  private constCache = new Map<string, string>();

  /**
   * @param nameOrGraph a name for a new empty graph, or an existing graph to append to (its value names are
   *   reserved so new names never collide)
   */
  constructor(nameOrGraph: string | Graph = 'graph', opset = 17) {
    if (typeof nameOrGraph === 'string') this.graph = emptyGraph(nameOrGraph, opset);
    else {
      this.graph = nameOrGraph;
      const g = nameOrGraph;
      for (const v of g.inputs) this.used.add(v.name);
      for (const v of g.outputs) this.used.add(v.name);
      for (const k of g.initializers.keys()) this.used.add(k);
      for (const k of g.values.keys()) this.used.add(k);
      for (const n of g.nodes) {
        this.used.add(n.name);
        for (const o of n.outputs) this.used.add(o);
        for (const i of n.inputs) this.used.add(i);
      }
    }
  }

  /** A fresh unique value name from a hint (`conv` → `conv`, `conv_1`, …), inside the current scope. */
  fresh(hint: string): string {
    const base = this.prefix + hint.replace(/[^A-Za-z0-9_./:-]/g, '_');
    if (!this.used.has(base)) {
      this.used.add(base);
      return base;
    }
    let k = this.counters.get(base) ?? 1;
    while (this.used.has(`${base}_${k}`)) k++;
    this.counters.set(base, k + 1);
    const n = `${base}_${k}`;
    this.used.add(n);
    return n;
  }

  /** Runs `fn` with value names prefixed by `prefix/` (nested scopes join). */
  scope<T>(prefix: string, fn: () => T): T {
    const prev = this.prefix;
    this.prefix = `${prev}${prefix}/`;
    try {
      return fn();
    } finally {
      this.prefix = prev;
    }
  }

  private claim(name: string): string {
    if (this.used.has(name))
      throw new QcbError('QCB_ONNX_GRAPH', `value name '${name}' is already used in graph '${this.graph.name}'`, {
        key: name,
        fix: 'choose a unique name',
      });
    this.used.add(name);
    return name;
  }

  /** Declares a graph input (a data feed). */
  input(name: string, dtype: DType, shape: Dim[]): string {
    this.claim(name);
    this.graph.inputs.push({ name, dtype, shape: [...shape] });
    return name;
  }

  /** Declares a graph input under a fresh name derived from `hint` (when the exact name may be taken). */
  freshInput(hint: string, dtype: DType, shape: Dim[]): string {
    const name = this.fresh(hint);
    this.graph.inputs.push({ name, dtype, shape: [...shape] });
    return name;
  }

  /** Declares a named parameter (initializer): weights the training step may update. */
  param(name: string, t: Tensor): string {
    this.claim(name);
    this.graph.initializers.set(name, t);
    return name;
  }

  /** A constant tensor as an initializer (deduplicated for small tensors by content). */
  constant(t: Tensor, hint = 'const'): string {
    const key =
      t.data.length <= 16
        ? `${t.dtype}|${t.dims}|${Array.from(t.data as ArrayLike<number | bigint>, String)}`
        : undefined;
    if (key) {
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const name = this.fresh(hint);
    this.graph.initializers.set(name, t);
    if (key) this.constCache.set(key, name);
    return name;
  }

  /** A float32 scalar constant. */
  scalar(v: number, dtype: DType = 'float32'): string {
    return this.constant(scalar(v, dtype), `c_${String(v).replace(/[^0-9a-z]/gi, '_')}`);
  }

  /** A 1-D int64 constant (axes, shapes). */
  ints(v: number[]): string {
    return this.constant(int64s(v), 'ints');
  }

  /**
   * Appends one node and returns its output names.
   * @param hint readable base for output names (default: the op type in lower case)
   */
  op(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    nOutputs = 1,
    hint?: string,
    domain = '',
  ): string[] {
    const base = hint ?? opType.charAt(0).toLowerCase() + opType.slice(1);
    const outputs = Array.from({ length: nOutputs }, (_, i) => this.fresh(nOutputs === 1 ? base : `${base}_o${i}`));
    const a: Record<string, Attr> = {};
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = toAttr(v);
    const node: Node = { opType, domain, name: this.fresh(`${base}_node`), inputs, outputs, attrs: a };
    this.graph.nodes.push(node);
    return outputs;
  }

  /** One-output op. */
  op1(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint?: string): string {
    return this.op(opType, inputs, attrs, 1, hint)[0];
  }

  /** Marks a value as a graph output (renaming via an Identity when `name` differs). */
  output(value: string, name?: string): string {
    let v = value;
    if (name && name !== value) {
      this.claim(name);
      this.graph.nodes.push({
        opType: 'Identity',
        domain: '',
        name: this.fresh(`${name}_node`),
        inputs: [value],
        outputs: [name],
        attrs: {},
      });
      v = name;
    }
    this.graph.outputs.push({ name: v, dtype: 'float32' });
    return v;
  }

  /** Finishes the graph: runs shape inference (fills `graph.values`) and returns it. */
  build(): Graph {
    inferShapes(this.graph);
    return this.graph;
  }

  // ----- typed helpers (shapes: N×C×H×W for images, N×D for features)

  add(a: string, b: string): string {
    return this.op1('Add', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.op1('Sub', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op1('Mul', [a, b]);
  }
  div(a: string, b: string): string {
    return this.op1('Div', [a, b]);
  }
  pow(a: string, b: string): string {
    return this.op1('Pow', [a, b]);
  }
  neg(x: string): string {
    return this.op1('Neg', [x]);
  }
  exp(x: string): string {
    return this.op1('Exp', [x]);
  }
  log(x: string): string {
    return this.op1('Log', [x]);
  }
  sqrt(x: string): string {
    return this.op1('Sqrt', [x]);
  }
  abs(x: string): string {
    return this.op1('Abs', [x]);
  }
  relu(x: string): string {
    return this.op1('Relu', [x]);
  }
  sigmoid(x: string): string {
    return this.op1('Sigmoid', [x]);
  }
  tanh(x: string): string {
    return this.op1('Tanh', [x]);
  }
  identity(x: string, hint?: string): string {
    return this.op1('Identity', [x], {}, hint);
  }
  /** Softmax along `axis` (default last). */
  softmax(x: string, axis = -1): string {
    return this.op1('Softmax', [x], { axis });
  }
  logSoftmax(x: string, axis = -1): string {
    return this.op1('LogSoftmax', [x], { axis });
  }
  /** A×B with numpy broadcasting of batch dims. */
  matMul(a: string, b: string): string {
    return this.op1('MatMul', [a, b]);
  }
  /** alpha·A'·B' + beta·C (A: M×K, B: K×N or N×K with transB). */
  gemm(
    a: string,
    b: string,
    c?: string,
    o: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
  ): string {
    const attrs: Record<string, AttrValue> = {};
    if (o.transA) attrs.transA = 1;
    if (o.transB) attrs.transB = 1;
    if (o.alpha !== undefined) attrs.alpha = attr.float(o.alpha);
    if (o.beta !== undefined) attrs.beta = attr.float(o.beta);
    return this.op1('Gemm', c ? [a, b, c] : [a, b], attrs);
  }
  /** 2-D convolution: X N×C×H×W, W K×(C/group)×kh×kw, optional bias K. */
  conv(x: string, w: string, bias?: string, o: ConvOpts = {}): string {
    const attrs: Record<string, AttrValue> = {};
    if (o.strides) attrs.strides = o.strides;
    if (o.pads) attrs.pads = o.pads;
    if (o.dilations) attrs.dilations = o.dilations;
    if (o.group && o.group !== 1) attrs.group = o.group;
    if (o.autoPad && o.autoPad !== 'NOTSET') attrs.auto_pad = o.autoPad;
    return this.op1('Conv', bias ? [x, w, bias] : [x, w], attrs);
  }
  maxPool(x: string, o: PoolOpts): string {
    return this.op('MaxPool', [x], {
      kernel_shape: o.kernel,
      strides: o.strides,
      pads: o.pads,
      ceil_mode: o.ceilMode ? 1 : undefined,
    } as Record<string, AttrValue>)[0];
  }
  averagePool(x: string, o: PoolOpts): string {
    return this.op1('AveragePool', [x], {
      kernel_shape: o.kernel,
      strides: o.strides,
      pads: o.pads,
      ceil_mode: o.ceilMode ? 1 : undefined,
    } as Record<string, AttrValue>);
  }
  globalAveragePool(x: string): string {
    return this.op1('GlobalAveragePool', [x]);
  }
  flatten(x: string, axis = 1): string {
    return this.op1('Flatten', [x], { axis });
  }
  reshape(x: string, shape: number[]): string {
    return this.op1('Reshape', [x, this.ints(shape)]);
  }
  transpose(x: string, perm: number[]): string {
    return this.op1('Transpose', [x], { perm });
  }
  concat(xs: string[], axis: number): string {
    return this.op1('Concat', xs, { axis });
  }
  /** Sum over `axes` (all when omitted); opset ≥ 13 takes axes as an input. */
  reduceSum(x: string, axes?: number[], keepdims = true): string {
    return this.op1('ReduceSum', axes ? [x, this.ints(axes)] : [x], { keepdims: keepdims ? 1 : 0 });
  }
  /** Mean over `axes`; axes as attribute below opset 18, as input from 18. */
  reduceMean(x: string, axes?: number[], keepdims = true): string {
    return this.reduce('ReduceMean', x, axes, keepdims);
  }
  reduceMax(x: string, axes?: number[], keepdims = true): string {
    return this.reduce('ReduceMax', x, axes, keepdims);
  }
  reduceL2(x: string, axes?: number[], keepdims = true): string {
    return this.reduce('ReduceL2', x, axes, keepdims);
  }
  private reduce(op: string, x: string, axes: number[] | undefined, keepdims: boolean): string {
    if (this.graph.opset >= 18) return this.op1(op, axes ? [x, this.ints(axes)] : [x], { keepdims: keepdims ? 1 : 0 });
    const attrs: Record<string, AttrValue> = { keepdims: keepdims ? 1 : 0 };
    if (axes) attrs.axes = axes;
    return this.op1(op, [x], attrs);
  }
  /** Batch normalisation (inference form): X N×C×…, scale/bias/mean/var C. */
  batchNorm(
    x: string,
    scale: string,
    bias: string,
    mean: string,
    variance: string,
    epsilon = 1e-5,
    momentum = 0.9,
  ): string {
    return this.op1('BatchNormalization', [x, scale, bias, mean, variance], {
      epsilon: attr.float(epsilon),
      momentum: attr.float(momentum),
    });
  }
  layerNorm(x: string, scale: string, bias?: string, axis = -1, epsilon = 1e-5): string {
    return this.op1('LayerNormalization', bias ? [x, scale, bias] : [x, scale], { axis, epsilon: attr.float(epsilon) });
  }
  cast(x: string, to: DType): string {
    return this.op1('Cast', [x], { to: ONNX_TYPE_CODE[to] });
  }
}
