/**
 * Helpers shared by the gradient rules: constants, runtime shapes, un-broadcasting, axis handling.
 * Rules emit only opset-17 default-domain ops that onnxruntime's CPU provider implements.
 */
import { QcbError } from '../../errors.js';
import type { Attr, Dim, DType, Node, Tensor } from '../ir/graph.js';
import { attr } from '../ir/graph.js';
import { ONNX_TYPE_CODE } from '../onnx/dtypes.js';
import type { GradEmitter } from './types.js';

/** A scalar (dims []) tensor of a float dtype. float16 is not emitted by rules (they compute in the forward dtype). */
export function scalarTensor(value: number, dtype: DType = 'float32'): Tensor {
  if (dtype === 'float64') return { dtype, dims: [], data: new Float64Array([value]) };
  if (dtype === 'int64') return { dtype, dims: [], data: new BigInt64Array([BigInt(value)]) };
  if (dtype === 'int32') return { dtype, dims: [], data: new Int32Array([value]) };
  return { dtype: 'float32', dims: [], data: new Float32Array([value]) };
}

/** A scalar constant value in the dtype of forward value `like`. */
export function scalar(g: GradEmitter, value: number, like: string): string {
  return g.constant(scalarTensor(value, g.info(like).dtype));
}

/** A 1-D int64 constant (axes, shapes, pads, starts…). */
export function ints(g: GradEmitter, values: readonly number[]): string {
  return g.constant({ dtype: 'int64', dims: [values.length], data: BigInt64Array.from(values.map((v) => BigInt(v))) });
}

/** Static shape of a value; throws when the rank is unknown. */
export function shapeOf(g: GradEmitter, name: string, node: Node): Dim[] {
  const s = g.info(name).shape;
  if (!s) {
    throw new QcbError(
      'QCB_ONNX_GRAPH',
      `the rank of '${name}' (input/output of ${node.opType} node '${node.name}') is unknown`,
      {
        key: node.name,
        fix: 'run shape inference (inferShapes) before appendBackward, or give the graph inputs full shapes',
      },
    );
  }
  return s;
}

/** True when every dim is a number. */
export function isStatic(dims: readonly Dim[]): dims is number[] {
  return dims.every((d) => typeof d === 'number');
}

/** The shape of `name` as an int64 1-D value: a constant when static, else a runtime Shape op (symbolic dims). */
export function shapeValue(g: GradEmitter, name: string, node: Node): string {
  const s = shapeOf(g, name, node);
  return isStatic(s) ? ints(g, s) : g.op('Shape', [name])[0];
}

/** Spatial dims that must be numbers for a rule (padding and kernel arithmetic). */
export function staticDims(dims: readonly Dim[], node: Node, what: string): number[] {
  return dims.map((d) => {
    if (typeof d !== 'number') {
      throw new QcbError(
        'QCB_ONNX_GRAPH',
        `${node.opType} node '${node.name}' needs a static ${what}, got symbolic '${d}'`,
        {
          key: node.name,
          value: dims,
          fix: 'export the model with fixed spatial sizes (only the batch dimension may be symbolic)',
        },
      );
    }
    return d;
  });
}

/** Normalises a possibly negative axis for rank r. */
export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Integer values of a constant input (initializer or Constant node), or undefined when not constant/omitted. */
export function constInts(g: GradEmitter, name: string | undefined): number[] | undefined {
  if (!name || !g.constValue) return undefined;
  const t = g.constValue(name);
  if (!t) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

/** Float values of a constant input, or undefined. */
export function constFloats(g: GradEmitter, name: string | undefined): number[] | undefined {
  return constInts(g, name);
}

/** Like constInts but throws a clear error when the input is not constant (rules that need static axes). */
export function requireConstInts(g: GradEmitter, node: Node, index: number, what: string): number[] {
  const v = constInts(g, node.inputs[index]);
  if (v === undefined) {
    throw new QcbError(
      'QCB_ONNX_UNSUPPORTED_OP',
      `${node.opType} node '${node.name}': ${what} (input ${index}) must be a constant for differentiation`,
      {
        key: node.name,
        value: node.inputs[index],
        fix: 'constant-fold the model (e.g. export with do_constant_folding=True or run onnx-simplifier)',
      },
    );
  }
  return v;
}

/**
 * Sums gradient `grad` (shaped like a broadcast result `outShape`) down to the shape `inShape` of an input
 * (numpy broadcasting: leading dims summed away, dims of size 1 summed with keepdims).
 */
export function unbroadcast(g: GradEmitter, grad: string, outShape: readonly Dim[], inShape: readonly Dim[]): string {
  const lead = outShape.length - inShape.length;
  const keepAxes: number[] = [];
  for (let i = 0; i < inShape.length; i++) {
    const o = outShape[i + lead];
    if (inShape[i] === 1 && o !== 1) keepAxes.push(i + lead);
  }
  const leadAxes = Array.from({ length: lead }, (_, i) => i);
  const axes = [...leadAxes, ...keepAxes];
  if (axes.length === 0) return grad;
  let r = g.op('ReduceSum', [grad, ints(g, axes)], { keepdims: attr.int(1) })[0];
  if (lead > 0) r = g.op('Squeeze', [r, ints(g, leadAxes)])[0];
  return r;
}

/** Elementwise helpers. */
export const mul = (g: GradEmitter, a: string, b: string): string => g.op('Mul', [a, b])[0];
export const div = (g: GradEmitter, a: string, b: string): string => g.op('Div', [a, b])[0];
export const add = (g: GradEmitter, a: string, b: string): string => g.op('Add', [a, b])[0];
export const sub = (g: GradEmitter, a: string, b: string): string => g.op('Sub', [a, b])[0];
export const neg = (g: GradEmitter, a: string): string => g.op('Neg', [a])[0];

/** Zeros shaped like forward value `like` (ConstantOfShape works with symbolic dims). */
export function zerosLike(g: GradEmitter, like: string, node: Node): string {
  const dtype = g.info(like).dtype;
  return g.op('ConstantOfShape', [shapeValue(g, like, node)], {
    value: attr.tensor({ ...scalarTensor(0, dtype), dims: [1] }),
  })[0];
}

/** Casts a bool mask to the float dtype of `like`. */
export function castLike(g: GradEmitter, x: string, like: string): string {
  return g.op('Cast', [x], { to: attr.int(ONNX_TYPE_CODE[g.info(like).dtype]) })[0];
}

/** True for dtypes that carry gradients. */
export function isFloat(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16';
}

/** Attribute record helper that drops undefined entries. */
export function attrs(rec: Record<string, Attr | undefined>): Record<string, Attr> {
  const out: Record<string, Attr> = {};
  for (const [k, v] of Object.entries(rec)) if (v !== undefined) out[k] = v;
  return out;
}
