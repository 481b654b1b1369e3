/**
 * Gradient rules for reductions: ReduceSum/Mean/Max/Min/L2/SumSquare/LogSumExp (axes as attribute, opset ≤ 17, or as
 * input, ReduceSum 13+ and all in 18+; keepdims; empty axes = all unless noop_with_empty_axes).
 */
import type { Node } from '../ir/graph.js';
import { attr } from '../ir/graph.js';
import { countRatio } from './pool.js';
import type { GradEmitter, GradRule } from './types.js';
import { intAttr, intsAttr } from '../ir/attrs.js';
import { castLike, ints, normAxis, requireConstInts, shapeOf, shapeValue } from './util.js';

/** Normalised, sorted reduction axes of a Reduce* node ([] = identity when noop_with_empty_axes). */
export function reduceAxes(node: Node, g: GradEmitter): number[] {
  const rank = shapeOf(g, node.inputs[0], node).length;
  let axes = intsAttr(node, 'axes');
  if (axes === undefined && node.inputs[1]) {
    axes = requireConstInts(g, node, 1, 'axes');
  }
  if (axes === undefined || axes.length === 0) {
    if (intAttr(node, 'noop_with_empty_axes', 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return [...new Set(axes.map((a) => normAxis(a, rank)))].sort((a, b) => a - b);
}

/** A reduced value (output or its gradient) with the reduced axes restored as size 1 (keepdims form). */
function keep(g: GradEmitter, node: Node, v: string, axes: number[]): string {
  if (intAttr(node, 'keepdims', 1) === 1 || axes.length === 0) return v;
  return g.op('Unsqueeze', [v, ints(g, axes)])[0];
}

function expandTo(g: GradEmitter, node: Node, v: string): string {
  return g.op('Expand', [v, shapeValue(g, node.inputs[0], node)])[0];
}

export const reduceSumGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const axes = reduceAxes(node, g);
  return [expandTo(g, node, keep(g, node, dY, axes))];
};

export const reduceMeanGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const axes = reduceAxes(node, g);
  const d = g.op('Div', [keep(g, node, dY, axes), countRatio(g, node.inputs[0], node.outputs[0], node)])[0];
  return [expandTo(g, node, d)];
};

/** ReduceMax/ReduceMin: dY goes to the extremal positions, split equally among ties. */
export const reduceExtremumGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const x = node.inputs[0];
  const axes = reduceAxes(node, g);
  const yk = keep(g, node, node.outputs[0], axes);
  const mask = castLike(g, g.op('Equal', [x, yk])[0], x);
  const cnt = g.op(
    'ReduceSum',
    [mask, ints(g, axes.length ? axes : Array.from({ length: shapeOf(g, x, node).length }, (_, i) => i))],
    { keepdims: attr.int(1) },
  )[0];
  return [g.op('Mul', [mask, g.op('Div', [keep(g, node, dY, axes), cnt])[0]])[0]];
};

/** ReduceL2: y = √Σx² → dX = x·dY/y. */
export const reduceL2Grad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const axes = reduceAxes(node, g);
  const ratio = g.op('Div', [keep(g, node, dY, axes), keep(g, node, node.outputs[0], axes)])[0];
  return [g.op('Mul', [node.inputs[0], ratio])[0]];
};

/** ReduceSumSquare: dX = 2x·dY. */
export const reduceSumSquareGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const axes = reduceAxes(node, g);
  const x = node.inputs[0];
  const two = g.op('Add', [x, x])[0];
  return [g.op('Mul', [two, keep(g, node, dY, axes)])[0]];
};

/** ReduceLogSumExp: dX = exp(x − y)·dY. */
export const reduceLogSumExpGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const axes = reduceAxes(node, g);
  const x = node.inputs[0];
  const p = g.op('Exp', [g.op('Sub', [x, keep(g, node, node.outputs[0], axes)])[0]])[0];
  return [g.op('Mul', [p, keep(g, node, dY, axes)])[0]];
};
