/**
 * Gradient rules for normalisation layers: BatchNormalization (training mode with batch statistics — running-stat
 * outputs take no gradient — and inference mode with given statistics) and LayerNormalization (opset 17).
 * Statistics are recomputed in the backward graph from X (cheap next to the convolutions, and it keeps the forward
 * graph unchanged). Also the custom gradient of the engine's private qcbench.BatchNormTrain node (the training step
 * compiler's BN), which reads the statistics and X − mean from the node's outputs instead.
 */
import { QcbError } from '../../errors.js';
import type { Node, Tensor } from '../ir/graph.js';
import { attr } from '../ir/graph.js';
import type { GradEmitter, GradRule } from './types.js';
import { floatAttr, intAttr } from '../ir/attrs.js';
import { castLike, ints, isStatic, normAxis, scalar, shapeOf, unbroadcast } from './util.js';

const op1 = (g: GradEmitter, t: string, ins: string[]) => g.op(t, ins)[0];
const sumKeep = (g: GradEmitter, v: string, axes: number[]) =>
  g.op('ReduceSum', [v, ints(g, axes)], { keepdims: attr.int(1) })[0];

/** 1/(number of elements each statistic averages): Size(x)/Size(stat) when symbolic. */
function invCount(g: GradEmitter, node: Node, x: string, axes: number[], statSize: string | number): string {
  const xs = shapeOf(g, x, node);
  const dims = axes.map((a) => xs[a]);
  if (isStatic(dims)) return scalar(g, 1 / dims.reduce((a, b) => a * b, 1), x);
  const size = g.op('Size', [x])[0];
  const denom =
    typeof statSize === 'number'
      ? g.constant({ dtype: 'int64', dims: [], data: new BigInt64Array([BigInt(statSize)]) })
      : g.op('Size', [statSize])[0];
  return op1(g, 'Reciprocal', [castLike(g, op1(g, 'Div', [size, denom]), x)]);
}

/**
 * BatchNormalization X N×C×…, scale/B/mean/var C. Training mode (training_mode=1, or extra outputs before opset 14):
 * x̂ = (x − μ_B)/σ_B, dX = scale/σ_B · (dY − mean(dY) − x̂·mean(dY·x̂)); inference mode: dX = dY·scale/σ and
 * gradients for the given mean and var as well.
 */
export const batchNormGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null, null, null, null];
  const [x, scale, , mean, variance] = node.inputs;
  const rank = shapeOf(g, x, node).length;
  const R = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
  const bshape = (v: string) => g.op('Unsqueeze', [v, ints(g, R.length > 1 ? [0, ...R.slice(1)] : [0])])[0];
  const toC = (v: string) => g.op('Reshape', [v, ints(g, [-1])])[0];
  const eps = scalar(g, floatAttr(node, 'epsilon', 1e-5), x);
  const training = intAttr(node, 'training_mode', 0) === 1 || node.outputs.slice(1).some((o) => o !== '');
  if (training) {
    const C = shapeOf(g, x, node)[1];
    const invM = invCount(g, node, x, R, typeof C === 'number' ? C : scale);
    const mu = g.op('Mul', [sumKeep(g, x, R), invM])[0];
    const xc = op1(g, 'Sub', [x, mu]);
    const vr = g.op('Mul', [sumKeep(g, op1(g, 'Mul', [xc, xc]), R), invM])[0];
    const invstd = op1(g, 'Reciprocal', [op1(g, 'Sqrt', [op1(g, 'Add', [vr, eps])])]);
    const xhat = op1(g, 'Mul', [xc, invstd]);
    const dB = sumKeep(g, dY, R);
    const dS = sumKeep(g, op1(g, 'Mul', [dY, xhat]), R);
    const inner = op1(g, 'Sub', [dY, op1(g, 'Mul', [op1(g, 'Add', [dB, op1(g, 'Mul', [xhat, dS])]), invM])]);
    const dX = op1(g, 'Mul', [inner, op1(g, 'Mul', [bshape(scale), invstd])]);
    return [dX, toC(dS), toC(dB), null, null];
  }
  const invstd = op1(g, 'Reciprocal', [op1(g, 'Sqrt', [op1(g, 'Add', [variance, eps])])]); // C
  const k = op1(g, 'Mul', [scale, invstd]); // C
  const dX = op1(g, 'Mul', [dY, bshape(k)]);
  const xc = op1(g, 'Sub', [x, bshape(mean)]);
  const sDyXc = toC(sumKeep(g, op1(g, 'Mul', [dY, xc]), R));
  const dB = toC(sumKeep(g, dY, R));
  const dS = op1(g, 'Mul', [sDyXc, invstd]);
  const dMean = g.op('Neg', [op1(g, 'Mul', [dB, k])])[0];
  const inv3 = op1(g, 'Mul', [invstd, op1(g, 'Mul', [invstd, invstd])]);
  const dVar = op1(g, 'Mul', [op1(g, 'Mul', [sDyXc, scale]), op1(g, 'Mul', [inv3, scalar(g, -0.5, x)])]);
  return [dX, dS, dB, dMean, dVar];
};

/**
 * LayerNormalization (opset 17) X, Scale, B over axes [axis, rank): dX = σ⁻¹·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),
 * dx̂ = dY·scale; dScale = Σ dY·x̂ and dB = Σ dY over the leading dims.
 */
export const layerNormGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null, null];
  const [x, scale, b] = node.inputs;
  const xs = shapeOf(g, x, node);
  const rank = xs.length;
  const axis = normAxis(intAttr(node, 'axis', -1), rank);
  const N = Array.from({ length: rank - axis }, (_, i) => axis + i);
  const eps = scalar(g, floatAttr(node, 'epsilon', 1e-5), x);
  let invH: string;
  const dims = N.map((a) => xs[a]);
  if (isStatic(dims)) invH = scalar(g, 1 / dims.reduce((p, q) => p * q, 1), x);
  else {
    const lead = xs.slice(0, axis);
    const stat = sumKeep(g, x, N);
    invH = invCount(g, node, x, N, isStatic(lead) ? lead.reduce((p, q) => p * q, 1) : stat);
  }
  const mu = op1(g, 'Mul', [sumKeep(g, x, N), invH]);
  const xc = op1(g, 'Sub', [x, mu]);
  const vr = op1(g, 'Mul', [sumKeep(g, op1(g, 'Mul', [xc, xc]), N), invH]);
  const invstd = op1(g, 'Reciprocal', [op1(g, 'Sqrt', [op1(g, 'Add', [vr, eps])])]);
  const xhat = op1(g, 'Mul', [xc, invstd]);
  const dxhat = op1(g, 'Mul', [dY, scale]);
  const m1 = op1(g, 'Mul', [sumKeep(g, dxhat, N), invH]);
  const m2 = op1(g, 'Mul', [sumKeep(g, op1(g, 'Mul', [dxhat, xhat]), N), invH]);
  const dX = op1(g, 'Mul', [invstd, op1(g, 'Sub', [op1(g, 'Sub', [dxhat, m1]), op1(g, 'Mul', [xhat, m2])])]);
  const dS = unbroadcast(g, op1(g, 'Mul', [dY, xhat]), xs, shapeOf(g, scale, node));
  const dB = b ? unbroadcast(g, dY, xs, shapeOf(g, b, node)) : null;
  return [dX, dS, dB];
};

/** A C-vector (C = dim 1 of `like`) filled with `x`: a constant when C is static, else ConstantOfShape. */
function fillC(g: GradEmitter, node: Node, like: string, x: number): string {
  const c = shapeOf(g, like, node)[1];
  const dtype = g.info(like).dtype === 'float64' ? 'float64' : 'float32';
  const data = (n: number) => (dtype === 'float64' ? new Float64Array(n).fill(x) : new Float32Array(n).fill(x));
  if (typeof c === 'number')
    return g.constant({ dtype, dims: [c], data: data(c) } as Tensor, x === 0 ? 'zeros' : 'ones');
  const shp = g.op('Slice', [g.op('Shape', [like])[0], ints(g, [1]), ints(g, [2])])[0];
  return g.op('ConstantOfShape', [shp], { value: attr.tensor({ dtype, dims: [1], data: data(1) } as Tensor) })[0];
}

/**
 * A per-channel affine map v·s + b (s, b: C) in one pass: BatchNormalization in inference mode with mean 0, var 1
 * and epsilon 0 computes exactly v·s + b (1/√1 = 1), one read and one write instead of a Mul and an Add.
 */
function channelAffine(g: GradEmitter, node: Node, v: string, s: string, b: string): string {
  return g.op('BatchNormalization', [v, s, b, fillC(g, node, v, 0), fillC(g, node, v, 1)], {
    epsilon: attr.float(0),
  })[0];
}

/**
 * qcbench.BatchNormTrain (training-mode BN with batch statistics; train/batchnorm.ts): inputs X N×C×…, scale γ,
 * bias β; outputs Y, batch mean μ, biased batch variance σ², X_c = X − μ (kept for this rule). Per channel, with
 * m = N·∏spatial, inv = (σ²+ε)^−½, a = γ·inv, x̂ = X_c·inv:
 *
 *   dβ = Σ dY,  dγ = Σ dY·x̂ = inv·Σ dY·X_c,
 *   dX = (a/m)·(m·dY − Σ dY − x̂·Σ dY·x̂) = a·dY + k·X_c + c₀,  k = −a·inv·dγ/m,  c₀ = −a·dβ/m,
 *
 * so the backward pass reads dY and X_c only: two reductions, one product, and dX as Mul + per-channel affine + Add.
 * Gradients reaching μ or σ² (when a loss uses the running-stat outputs) add dμ/m to c₀ and 2·dσ²/m to k.
 */
export const batchNormTrainGrad: GradRule = (node, [dY, dMean, dVar, dXc], g) => {
  if (dXc) {
    throw new QcbError(
      'QCB_INTERNAL',
      `output X−mean of qcbench.BatchNormTrain node '${node.name}' is for its gradient only and must not be consumed`,
      { key: node.name },
    );
  }
  if (!dY && !dMean && !dVar) return [null, null, null];
  const [x, scale] = node.inputs;
  const [, , variance, xc] = node.outputs;
  const xs = shapeOf(g, x, node);
  const R = [0, ...Array.from({ length: xs.length - 2 }, (_, i) => i + 2)];
  const bshape = ints(g, [1, -1, ...R.slice(1).map(() => 1)]);
  const toB = (v: string) => g.op('Reshape', [v, bshape])[0];
  const sum = (v: string) => g.op('ReduceSum', [v, ints(g, R)], { keepdims: attr.int(0) })[0];
  const mul = (p: string, q: string) => op1(g, 'Mul', [p, q]);
  const add = (p: string | null, q: string) => (p ? op1(g, 'Add', [p, q]) : q);
  const C = xs[1];
  const invM = invCount(g, node, x, R, typeof C === 'number' ? C : scale);
  const inv = op1(g, 'Reciprocal', [
    op1(g, 'Sqrt', [op1(g, 'Add', [variance, scalar(g, floatAttr(node, 'epsilon', 1e-5), x)])]),
  ]);
  let k: string | null = null;
  let c0: string | null = null;
  let dX: string | null = null;
  let dS: string | null = null;
  let dB: string | null = null;
  if (dY) {
    const a = mul(scale, inv);
    const ma = g.op('Neg', [mul(a, invM)])[0]; // −a/m
    dB = sum(dY);
    dS = mul(sum(mul(dY, xc)), inv);
    k = mul(mul(ma, inv), dS);
    c0 = mul(ma, dB);
    dX = mul(dY, toB(a));
  }
  if (dMean) c0 = add(c0, mul(dMean, invM));
  if (dVar) k = add(k, mul(dVar, mul(invM, scalar(g, 2, x))));
  // k and c₀ are C-vectors; a missing one is 0
  const affine = channelAffine(g, node, xc, k ?? fillC(g, node, x, 0), c0 ?? fillC(g, node, x, 0));
  return [add(dX, affine), dS, dB];
};
