/**
 * Gradient rules for data-movement ops: Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Identity, Expand, Concat,
 * Split, Slice, Gather, Pad. Runtime shapes (Shape ops) are used wherever a dimension may be symbolic.
 */
import { QcbError } from '../../errors.js';
import type { Dim } from '../ir/graph.js';
import { attr } from '../ir/graph.js';
import { sliceIndices } from '../ir/shapes.js';
import type { GradRule } from './types.js';
import { intAttr, intsAttr, stringAttr } from '../ir/attrs.js';
import {
  constInts,
  ints,
  isStatic,
  normAxis,
  requireConstInts,
  shapeOf,
  shapeValue,
  staticDims,
  unbroadcast,
  zerosLike,
} from './util.js';

/** Transpose: dX = Transpose(dY, perm⁻¹). */
export const transposeGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null];
  const rank = shapeOf(g, node.inputs[0], node).length;
  const perm = intsAttr(node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const inv = new Array<number>(rank);
  perm.forEach((p, i) => {
    inv[p] = i;
  });
  return [g.op('Transpose', [dY], { perm: attr.ints(inv) })[0]];
};

/** Reshape, Flatten, Squeeze, Unsqueeze: dX = Reshape(dY, shape(X)); extra inputs (shape, axes) get none. */
export const reshapeLikeGrad: GradRule = (node, [dY], g) => {
  const rest = node.inputs.slice(1).map(() => null);
  if (!dY) return [null, ...rest];
  return [g.op('Reshape', [dY, shapeValue(g, node.inputs[0], node)])[0], ...rest];
};

/** Identity and other pass-through ops. */
export const identityGrad: GradRule = (node, [dY]) => [dY, ...node.inputs.slice(1).map(() => null)];

/** Expand: dX = dY summed over the broadcast dims. */
export const expandGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null];
  return [unbroadcast(g, dY, shapeOf(g, node.outputs[0], node), shapeOf(g, node.inputs[0], node)), null];
};

/** Concat: dX_i = the i-th piece of dY along axis (Split with static sizes, or runtime sizes). */
export const concatGrad: GradRule = (node, [dY], g) => {
  if (!dY) return node.inputs.map(() => null);
  const rank = shapeOf(g, node.outputs[0], node).length;
  const axis = normAxis(intAttr(node, 'axis', 0), rank);
  const sizes: Dim[] = node.inputs.map((x) => shapeOf(g, x, node)[axis]);
  let split: string;
  if (isStatic(sizes)) split = ints(g, sizes);
  else {
    const parts = node.inputs.map((x) => g.op('Gather', [g.op('Shape', [x])[0], ints(g, [axis])])[0]);
    split = g.op('Concat', parts, { axis: attr.int(0) })[0];
  }
  if (node.inputs.length === 1) return [dY];
  return g.op('Split', [dY, split], { axis: attr.int(axis) }, node.inputs.length);
};

/** Split: dX = Concat of the output gradients (zeros for outputs without one). */
export const splitGrad: GradRule = (node, dOuts, g) => {
  const rest = node.inputs.slice(1).map(() => null);
  if (dOuts.every((d) => !d)) return [null, ...rest];
  const rank = shapeOf(g, node.inputs[0], node).length;
  const axis = normAxis(intAttr(node, 'axis', 0), rank);
  const pieces = node.outputs.map((o, i) => dOuts[i] ?? zerosLike(g, o, node));
  const dx = pieces.length === 1 ? pieces[0] : g.op('Concat', pieces, { axis: attr.int(axis) })[0];
  return [dx, ...rest];
};

/**
 * Slice (constant starts/ends/axes/steps): unit steps pad dY back with zeros; other steps scatter along the axis
 * with a constant one-hot m×D matrix (a MatMul over the axis moved last).
 */
export const sliceGrad: GradRule = (node, [dY], g) => {
  const rest = node.inputs.slice(1).map(() => null);
  if (!dY) return [null, ...rest];
  const x = node.inputs[0];
  const xs = shapeOf(g, x, node);
  const rank = xs.length;
  const starts = requireConstInts(g, node, 1, 'starts');
  const ends = requireConstInts(g, node, 2, 'ends');
  const axes = (constInts(g, node.inputs[3]) ?? starts.map((_, i) => i)).map((a) => normAxis(a, rank));
  const steps = constInts(g, node.inputs[4]) ?? starts.map(() => 1);
  const padB = new Array<number>(rank).fill(0);
  const padE = new Array<number>(rank).fill(0);
  const scatters: { axis: number; idx: number[]; D: number }[] = [];
  axes.forEach((axis, i) => {
    const D = staticDims([xs[axis]], node, `size of sliced axis ${axis}`)[0];
    const step = steps[i];
    const { start: st, idx } = sliceIndices(starts[i], ends[i], step, D);
    if (step === 1) {
      padB[axis] = st;
      padE[axis] = D - st - idx.length;
    } else scatters.push({ axis, idx, D });
  });
  let dx = dY;
  for (const { axis, idx, D } of scatters) {
    const oneHot = new Float32Array(idx.length * D);
    idx.forEach((k, r) => {
      oneHot[r * D + k] = 1;
    });
    const p = g.constant({ dtype: 'float32', dims: [idx.length, D], data: oneHot }, 'slice_scatter');
    const perm = Array.from({ length: rank }, (_, i) => i);
    perm[axis] = rank - 1;
    perm[rank - 1] = axis;
    const moved = axis === rank - 1 ? dx : g.op('Transpose', [dx], { perm: attr.ints(perm) })[0];
    const mm = g.op('MatMul', [moved, p])[0];
    dx = axis === rank - 1 ? mm : g.op('Transpose', [mm], { perm: attr.ints(perm) })[0];
  }
  if ([...padB, ...padE].some((p) => p !== 0)) dx = g.op('Pad', [dx, ints(g, [...padB, ...padE])])[0];
  return [dx, ...rest];
};

/**
 * Gather(data, indices, axis): scatter-add dY into zeros shaped like data with ScatterElements (reduction add) along
 * the axis, indices flattened and broadcast over the other dims, so repeated indices accumulate. Negative indices
 * are wrapped first. Dims after the axis must be static (the batch, usually the leading dim, may be symbolic).
 */
export const gatherGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null];
  const [data, indices] = node.inputs;
  const ds = shapeOf(g, data, node);
  const r = ds.length;
  const a = normAxis(intAttr(node, 'axis', 0), r);
  const D = ds[a];
  const trailing = staticDims(ds.slice(a + 1), node, 'size of the dims after the gather axis');
  let ind = indices;
  if (g.info(indices).dtype !== 'int64') ind = g.op('Cast', [ind], { to: attr.int(7) })[0];
  const dimV =
    typeof D === 'number'
      ? g.constant({ dtype: 'int64', dims: [], data: new BigInt64Array([BigInt(D)]) })
      : g.op('Squeeze', [g.op('Gather', [g.op('Shape', [data])[0], ints(g, [a])])[0], ints(g, [0])])[0];
  const zero = g.constant({ dtype: 'int64', dims: [], data: new BigInt64Array([0n]) });
  ind = g.op('Where', [g.op('Less', [ind, zero])[0], g.op('Add', [ind, dimV])[0], ind])[0];
  // dY: data[:a] × indices.shape × data[a+1:] → data[:a] × m × data[a+1:]
  const upd = g.op('Reshape', [dY, ints(g, [...new Array(a).fill(0), -1, ...trailing])])[0];
  const indR = g.op('Reshape', [ind, ints(g, [...new Array(a).fill(1), -1, ...new Array(r - a - 1).fill(1)])])[0];
  const indE = g.op('Expand', [indR, g.op('Shape', [upd])[0]])[0];
  const zeros = zerosLike(g, data, node);
  return [g.op('ScatterElements', [zeros, indE, upd], { axis: attr.int(a), reduction: attr.string('add') })[0], null];
};

/** Pad (constant mode, constant pads): dX = Pad(dY, −pads), i.e. crop. */
export const padGrad: GradRule = (node, [dY], g) => {
  const rest = node.inputs.slice(1).map(() => null);
  if (!dY) return [null, ...rest];
  const mode = stringAttr(node, 'mode', 'constant');
  if (mode !== 'constant') {
    throw new QcbError(
      'QCB_ONNX_UNSUPPORTED_OP',
      `Pad node '${node.name}' with mode '${mode}' has no gradient rule (only mode 'constant')`,
      {
        key: node.name,
        value: mode,
        allowed: 'constant',
        fix: 'freeze the layers before this node or export the model with zero padding',
      },
    );
  }
  const rank = shapeOf(g, node.inputs[0], node).length;
  let pads = requireConstInts(g, node, 1, 'pads');
  const axesIn = constInts(g, node.inputs[3]);
  if (axesIn) {
    const full = new Array<number>(2 * rank).fill(0);
    axesIn.forEach((ax, i) => {
      const a = normAxis(ax, rank);
      full[a] = pads[i];
      full[a + rank] = pads[i + axesIn.length];
    });
    pads = full;
  }
  return [
    g.op('Pad', [
      dY,
      ints(
        g,
        pads.map((p) => -p),
      ),
    ])[0],
    ...rest,
  ];
};
