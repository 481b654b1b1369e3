/**
 * Gradient rules for pooling: MaxPool (scatter of dY to the arg-max positions), AveragePool (a depthwise
 * ConvTranspose with a ones kernel of dY divided by each window's element count), GlobalAveragePool, GlobalMaxPool.
 */
import type { Node } from '../ir/graph.js';
import { attr } from '../ir/graph.js';
import { type ConvGeometry, convInputGrad, resolvePads } from './conv.js';
import type { GradEmitter, GradRule } from './types.js';
import { intAttr, intsAttr } from '../ir/attrs.js';
import { castLike, ints, isStatic, scalar, shapeOf, shapeValue, staticDims, zerosLike } from './util.js';

function poolGeometry(node: Node, g: GradEmitter): ConvGeometry {
  const xs = shapeOf(g, node.inputs[0], node);
  const ys = shapeOf(g, node.outputs[0], node);
  const s = xs.length - 2;
  const inSize = staticDims(xs.slice(2), node, 'spatial input size');
  const outSize = staticDims(ys.slice(2), node, 'spatial output size');
  const kernel = intsAttr(node, 'kernel_shape') ?? [];
  const strides = intsAttr(node, 'strides') ?? new Array(s).fill(1);
  const dilations = intsAttr(node, 'dilations') ?? new Array(s).fill(1);
  const { begin, end } = resolvePads(node, inSize, kernel, strides, dilations);
  return { inSize, outSize, kernel, strides, dilations, padBegin: begin, padEnd: end };
}

/**
 * MaxPool X N×C×H×W → Y: recomputes the pooling with its Indices output (row-major), takes each index modulo H·W
 * (onnxruntime counts from the start of the tensor) and scatter-adds dY into zeros N×C×(H·W).
 */
export const maxPoolGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const x = node.inputs[0];
  const xs = shapeOf(g, x, node);
  const plane = staticDims(xs.slice(2), node, 'spatial input size').reduce((a, b) => a * b, 1);
  let idx: string;
  if (node.outputs[1] && intAttr(node, 'storage_order', 0) === 0) idx = node.outputs[1];
  else {
    const a = { ...node.attrs, storage_order: attr.int(0) };
    idx = g.op('MaxPool', [x], a, 2)[1];
  }
  const flatShape = ints(g, [0, 0, -1]);
  const local = g.op('Mod', [
    idx,
    g.constant({ dtype: 'int64', dims: [], data: new BigInt64Array([BigInt(plane)]) }),
  ])[0];
  const idxFlat = g.op('Reshape', [local, flatShape])[0];
  const dyFlat = g.op('Reshape', [dY, flatShape])[0];
  const zeros = g.op('Reshape', [zerosLike(g, x, node), flatShape])[0];
  const scattered = g.op('ScatterElements', [zeros, idxFlat, dyFlat], {
    axis: attr.int(2),
    reduction: attr.string('add'),
  })[0];
  return [g.op('Reshape', [scattered, shapeValue(g, x, node)])[0]];
};

/** Number of window elements each output position averages over, as a constant Ho×Wo tensor. */
function windowCounts(geo: ConvGeometry, includePad: boolean): Float32Array {
  const perAxis = geo.outSize.map((n, a) => {
    const lo = includePad ? -geo.padBegin[a] : 0;
    const hi = includePad ? geo.inSize[a] + geo.padEnd[a] : geo.inSize[a];
    return Array.from({ length: n }, (_, o) => {
      const st = o * geo.strides[a] - geo.padBegin[a];
      return Math.max(0, Math.min(st + geo.kernel[a], hi) - Math.max(st, lo));
    });
  });
  const total = geo.outSize.reduce((a, b) => a * b, 1);
  const out = new Float32Array(total);
  for (let i = 0; i < total; i++) {
    let rem = i;
    let c = 1;
    for (let a = geo.outSize.length - 1; a >= 0; a--) {
      c *= perAxis[a][rem % geo.outSize[a]];
      rem = Math.floor(rem / geo.outSize[a]);
    }
    out[i] = c;
  }
  return out;
}

/** AveragePool X N×C×H×W → Y (count_include_pad, ceil_mode, asymmetric pads, auto_pad). */
export const averagePoolGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const x = node.inputs[0];
  const xs = shapeOf(g, x, node);
  const C = staticDims([xs[1]], node, 'channel count')[0];
  const geo = poolGeometry(node, g);
  geo.dilations = geo.kernel.map(() => 1);
  const counts = windowCounts(geo, intAttr(node, 'count_include_pad', 0) === 1);
  const kk = geo.kernel.reduce((a, b) => a * b, 1);
  let scaled: string;
  if (counts.every((c) => c === kk)) scaled = g.op('Mul', [dY, scalar(g, 1 / kk, x)])[0];
  else {
    const inv = g.constant(
      { dtype: 'float32', dims: geo.outSize, data: counts.map((c) => (c > 0 ? 1 / c : 0)) },
      'inv_count',
    );
    scaled = g.op('Mul', [dY, g.info(x).dtype === 'float32' ? inv : castLike(g, inv, x)])[0];
  }
  const ones = g.constant(
    { dtype: 'float32', dims: [C, 1, ...geo.kernel], data: new Float32Array(C * kk).fill(1) },
    'ones_kernel',
  );
  const w = g.info(x).dtype === 'float32' ? ones : castLike(g, ones, x);
  return [convInputGrad(g, scaled, w, geo, C)];
};

/** Size(X)/Size(Y) as a float scalar of X's dtype: the number of elements each output averages (symbolic-safe). */
export function countRatio(g: GradEmitter, x: string, y: string, node: Node): string {
  const xs = shapeOf(g, x, node);
  const ys = shapeOf(g, y, node);
  if (isStatic(xs) && isStatic(ys)) {
    const n =
      xs.reduce((a, b) => a * b, 1) /
      Math.max(
        1,
        ys.reduce((a, b) => a * b, 1),
      );
    return scalar(g, n, x);
  }
  const r = g.op('Div', [g.op('Size', [x])[0], g.op('Size', [y])[0]])[0];
  return castLike(g, r, x);
}

/** GlobalAveragePool X N×C×H×W → N×C×1×1: dX = broadcast(dY)/(H·W). */
export const globalAveragePoolGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const x = node.inputs[0];
  const xs = shapeOf(g, x, node);
  const spatial = xs.slice(2);
  const div = isStatic(spatial)
    ? scalar(
        g,
        spatial.reduce((a, b) => a * b, 1),
        x,
      )
    : countRatio(g, x, node.outputs[0], node);
  const e = g.op('Expand', [dY, shapeValue(g, x, node)])[0];
  return [g.op('Div', [e, div])[0]];
};

/** GlobalMaxPool X → N×C×1×1: dY goes to the positions equal to the max (split among ties). */
export const globalMaxPoolGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const x = node.inputs[0];
  const s = shapeOf(g, x, node).length - 2;
  const mask = castLike(g, g.op('Equal', [x, node.outputs[0]])[0], x);
  const cnt = g.op(
    'ReduceSum',
    [
      mask,
      ints(
        g,
        Array.from({ length: s }, (_, i) => i + 2),
      ),
    ],
    { keepdims: attr.int(1) },
  )[0];
  return [g.op('Mul', [mask, g.op('Div', [dY, cnt])[0]])[0]];
};
