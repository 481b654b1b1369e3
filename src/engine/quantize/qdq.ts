/**
 * QDQ rewriting: QuantizeLinear → DequantizeLinear pairs on the activations around the operators with an int8
 * path, int8 weights behind a DequantizeLinear, so that onnxruntime's CPU optimiser fuses each
 * `DQ → op → Q` group into an integer kernel (QLinearConv, QGemm, QLinearMatMul, QLinearAdd,
 * QLinearGlobalAveragePool, uint8 MaxPool) when the session is created. The file stays a standard ONNX model.
 *
 * Formats (onnxruntime's quantisation guide, "QDQ format", CPU x64: U8S8):
 * - activations: uint8 asymmetric, one scale and zero point per tensor: scale = (hi − lo) / 255,
 *   zero point = round(−lo / scale), with [lo, hi] the calibrated range widened to contain 0 (int8 optional);
 * - weights: int8 symmetric per output channel (axis 0 of a Conv weight, the output axis of a Gemm's B):
 *   scale[k] = max|W[k]| / 127, zero point 0;
 * - biases: int32 with scale x_scale · w_scale[k], zero point 0 (the accumulator's scale, as QLinearConv adds it).
 * A Relu whose input is the only use of a quantised Conv / Gemm / MatMul / Add output is absorbed: the producer's
 * output is quantised with the Relu output's range, whose zero point is the type's minimum, so the clamp of the
 * quantisation is the Relu. MaxPool and the shape operators pass quantised values through with their input's
 * scale (onnxruntime drops their QDQ pairs and runs them on uint8).
 */
import { QcbError } from '../../errors.js';
import { floatAttr, intAttr } from '../ir/attrs.js';
import { attr, type Graph, type Node, type Tensor } from '../ir/graph.js';
import type { Range } from './calibrate.js';
import { consumersOf } from './fold.js';

export type ActivationType = 'uint8' | 'int8';

/** Operators computing with a constant weight: quantised with int8 weights. */
const COMPUTE_OPS = new Set(['Conv', 'Gemm', 'MatMul']);
/** Operators with an integer kernel and their own output scale. */
const REQUANT_OPS = new Set(['Add', 'GlobalAveragePool', 'AveragePool']);
/** Operators that pass quantised values through unchanged in scale. */
const PASS_OPS = new Set(['MaxPool', 'Flatten', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze']);

/** Producers whose quantised output can take over a following Relu. */
const ABSORBS_RELU = new Set(['Conv', 'Gemm', 'MatMul', 'Add']);

/** Operator types quantisation knows an int8 path for (the rest stay fp32 and are reported). */
export const INT8_OPS: readonly string[] = [...COMPUTE_OPS, ...REQUANT_OPS, ...PASS_OPS, 'Relu'];

/** What the QDQ rewrite decided (before calibration). */
export interface QdqPlan {
  /** Nodes run as integer kernels. */
  int8: Set<Node>;
  /** Relu nodes absorbed into their producer's quantisation. */
  absorbed: Map<Node, Node>;
  /** Quantised activation tensors (names in the fp32 graph). */
  tensors: string[];
  /** Tensors whose scale is their input's (outputs of pass-through ops) → that input. */
  passFrom: Map<string, string>;
}

function isFloatActivation(g: Graph, name: string): boolean {
  if (!name || g.initializers.has(name)) return false;
  const v = g.values.get(name) ?? g.inputs.find((i) => i.name === name);
  return v?.dtype === 'float32';
}

function constF32(g: Graph, name: string | undefined, rank?: number): Tensor | undefined {
  const t = name ? g.initializers.get(name) : undefined;
  return t && t.dtype === 'float32' && (rank === undefined || t.dims.length === rank) ? t : undefined;
}

/** Whether a Conv / Gemm / MatMul has the constant weight (and bias) the integer kernels need. */
function computeEligible(g: Graph, n: Node): boolean {
  if (!isFloatActivation(g, n.inputs[0])) return false;
  if (n.opType === 'Conv') {
    const w = constF32(g, n.inputs[1]);
    return !!w && w.dims.length === 4 && (!n.inputs[2] || !!constF32(g, n.inputs[2], 1));
  }
  if (n.opType === 'Gemm') {
    const ok = intAttr(n, 'transA', 0) === 0 && floatAttr(n, 'alpha', 1) === 1 && floatAttr(n, 'beta', 1) === 1;
    const nOut = constF32(g, n.inputs[1], 2)?.dims[intAttr(n, 'transB', 0) ? 0 : 1];
    return ok && nOut !== undefined && (!n.inputs[2] || constF32(g, n.inputs[2], 1)?.dims[0] === nOut);
  }
  return !!constF32(g, n.inputs[1], 2);
}

/**
 * Decides which nodes run in int8 (eligible ops among those `include` accepts, in topological order; an op that
 * only re-scales or passes values through is taken only when one of its inputs comes from an int8 node).
 */
export function planQdq(g: Graph, include: (n: Node) => boolean = () => true): QdqPlan {
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const consumers = consumersOf(g);
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const int8 = new Set<Node>();
  const absorbed = new Map<Node, Node>();
  const fromInt8 = (t: string) => {
    const p = producer.get(t);
    return !!p && (int8.has(p) || absorbed.has(p));
  };
  for (const n of g.nodes) {
    if (n.domain !== '' || !include(n) || n.outputs.length !== 1) continue;
    if (COMPUTE_OPS.has(n.opType)) {
      if (computeEligible(g, n)) int8.add(n);
    } else if (REQUANT_OPS.has(n.opType)) {
      const acts = n.inputs.filter((i) => isFloatActivation(g, i));
      if (acts.length === n.inputs.length && acts.some(fromInt8)) int8.add(n);
    } else if (PASS_OPS.has(n.opType)) {
      if (isFloatActivation(g, n.inputs[0]) && fromInt8(n.inputs[0])) int8.add(n);
    } else if (n.opType === 'Relu') {
      const p = producer.get(n.inputs[0]);
      if (!p || !int8.has(p) || !ABSORBS_RELU.has(p.opType)) continue;
      if ((consumers.get(n.inputs[0]) ?? []).length !== 1 || graphOutputs.has(n.inputs[0])) continue;
      absorbed.set(n, p);
    }
  }
  // the value each int8 node finally writes (a Relu's output when the Relu is absorbed)
  const finalOut = new Map<Node, string>();
  for (const n of int8) finalOut.set(n, n.outputs[0]);
  for (const [r, p] of absorbed) finalOut.set(p, r.outputs[0]);
  const tensors: string[] = [];
  const seen = new Set<string>();
  const passFrom = new Map<string, string>();
  const add = (t: string) => {
    if (!seen.has(t)) {
      seen.add(t);
      tensors.push(t);
    }
  };
  for (const n of g.nodes) {
    if (!int8.has(n)) continue;
    const nIn = COMPUTE_OPS.has(n.opType) ? 1 : n.inputs.length;
    for (const i of n.inputs.slice(0, nIn)) if (isFloatActivation(g, i)) add(i);
    const out = finalOut.get(n)!;
    add(out);
    if (PASS_OPS.has(n.opType)) passFrom.set(out, n.inputs[0]);
  }
  return { int8, absorbed, tensors, passFrom };
}

/** Quantisation parameters of one activation tensor. */
export interface ActParams {
  scale: number;
  zeroPoint: number;
}

/** Asymmetric parameters of a range for `dtype` (see module doc). */
export function activationParams(r: Range, dtype: ActivationType): ActParams {
  const lo = Math.min(0, r.lo);
  let hi = Math.max(0, r.hi);
  if (!(hi - lo > 1e-12)) hi = lo + 1e-6;
  const scale = (hi - lo) / 255;
  const qmin = dtype === 'uint8' ? 0 : -128;
  const zp = Math.min(qmin + 255, Math.max(qmin, Math.round(qmin - lo / scale)));
  return { scale, zeroPoint: zp };
}

/** Symmetric int8 quantisation of W along `axis` (scales per slice, zero points 0). */
export function quantizeWeight(w: Tensor, axis: number): { q: Int8Array; scales: Float32Array; maxAbsError: number } {
  const dims = w.dims;
  const K = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const data = w.data as Float32Array;
  const amax = new Float32Array(K);
  for (let i = 0; i < data.length; i++) {
    const k = Math.floor(i / inner) % K;
    const a = Math.abs(data[i]);
    if (a > amax[k]) amax[k] = a;
  }
  const scales = Float32Array.from(amax, (a) => (a > 0 ? a / 127 : 1));
  const q = new Int8Array(data.length);
  let err = 0;
  for (let i = 0; i < data.length; i++) {
    const s = scales[Math.floor(i / inner) % K];
    const v = Math.max(-127, Math.min(127, Math.round(data[i] / s)));
    q[i] = v;
    err = Math.max(err, Math.abs(v * s - data[i]));
  }
  return { q, scales, maxAbsError: err };
}

/**
 * Rewrites `g` (fp32, BatchNorm folded) to its QDQ form, in place, with the calibrated ranges of `plan.tensors`.
 * @throws QCB_INTERNAL when a planned tensor has no range
 */
export function applyQdq(g: Graph, plan: QdqPlan, ranges: Map<string, Range>, dtype: ActivationType): void {
  const used = new Set<string>([...g.initializers.keys(), ...g.inputs.map((v) => v.name)]);
  for (const n of g.nodes) {
    used.add(n.name);
    for (const o of n.outputs) used.add(o);
  }
  const fresh = (hint: string) => {
    let name = hint;
    for (let k = 1; used.has(name); k++) name = `${hint}_${k}`;
    used.add(name);
    return name;
  };
  const init = (hint: string, t: Tensor) => {
    const name = fresh(hint);
    g.initializers.set(name, t);
    return name;
  };
  const params = new Map<string, ActParams & { scaleName: string; zeroName: string }>();
  const paramsOf = (t: string): ActParams & { scaleName: string; zeroName: string } => {
    const hit = params.get(t);
    if (hit) return hit;
    const src = plan.passFrom.get(t);
    let p: ActParams & { scaleName: string; zeroName: string };
    if (src !== undefined) p = paramsOf(src);
    else {
      const r = ranges.get(t);
      if (!r)
        throw new QcbError('QCB_INTERNAL', `no calibrated range for tensor '${t}'`, { fix: 'please report this' });
      const a = activationParams(r, dtype);
      p = {
        ...a,
        scaleName: init(`${t}/scale`, { dtype: 'float32', dims: [], data: Float32Array.of(a.scale) }),
        zeroName: init(
          `${t}/zero_point`,
          dtype === 'uint8'
            ? { dtype: 'uint8', dims: [], data: Uint8Array.of(a.zeroPoint) }
            : { dtype: 'int8', dims: [], data: Int8Array.of(a.zeroPoint) },
        ),
      };
    }
    params.set(t, p);
    return p;
  };
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  // absorbed Relus: their producer writes the Relu's output directly
  for (const [r, p] of plan.absorbed) p.outputs = [r.outputs[0]];
  for (const [r, p] of plan.absorbed) {
    producer.set(r.outputs[0], p);
    producer.delete(r.inputs[0]);
  }
  const quantised = new Set(plan.tensors);
  /** fp32-produced (or graph-input) tensors: the name int8 consumers read instead. */
  const dqName = new Map<string, string>();
  const qdqNodes = (x: string, t: string, out: string): Node[] => {
    const p = paramsOf(t);
    const q = fresh(`${t}/quantized`);
    return [
      {
        opType: 'QuantizeLinear',
        domain: '',
        name: fresh(`${t}/QuantizeLinear`),
        inputs: [x, p.scaleName, p.zeroName],
        outputs: [q],
        attrs: {},
      },
      {
        opType: 'DequantizeLinear',
        domain: '',
        name: fresh(`${t}/DequantizeLinear`),
        inputs: [q, p.scaleName, p.zeroName],
        outputs: [out],
        attrs: {},
      },
    ];
  };
  const out: Node[] = [];
  const emitAfter = (t: string) => {
    const pr = producer.get(t);
    if (pr && plan.int8.has(pr)) {
      // the producer writes t's fp32 value under a new name; the dequantised value keeps t's name for every reader
      const raw = fresh(`${t}/float`);
      pr.outputs = pr.outputs.map((o) => (o === t ? raw : o));
      out.push(...qdqNodes(raw, t, t));
    } else {
      const dq = fresh(`${t}/dequantized`);
      dqName.set(t, dq);
      out.push(...qdqNodes(t, t, dq));
    }
  };
  const inputNames = new Set(g.inputs.map((v) => v.name));
  for (const t of plan.tensors) if (inputNames.has(t)) emitAfter(t);
  for (const n of g.nodes) {
    if (plan.absorbed.has(n)) continue;
    if (plan.int8.has(n)) {
      const x = n.inputs[0];
      const nIn = COMPUTE_OPS.has(n.opType) ? 1 : n.inputs.length;
      n.inputs = n.inputs.map((i, k) => (k < nIn && dqName.has(i) ? dqName.get(i)! : i));
      if (COMPUTE_OPS.has(n.opType)) quantizeWeights(n, paramsOf(x).scale);
    }
    out.push(n);
    for (const o of [...n.outputs]) if (quantised.has(o)) emitAfter(o);
  }
  g.nodes = out;
  // the fp32 weights and biases now live as int8 / int32 initializers
  const read = new Set<string>(g.outputs.map((v) => v.name));
  for (const n of g.nodes) for (const i of n.inputs) read.add(i);
  for (const k of [...g.initializers.keys()]) if (!read.has(k)) g.initializers.delete(k);

  /** Int8 weight and int32 bias of a Conv / Gemm / MatMul behind DequantizeLinear; `xs` is its input's scale. */
  function quantizeWeights(n: Node, xs: number): void {
    const w = g.initializers.get(n.inputs[1])!;
    const axis = n.opType === 'Conv' || (n.opType === 'Gemm' && intAttr(n, 'transB', 0) === 1) ? 0 : 1;
    const perChannel = n.opType !== 'MatMul';
    // MatMul: one scale for the whole matrix (the integer MatMul kernels take a per-tensor B scale)
    const { q, scales } = perChannel
      ? quantizeWeight(w, axis)
      : quantizeWeight({ dtype: 'float32', dims: [1, w.data.length], data: w.data }, 0);
    const K = scales.length;
    const base = n.name || n.outputs[0];
    const wq = init(`${base}/weight_int8`, { dtype: 'int8', dims: [...w.dims], data: q });
    const ws = init(`${base}/weight_scale`, { dtype: 'float32', dims: perChannel ? [K] : [], data: scales });
    const wz = init(`${base}/weight_zero_point`, {
      dtype: 'int8',
      dims: perChannel ? [K] : [],
      data: new Int8Array(K),
    });
    const wdq = fresh(`${base}/weight_dequantized`);
    out.push({
      opType: 'DequantizeLinear',
      domain: '',
      name: fresh(`${base}/weight_DequantizeLinear`),
      inputs: [wq, ws, wz],
      outputs: [wdq],
      attrs: perChannel ? { axis: attr.int(axis) } : {},
    });
    const inputs = [n.inputs[0], wdq];
    const b = n.inputs[2] ? g.initializers.get(n.inputs[2]) : undefined;
    if (b) {
      const bd = b.data as Float32Array;
      const bs = Float32Array.from(bd, (_, k) => xs * scales[perChannel ? k : 0]);
      const bq = Int32Array.from(bd, (v, k) => Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(v / bs[k]))));
      const bqn = init(`${base}/bias_int32`, { dtype: 'int32', dims: [bd.length], data: bq });
      const bsn = init(`${base}/bias_scale`, { dtype: 'float32', dims: [bd.length], data: bs });
      const bzn = init(`${base}/bias_zero_point`, {
        dtype: 'int32',
        dims: [bd.length],
        data: new Int32Array(bd.length),
      });
      const bdq = fresh(`${base}/bias_dequantized`);
      out.push({
        opType: 'DequantizeLinear',
        domain: '',
        name: fresh(`${base}/bias_DequantizeLinear`),
        inputs: [bqn, bsn, bzn],
        outputs: [bdq],
        attrs: { axis: attr.int(0) },
      });
      inputs.push(bdq);
    }
    n.inputs = inputs;
  }
}
