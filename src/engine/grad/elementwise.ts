/**
 * Gradient rules for broadcasting elementwise arithmetic: Add, Sub, Mul, Div, Pow, Sqrt, Exp, Log, Neg, Abs,
 * Reciprocal, Min, Max, Where, Cast, Sum, Mean. Gradients of broadcast operands are summed back to their shapes.
 */
import { attr } from '../ir/graph.js';
import type { GradRule } from './types.js';
import { ONNX_TYPE_CODE } from '../onnx/dtypes.js';
import { castLike, isFloat, scalar, shapeOf, unbroadcast } from './util.js';

/** Output-shaped gradient `d` of input i, summed to that input's shape. */
const fit: (g: Parameters<GradRule>[2], node: Parameters<GradRule>[0], i: number, d: string) => string = (
  g,
  node,
  i,
  d,
) => unbroadcast(g, d, shapeOf(g, node.outputs[0], node), shapeOf(g, node.inputs[i], node));

export const addGrad: GradRule = (node, [dY], g) => (dY ? [fit(g, node, 0, dY), fit(g, node, 1, dY)] : [null, null]);

export const subGrad: GradRule = (node, [dY], g) =>
  dY ? [fit(g, node, 0, dY), fit(g, node, 1, g.op('Neg', [dY])[0])] : [null, null];

export const mulGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null];
  const [a, b] = node.inputs;
  return [fit(g, node, 0, g.op('Mul', [dY, b])[0]), fit(g, node, 1, g.op('Mul', [dY, a])[0])];
};

/** Div y = a/b: da = dY/b, db = −dY·y/b. */
export const divGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null];
  const [, b] = node.inputs;
  const da = g.op('Div', [dY, b])[0];
  const db = g.op('Neg', [g.op('Mul', [da, node.outputs[0]])[0]])[0];
  return [fit(g, node, 0, da), fit(g, node, 1, db)];
};

/** Pow y = a^b: da = dY·b·a^(b−1), db = dY·y·ln a. */
export const powGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null];
  const [a, b] = node.inputs;
  const y = node.outputs[0];
  let bf = b;
  if (g.info(b).dtype !== g.info(a).dtype) bf = castLike(g, b, a);
  const bm1 = g.op('Sub', [bf, scalar(g, 1, a)])[0];
  const da = g.op('Mul', [dY, g.op('Mul', [bf, g.op('Pow', [a, bm1])[0]])[0]])[0];
  const db = isFloat(g.info(b).dtype)
    ? fit(g, node, 1, g.op('Mul', [dY, g.op('Mul', [y, g.op('Log', [a])[0]])[0]])[0])
    : null;
  return [fit(g, node, 0, da), db];
};

/** Sqrt: dx = dY/(2y). */
export const sqrtGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const y = node.outputs[0];
  return [g.op('Div', [g.op('Mul', [dY, scalar(g, 0.5, y)])[0], y])[0]];
};

/** Exp: dx = dY·y. */
export const expGrad: GradRule = (node, [dY], g) => (dY ? [g.op('Mul', [dY, node.outputs[0]])[0]] : [null]);

/** Log: dx = dY/x. */
export const logGrad: GradRule = (node, [dY], g) => (dY ? [g.op('Div', [dY, node.inputs[0]])[0]] : [null]);

/** Neg: dx = −dY. */
export const negGrad: GradRule = (_node, [dY], g) => (dY ? [g.op('Neg', [dY])[0]] : [null]);

/** Abs: dx = dY·sign(x). */
export const absGrad: GradRule = (node, [dY], g) =>
  dY ? [g.op('Mul', [dY, g.op('Sign', [node.inputs[0]])[0]])[0]] : [null];

/** Reciprocal y = 1/x: dx = −dY·y². */
export const reciprocalGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const y = node.outputs[0];
  return [g.op('Neg', [g.op('Mul', [dY, g.op('Mul', [y, y])[0]])[0]])[0]];
};

/** Min/Max (variadic, broadcasting): dY flows to the inputs equal to the result. */
export const extremumGrad: GradRule = (node, [dY], g) => {
  if (!dY) return node.inputs.map(() => null);
  const y = node.outputs[0];
  return node.inputs.map((x, i) => {
    const mask = castLike(g, g.op('Equal', [x, y])[0], y);
    return fit(g, node, i, g.op('Mul', [dY, mask])[0]);
  });
};

/** Sum (variadic): every input gets dY. */
export const sumGrad: GradRule = (node, [dY], g) =>
  dY ? node.inputs.map((_, i) => fit(g, node, i, dY)) : node.inputs.map(() => null);

/** Mean (variadic): every input gets dY/n. */
export const meanGrad: GradRule = (node, [dY], g) => {
  if (!dY) return node.inputs.map(() => null);
  const d = g.op('Mul', [dY, scalar(g, 1 / node.inputs.length, node.outputs[0])])[0];
  return node.inputs.map((_, i) => fit(g, node, i, d));
};

/** Where(cond, a, b): da = dY where cond, db = dY elsewhere. */
export const whereGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null, null];
  const [cond] = node.inputs;
  const zero = scalar(g, 0, node.outputs[0]);
  const da = g.op('Where', [cond, dY, zero])[0];
  const db = g.op('Where', [cond, zero, dY])[0];
  return [null, fit(g, node, 1, da), fit(g, node, 2, db)];
};

/** Cast: the gradient is cast back to the input's float type (none for integer inputs). */
export const castGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const dt = g.info(node.inputs[0]).dtype;
  if (!isFloat(dt)) return [null];
  if (dt === g.info(node.outputs[0]).dtype) return [dY];
  return [g.op('Cast', [dY], { to: attr.int(ONNX_TYPE_CODE[dt]) })[0]];
};
