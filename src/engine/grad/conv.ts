/**
 * Gradient rules for Conv and ConvTranspose (any spatial rank; groups incl. depthwise, strides, dilations,
 * asymmetric pads, auto_pad).
 *
 * Speed matters here (engine-measurements.md; figures from src/bench/grad.ts). dX: for stride 1 a Conv of dY
 * with the flipped, group-transposed W (faster than ConvTranspose in onnxruntime), else ConvTranspose(dY, W) (a
 * sub-pixel decomposition into s² phase Convs measured 2× slower). dW is
 * GEMM-shaped, never a Conv over transposed tensors (2–4× slower): for large output planes an im2col by a one-hot
 * depthwise Conv + per-image MatMul + ReduceSum over N; for small planes X transposed once, k² strided Slices and
 * one Gemm over N·Ho·Wo. Depthwise convs use one grouped Conv over transposed tensors; 1×1 convs reduce to one MatMul/Gemm.
 */
import type { Dim, Node } from '../ir/graph.js';
import { attr } from '../ir/graph.js';
import type { GradEmitter, GradRule } from './types.js';
import { intAttr, intsAttr, stringAttr } from '../ir/attrs.js';
import { ints, shapeOf, staticDims } from './util.js';

/** Geometry of one convolution-like op, all spatial sizes static. */
export interface ConvGeometry {
  /** Spatial size of the (un-padded) input, per axis. */
  inSize: number[];
  /** Spatial size of the output, per axis. */
  outSize: number[];
  kernel: number[];
  strides: number[];
  dilations: number[];
  padBegin: number[];
  padEnd: number[];
}

/** Begin/end pads of a Conv/Pool node, resolving auto_pad (SAME_UPPER puts the odd pixel at the end). */
export function resolvePads(
  node: Node,
  inSize: number[],
  kernel: number[],
  strides: number[],
  dilations: number[],
): { begin: number[]; end: number[] } {
  const s = inSize.length;
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const begin: number[] = [];
    const end: number[] = [];
    for (let i = 0; i < s; i++) {
      const out = Math.ceil(inSize[i] / strides[i]);
      const total = Math.max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - inSize[i]);
      const small = Math.floor(total / 2);
      begin.push(autoPad === 'SAME_UPPER' ? small : total - small);
      end.push(autoPad === 'SAME_UPPER' ? total - small : small);
    }
    return { begin, end };
  }
  if (autoPad === 'VALID') return { begin: new Array(s).fill(0), end: new Array(s).fill(0) };
  const pads = intsAttr(node, 'pads') ?? new Array(2 * s).fill(0);
  return { begin: pads.slice(0, s), end: pads.slice(s, 2 * s) };
}

function convGeometry(node: Node, x: Dim[], y: Dim[], w: Dim[] | undefined): ConvGeometry {
  const s = x.length - 2;
  const inSize = staticDims(x.slice(2), node, 'spatial input size');
  const outSize = staticDims(y.slice(2), node, 'spatial output size');
  const kernel = intsAttr(node, 'kernel_shape') ?? staticDims((w ?? []).slice(2), node, 'kernel size');
  const strides = intsAttr(node, 'strides') ?? new Array(s).fill(1);
  const dilations = intsAttr(node, 'dilations') ?? new Array(s).fill(1);
  const { begin, end } = resolvePads(node, inSize, kernel, strides, dilations);
  return { inSize, outSize, kernel, strides, dilations, padBegin: begin, padEnd: end };
}

/** W K×(C/g)×k… regrouped as the weight of the adjoint conv: C×(K/g)×k… (transposed within each group). */
function groupTransposed(g: GradEmitter, w: string, K: number, Cg: number, group: number, kernel: number[]): string {
  const spatial = kernel.map((_, i) => i + 2);
  if (Cg === 1 && group === K) return w; // depthwise: W is its own group-transpose
  if (group === 1) return g.op('Transpose', [w], { perm: attr.ints([1, 0, ...spatial]) })[0];
  const Kg = K / group;
  const r5 = g.op('Reshape', [w, ints(g, [group, Kg, Cg, ...kernel])])[0];
  const t5 = g.op('Transpose', [r5], { perm: attr.ints([0, 2, 1, ...spatial.map((a) => a + 1)]) })[0];
  return g.op('Reshape', [t5, ints(g, [Cg * group, Kg, ...kernel])])[0];
}

/**
 * The adjoint of a convolution with respect to its input, producing exactly the input's spatial size.
 * Stride 1: a Conv of dY with the spatially flipped, group-transposed W (pads (k−1)·d − p) — about twice as fast as
 * ConvTranspose in onnxruntime. Strides > 1: ConvTranspose(dY, W) with pads/output_padding chosen so that strides
 * and asymmetric pads line up (tail rows no window touched get 0).
 * dY: N×K×Ho×Wo, W: K×(C/group)×kh×kw → N×C×H×W.
 */
export function convInputGrad(g: GradEmitter, dY: string, w: string, geo: ConvGeometry, group: number): string {
  const s = geo.inSize.length;
  const ext = geo.kernel.map((k, i) => (k - 1) * geo.dilations[i]);
  const pb2 = ext.map((e, i) => e - geo.padBegin[i]);
  // output length Ho + pb' + pe' − ext must be H
  const pe2 = ext.map((_, i) => geo.inSize[i] - geo.outSize[i] + geo.padBegin[i]);
  if (geo.strides.every((st) => st === 1) && [...pb2, ...pe2].every((p) => p >= 0)) {
    const wShape = g.info(w).shape;
    const K = typeof wShape?.[0] === 'number' ? wShape[0] : undefined;
    const Cg = typeof wShape?.[1] === 'number' ? wShape[1] : undefined;
    if (K !== undefined && Cg !== undefined) {
      const spatial = Array.from({ length: s }, (_, i) => i + 2);
      const wt = groupTransposed(g, w, K, Cg, group, geo.kernel);
      const big = 2 ** 31 - 1;
      const flipped = g.op('Slice', [
        wt,
        ints(
          g,
          spatial.map(() => -1),
        ),
        ints(
          g,
          spatial.map(() => -big),
        ),
        ints(g, spatial),
        ints(
          g,
          spatial.map(() => -1),
        ),
      ])[0];
      return g.op('Conv', [dY, flipped], {
        kernel_shape: attr.ints(geo.kernel),
        dilations: attr.ints(geo.dilations),
        group: attr.int(group),
        pads: attr.ints([...pb2, ...pe2]),
      })[0];
    }
  }
  const pe: number[] = [];
  const outPad: number[] = [];
  const post: number[] = [];
  for (let i = 0; i < s; i++) {
    const full = (geo.outSize[i] - 1) * geo.strides[i] + (geo.kernel[i] - 1) * geo.dilations[i] + 1;
    const end = full - geo.padBegin[i] - geo.inSize[i];
    if (end >= 0) {
      pe.push(end);
      outPad.push(0);
      post.push(0);
    } else if (-end < geo.strides[i]) {
      pe.push(0);
      outPad.push(-end);
      post.push(0);
    } else {
      pe.push(0);
      outPad.push(0);
      post.push(-end);
    }
  }
  const a: Record<string, ReturnType<typeof attr.int>> = {
    kernel_shape: attr.ints(geo.kernel),
    strides: attr.ints(geo.strides),
    dilations: attr.ints(geo.dilations),
    group: attr.int(group),
    pads: attr.ints([...geo.padBegin, ...pe]),
  };
  if (outPad.some((p) => p > 0)) a.output_padding = attr.ints(outPad);
  let dx = g.op('ConvTranspose', [dY, w], a)[0];
  if (post.some((p) => p > 0)) dx = g.op('Pad', [dx, ints(g, [0, 0, ...new Array(s).fill(0), 0, 0, ...post])])[0];
  return dx;
}

/**
 * dL/dW of a convolution: x N×C×H×W (un-padded input), dY N×K×Ho×Wo, W K×(C/group)×k… . GEMM formulation (see file
 * comment); depthwise (group = C, any channel multiplier) uses a grouped Conv over transposed tensors.
 */
export function convWeightGrad(
  g: GradEmitter,
  x: string,
  dY: string,
  geo: ConvGeometry,
  group: number,
  wShape: number[],
): string {
  const s = geo.inSize.length;
  const [K, Cg] = wShape;
  const C = Cg * group;
  const spatialAxes = Array.from({ length: s }, (_, i) => i + 2);
  let xp = x;
  if ([...geo.padBegin, ...geo.padEnd].some((p) => p !== 0)) {
    xp = g.op('Pad', [x, ints(g, [0, 0, ...geo.padBegin, 0, 0, ...geo.padEnd])])[0];
  }
  const offsets = kernelOffsets(geo.kernel);
  const sliceAt = (src: string, off: number[]): string => {
    const starts = off.map((o, i) => o * geo.dilations[i]);
    const ends = starts.map((st, i) => st + (geo.outSize[i] - 1) * geo.strides[i] + 1);
    const paddedSize = geo.inSize.map((n, i) => n + geo.padBegin[i] + geo.padEnd[i]);
    const trivial = starts.every((st, i) => st === 0 && ends[i] === paddedSize[i] && geo.strides[i] === 1);
    if (trivial) return src;
    return g.op('Slice', [src, ints(g, starts), ints(g, ends), ints(g, spatialAxes), ints(g, geo.strides)])[0];
  };

  if (group === C && Cg === 1 && group > 1) {
    // Depthwise (channel multiplier m = K/C): dW[c·m+j,0,o] = Σ_{n,p} dY[n,c·m+j,p]·Xpad[n,c,p·s+o·d] is a grouped
    // Conv of X as 1×(C·N)×H×W with dY as C·m filters of N channels (spatial Ho×Wo), its dilation the forward stride
    // and its stride the forward dilation: one op, ~5× faster in onnxruntime than k² Slice·Mul·ReduceSum.
    const xt = g.op('Transpose', [x], { perm: attr.ints([1, 0, ...spatialAxes]) })[0]; // C×N×H×W
    const x1 = g.op('Reshape', [xt, ints(g, [1, -1, ...geo.inSize])])[0];
    const dyt = g.op('Transpose', [dY], { perm: attr.ints([1, 0, ...spatialAxes]) })[0]; // K×N×Ho×Wo
    let dw = g.op('Conv', [x1, dyt], {
      kernel_shape: attr.ints(geo.outSize),
      strides: attr.ints(geo.dilations),
      dilations: attr.ints(geo.strides),
      group: attr.int(C),
      pads: attr.ints([...geo.padBegin, ...geo.padEnd]),
    })[0]; // 1×K×k'… with k' ≥ k (tail positions no window reaches)
    const full = geo.inSize.map(
      (n, i) =>
        Math.floor(
          (n + geo.padBegin[i] + geo.padEnd[i] - (geo.outSize[i] - 1) * geo.strides[i] - 1) / geo.dilations[i],
        ) + 1,
    );
    if (full.some((f, i) => f !== geo.kernel[i])) {
      dw = g.op('Slice', [
        dw,
        ints(
          g,
          geo.kernel.map(() => 0),
        ),
        ints(g, geo.kernel),
        ints(g, spatialAxes),
      ])[0];
    }
    return g.op('Reshape', [dw, ints(g, wShape)])[0];
  }

  const KK = offsets.length;
  const outPlane = geo.outSize.reduce((a, b) => a * b, 1);
  if (outPlane >= K) {
    // Large output planes (early layers): im2col as ONE depthwise Conv with a one-hot k×k kernel per channel
    // (N×(C·k²)×Ho×Wo, strides/dilations/pads handled by the Conv), then per-image MatMul with dYᵀ and a ReduceSum
    // over N. The N×(C·k²)×K intermediate is no larger than the columns while Ho·Wo ≥ K.
    let cols: string;
    if (KK === 1)
      cols = sliceAt(xp, offsets[0]); // 1×1: the (strided) input itself
    else {
      const oneHot = new Float32Array(C * KK * KK);
      for (let c = 0; c < C; c++) for (let i = 0; i < KK; i++) oneHot[(c * KK + i) * KK + i] = 1;
      const eye = g.constant({ dtype: 'float32', dims: [C * KK, 1, ...geo.kernel], data: oneHot }, 'im2col_onehot');
      cols = g.op(
        'Conv',
        [
          x,
          g.info(x).dtype === 'float32'
            ? eye
            : g.op('Cast', [eye], { to: attr.int(g.info(x).dtype === 'float64' ? 11 : 10) })[0],
        ],
        {
          kernel_shape: attr.ints(geo.kernel),
          strides: attr.ints(geo.strides),
          dilations: attr.ints(geo.dilations),
          group: attr.int(C),
          pads: attr.ints([...geo.padBegin, ...geo.padEnd]),
        },
      )[0];
    }
    const Kg = K / group;
    const colsR = g.op('Reshape', [cols, ints(g, [0, group, Cg * KK, outPlane])])[0]; // N×g×(Cg·k²)×P
    const dyR = g.op('Reshape', [dY, ints(g, [0, group, Kg, outPlane])])[0];
    const dyT = g.op('Transpose', [dyR], { perm: attr.ints([0, 1, 3, 2]) })[0]; // N×g×P×Kg
    const per = g.op('MatMul', [colsR, dyT])[0]; // N×g×(Cg·k²)×Kg
    const sum = g.op('ReduceSum', [per, ints(g, [0])], { keepdims: attr.int(0) })[0]; // g×(Cg·k²)×Kg
    const t = g.op('Transpose', [sum], { perm: attr.ints([0, 2, 1]) })[0]; // g×Kg×(Cg·k²)
    return g.op('Reshape', [t, ints(g, wShape)])[0];
  }

  // Small output planes (late layers): transpose X once to C×N×H×W, one strided Slice per kernel offset, stacked to
  // (C·k²)×(N·Ho·Wo), and a single Gemm with dY as K×(N·Ho·Wo) (a large inner dimension for the GEMM).
  const perm = [1, 0, ...spatialAxes];
  const xt = g.op('Transpose', [xp], { perm: attr.ints(perm) })[0]; // C×N×Hp×Wp
  let cols: string;
  if (KK === 1) cols = sliceAt(xt, offsets[0]);
  else {
    const parts = offsets.map((off) => g.op('Unsqueeze', [sliceAt(xt, off), ints(g, [1])])[0]);
    cols = g.op('Concat', parts, { axis: attr.int(1) })[0]; // C×KK×N×Ho×Wo
  }
  const dyt = g.op('Transpose', [dY], { perm: attr.ints(perm) })[0]; // K×N×Ho×Wo
  if (group === 1) {
    const colsR = g.op('Reshape', [cols, ints(g, [C * KK, -1])])[0];
    const dyR = g.op('Reshape', [dyt, ints(g, [K, -1])])[0];
    const dw = g.op('Gemm', [dyR, colsR], { transB: attr.int(1) })[0]; // K×(C·KK)
    return g.op('Reshape', [dw, ints(g, wShape)])[0];
  }
  const Kg = K / group;
  const colsR = g.op('Reshape', [cols, ints(g, [group, Cg * KK, -1])])[0];
  const colsT = g.op('Transpose', [colsR], { perm: attr.ints([0, 2, 1]) })[0];
  const dyR = g.op('Reshape', [dyt, ints(g, [group, Kg, -1])])[0];
  const dw = g.op('MatMul', [dyR, colsT])[0]; // g×Kg×(Cg·KK)
  return g.op('Reshape', [dw, ints(g, wShape)])[0];
}

/** Kernel offsets in row-major order (matching W's flattened layout). */
function kernelOffsets(kernel: number[]): number[][] {
  let out: number[][] = [[]];
  for (const k of kernel) {
    const next: number[][] = [];
    for (const o of out) for (let i = 0; i < k; i++) next.push([...o, i]);
    out = next;
  }
  return out;
}

function biasGrad(g: GradEmitter, dY: string, s: number): string {
  return g.op('ReduceSum', [dY, ints(g, [0, ...Array.from({ length: s }, (_, i) => i + 2)])], {
    keepdims: attr.int(0),
  })[0];
}

/** Conv(X N×C×H×W, W K×(C/g)×k…, B K) → dX, dW, dB. */
export const convGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null, null];
  const [x, w, b] = node.inputs;
  const xs = shapeOf(g, x, node);
  const ws = staticDims(shapeOf(g, w, node), node, 'weight shape');
  const ys = shapeOf(g, node.outputs[0], node);
  const geo = convGeometry(node, xs, ys, ws);
  const group = intAttr(node, 'group', 1);
  return [
    convInputGrad(g, dY, w, geo, group),
    convWeightGrad(g, x, dY, geo, group, ws),
    b ? biasGrad(g, dY, xs.length - 2) : null,
  ];
};

/**
 * ConvTranspose(X N×Cin×H×W, W Cin×(Cout/g)×k…, B Cout) → dX, dW, dB. Its adjoint is a Conv of dY with the same W;
 * dW is the conv weight gradient with the roles of input (dY) and output gradient (X) exchanged.
 */
export const convTransposeGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null, null];
  const [x, w, b] = node.inputs;
  const xs = shapeOf(g, x, node);
  const ws = staticDims(shapeOf(g, w, node), node, 'weight shape');
  const ys = shapeOf(g, node.outputs[0], node);
  const s = xs.length - 2;
  const inSize = staticDims(xs.slice(2), node, 'spatial input size');
  const outSize = staticDims(ys.slice(2), node, 'spatial output size');
  const kernel = intsAttr(node, 'kernel_shape') ?? ws.slice(2);
  const strides = intsAttr(node, 'strides') ?? new Array(s).fill(1);
  const dilations = intsAttr(node, 'dilations') ?? new Array(s).fill(1);
  const outPadding = intsAttr(node, 'output_padding') ?? new Array(s).fill(0);
  const group = intAttr(node, 'group', 1);
  let pb: number[];
  let pe: number[];
  const pads = intsAttr(node, 'pads');
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  if (pads && autoPad === 'NOTSET') {
    pb = pads.slice(0, s);
    pe = pads.slice(s);
  } else {
    // output_shape or SAME_*: total padding follows from the actual output size.
    pb = [];
    pe = [];
    for (let i = 0; i < s; i++) {
      const total = strides[i] * (inSize[i] - 1) + outPadding[i] + (kernel[i] - 1) * dilations[i] + 1 - outSize[i];
      const small = Math.floor(total / 2);
      pb.push(autoPad === 'SAME_LOWER' ? total - small : small);
      pe.push(autoPad === 'SAME_LOWER' ? small : total - small);
    }
  }
  // Y positions beyond what X reaches (output_padding past pads) get no gradient: crop dY there.
  let dy = dY;
  const crop = pe.map((p, i) => Math.max(0, outPadding[i] - p));
  const dySize = outSize.map((n, i) => n - crop[i]);
  if (crop.some((c) => c > 0)) {
    const axes = Array.from({ length: s }, (_, i) => i + 2);
    dy = g.op('Slice', [dY, ints(g, new Array(s).fill(0)), ints(g, dySize), ints(g, axes)])[0];
  }
  const peConv = pe.map((p, i) => Math.max(0, p - outPadding[i]));
  const geo: ConvGeometry = {
    inSize: dySize,
    outSize: inSize,
    kernel,
    strides,
    dilations,
    padBegin: pb,
    padEnd: peConv,
  };
  const convAttrs = {
    kernel_shape: attr.ints(kernel),
    strides: attr.ints(strides),
    dilations: attr.ints(dilations),
    group: attr.int(group),
    pads: attr.ints([...pb, ...peConv]),
  };
  const dx = g.op('Conv', [dy, w], convAttrs)[0];
  // Conv weight of the adjoint conv is W itself (K = Cin, C/g = Cout/g): same weight-gradient formulation.
  const dw = convWeightGrad(g, dy, x, geo, group, ws);
  return [dx, dw, b ? biasGrad(g, dY, s) : null];
};
