/**
 * Gradient rules for activations and probability maps: Relu, LeakyRelu, PRelu, Elu, Sigmoid, HardSigmoid,
 * HardSwish, Tanh, Erf, Gelu (exact and tanh), Softplus, Softmax, LogSoftmax, Clip, Dropout.
 */
import { attr } from '../ir/graph.js';
import type { GradEmitter, GradRule } from './types.js';
import { floatAttr, intAttr, stringAttr } from '../ir/attrs.js';
import { castLike, constFloats, constInts, normAxis, scalar, shapeOf, unbroadcast } from './util.js';

const mul = (g: GradEmitter, a: string, b: string) => g.op('Mul', [a, b])[0];

/**
 * Relu: dx = dY where y > 0 (⇔ x > 0). The mask reads the output, not the input, so the input is not kept alive
 * for the backward pass and onnxruntime can still fuse the producing Conv with the Relu.
 */
export const reluGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const y = node.outputs[0];
  return [g.op('Where', [g.op('Greater', [y, scalar(g, 0, y)])[0], dY, scalar(g, 0, y)])[0]];
};

/** LeakyRelu(alpha): dx = dY where x > 0, alpha·dY elsewhere (the mask from y when alpha > 0, as for Relu). */
export const leakyReluGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const alpha = floatAttr(node, 'alpha', 0.01);
  const v = alpha > 0 ? node.outputs[0] : node.inputs[0];
  return [g.op('Where', [g.op('Greater', [v, scalar(g, 0, v)])[0], dY, mul(g, dY, scalar(g, alpha, v))])[0]];
};

/** PRelu(x, slope): dx = dY or slope·dY; dslope = Σ dY·x over x ≤ 0 (summed to slope's shape). */
export const preluGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null];
  const [x, slope] = node.inputs;
  const pos = g.op('Greater', [x, scalar(g, 0, x)])[0];
  const dx = g.op('Where', [pos, dY, mul(g, dY, slope)])[0];
  const ds = g.op('Where', [pos, scalar(g, 0, x), mul(g, dY, x)])[0];
  return [dx, unbroadcast(g, ds, shapeOf(g, x, node), shapeOf(g, slope, node))];
};

/** Elu(alpha): dx = dY for x > 0 (⇔ y > 0), dY·(y + alpha) elsewhere — only the output is read. */
export const eluGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const y = node.outputs[0];
  const alpha = floatAttr(node, 'alpha', 1);
  const neg = mul(g, dY, g.op('Add', [y, scalar(g, alpha, y)])[0]);
  return [g.op('Where', [g.op('Greater', [y, scalar(g, 0, y)])[0], dY, neg])[0]];
};

/** Sigmoid: dx = dY·y·(1 − y). */
export const sigmoidGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const y = node.outputs[0];
  return [mul(g, dY, mul(g, y, g.op('Sub', [scalar(g, 1, y), y])[0]))];
};

/** Softplus y = ln(1+eˣ): dx = dY·σ(x). */
export const softplusGrad: GradRule = (node, [dY], g) =>
  dY ? [mul(g, dY, g.op('Sigmoid', [node.inputs[0]])[0])] : [null];

/** HardSigmoid(alpha, beta): dx = alpha·dY inside the linear zone 0 < alpha·x + beta < 1. */
export const hardSigmoidGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const x = node.inputs[0];
  const alpha = floatAttr(node, 'alpha', 0.2);
  const beta = floatAttr(node, 'beta', 0.5);
  const lin = g.op('Add', [mul(g, x, scalar(g, alpha, x)), scalar(g, beta, x)])[0];
  const inside = g.op('And', [g.op('Greater', [lin, scalar(g, 0, x)])[0], g.op('Less', [lin, scalar(g, 1, x)])[0]])[0];
  return [g.op('Where', [inside, mul(g, dY, scalar(g, alpha, x)), scalar(g, 0, x)])[0]];
};

/** HardSwish y = x·clip(x/6 + ½, 0, 1): dx = 0 (x < −3), dY (x > 3), dY·(x/3 + ½) between. */
export const hardSwishGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const x = node.inputs[0];
  const mid = mul(g, dY, g.op('Add', [mul(g, x, scalar(g, 1 / 3, x)), scalar(g, 0.5, x)])[0]);
  const upper = g.op('Where', [g.op('Greater', [x, scalar(g, 3, x)])[0], dY, mid])[0];
  return [g.op('Where', [g.op('Less', [x, scalar(g, -3, x)])[0], scalar(g, 0, x), upper])[0]];
};

/** Tanh: dx = dY·(1 − y²). */
export const tanhGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const y = node.outputs[0];
  return [mul(g, dY, g.op('Sub', [scalar(g, 1, y), mul(g, y, y)])[0])];
};

/** Erf: dx = dY·(2/√π)·exp(−x²). */
export const erfGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const x = node.inputs[0];
  const e = g.op('Exp', [g.op('Neg', [mul(g, x, x)])[0]])[0];
  return [mul(g, dY, mul(g, e, scalar(g, 2 / Math.sqrt(Math.PI), x)))];
};

/**
 * Gelu (opset 20, may appear in imported graphs; the backward uses only opset-17 ops).
 * exact: y = ½x(1 + erf(x/√2)) → y' = ½(1 + erf(x/√2)) + x·φ(x); tanh: y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³).
 */
export const geluGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const x = node.inputs[0];
  const c = (v: number) => scalar(g, v, x);
  let d: string;
  if (stringAttr(node, 'approximate', 'none') === 'tanh') {
    const k = Math.sqrt(2 / Math.PI);
    const x2 = mul(g, x, x);
    const u = mul(g, c(k), g.op('Add', [x, mul(g, c(0.044715), mul(g, x2, x))])[0]);
    const t = g.op('Tanh', [u])[0];
    const first = mul(g, c(0.5), g.op('Add', [c(1), t])[0]);
    const du = mul(g, c(k), g.op('Add', [c(1), mul(g, c(3 * 0.044715), x2)])[0]);
    const second = mul(g, mul(g, c(0.5), x), mul(g, g.op('Sub', [c(1), mul(g, t, t)])[0], du));
    d = g.op('Add', [first, second])[0];
  } else {
    const cdf = mul(g, c(0.5), g.op('Add', [c(1), g.op('Erf', [mul(g, x, c(Math.SQRT1_2))])[0]])[0]);
    const pdf = mul(g, c(1 / Math.sqrt(2 * Math.PI)), g.op('Exp', [mul(g, mul(g, x, x), c(-0.5))])[0]);
    d = g.op('Add', [cdf, mul(g, x, pdf)])[0];
  }
  return [mul(g, dY, d)];
};

/** Softmax (opset 13, one axis): dx = y·(dY − Σ_axis dY·y). */
export const softmaxGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const y = node.outputs[0];
  const axis = normAxis(intAttr(node, 'axis', -1), shapeOf(g, y, node).length);
  const s = g.op(
    'ReduceSum',
    [mul(g, dY, y), g.constant({ dtype: 'int64', dims: [1], data: new BigInt64Array([BigInt(axis)]) })],
    {
      keepdims: attr.int(1),
    },
  )[0];
  return [mul(g, y, g.op('Sub', [dY, s])[0])];
};

/** LogSoftmax (opset 13, one axis): dx = dY − exp(y)·Σ_axis dY. */
export const logSoftmaxGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const y = node.outputs[0];
  const axis = normAxis(intAttr(node, 'axis', -1), shapeOf(g, y, node).length);
  const s = g.op(
    'ReduceSum',
    [dY, g.constant({ dtype: 'int64', dims: [1], data: new BigInt64Array([BigInt(axis)]) })],
    { keepdims: attr.int(1) },
  )[0];
  return [g.op('Sub', [dY, mul(g, g.op('Exp', [y])[0], s)])[0]];
};

/** Clip(x, min?, max?) (bounds as inputs, or attributes before opset 11): dx = dY inside [min, max]. */
export const clipGrad: GradRule = (node, [dY], g) => {
  const rest = node.inputs.slice(1).map(() => null);
  if (!dY) return [null, ...rest];
  const x = node.inputs[0];
  const conds: string[] = [];
  const lo = node.inputs[1] || (node.attrs.min ? scalar(g, floatAttr(node, 'min', 0), x) : '');
  const hi = node.inputs[2] || (node.attrs.max ? scalar(g, floatAttr(node, 'max', 0), x) : '');
  if (lo) conds.push(g.op('GreaterOrEqual', [x, lo])[0]);
  if (hi) conds.push(g.op('LessOrEqual', [x, hi])[0]);
  if (conds.length === 0) return [dY, ...rest];
  const inside = conds.length === 1 ? conds[0] : g.op('And', conds)[0];
  return [g.op('Where', [inside, dY, scalar(g, 0, x)])[0], ...rest];
};

/**
 * Dropout(data, ratio?, training_mode?) → (output, mask?): identity in inference mode; in training mode
 * dx = dY·mask/(1 − ratio). appendBackward gives a training-mode Dropout a mask output when it lacks one.
 */
export const dropoutGrad: GradRule = (node, [dY], g) => {
  const rest = node.inputs.slice(1).map(() => null);
  if (!dY) return [null, ...rest];
  const x = node.inputs[0];
  const trainName = node.inputs[2];
  const trainConst = constInts(g, trainName);
  if (!trainName || (trainConst && trainConst[0] === 0)) return [dY, ...rest];
  const mask = node.outputs[1];
  const ratioC = node.inputs[1] ? constFloats(g, node.inputs[1]) : [floatAttr(node, 'ratio', 0.5)];
  let scale: string;
  if (ratioC) scale = scalar(g, ratioC[0] === 1 ? 0 : 1 / (1 - ratioC[0]), x);
  else scale = g.op('Div', [scalar(g, 1, x), g.op('Sub', [scalar(g, 1, x), castLike(g, node.inputs[1], x)])[0]])[0];
  if (!trainConst) scale = g.op('Where', [trainName, scale, scalar(g, 1, x)])[0];
  return [mul(g, mul(g, dY, castLike(g, mask, x)), scale), ...rest];
};
