/**
 * Gradient rules for MatMul (batched, broadcast, 1-D operands) and Gemm (transA/transB, alpha, beta, broadcast C).
 */
import type { Dim } from '../ir/graph.js';
import { attr } from '../ir/graph.js';
import type { GradEmitter, GradRule } from './types.js';
import { floatAttr, intAttr } from '../ir/attrs.js';
import { ints, scalar, shapeOf, unbroadcast } from './util.js';

function swapLast(g: GradEmitter, v: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 1] = rank - 2;
  perm[rank - 2] = rank - 1;
  return g.op('Transpose', [v], { perm: attr.ints(perm) })[0];
}

/**
 * MatMul A (…×M×K) · B (…×K×N) → Y (…×M×N), numpy semantics. dA = dY·Bᵀ, dB = Aᵀ·dY, each summed over broadcast
 * batch dims. A weight B of rank 2 under a batched A gets one Gemm over the flattened batch (no per-batch products).
 */
export const matMulGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null];
  const [a, b] = node.inputs;
  let as: Dim[] = shapeOf(g, a, node);
  let bs: Dim[] = shapeOf(g, b, node);
  let A = a;
  let B = b;
  let dy = dY;
  // 1-D operands: promote as numpy does, squeeze back at the end.
  const aVec = as.length === 1;
  const bVec = bs.length === 1;
  if (aVec) {
    A = g.op('Unsqueeze', [a, ints(g, [0])])[0];
    as = [1, as[0]];
  }
  if (bVec) {
    B = g.op('Unsqueeze', [b, ints(g, [1])])[0];
    bs = [bs[0], 1];
  }
  const outRank = Math.max(as.length, bs.length);
  if (aVec || bVec) {
    const axes: number[] = [];
    if (aVec) axes.push(outRank - 2);
    if (bVec) axes.push(outRank - 1);
    dy = g.op('Unsqueeze', [dY, ints(g, axes)])[0];
  }
  const batch = (s: Dim[]) => s.slice(0, -2);
  const ob = batch(as.length >= bs.length ? as : bs).map((d, i, arr) => {
    const la = batch(as);
    const lb = batch(bs);
    const da = la[i - (arr.length - la.length)];
    const db = lb[i - (arr.length - lb.length)];
    return da === undefined || da === 1 ? (db ?? d) : da;
  });
  const M = as[as.length - 2];
  const K = as[as.length - 1];
  const N = bs[bs.length - 1];
  let dA: string;
  let dB: string;
  dA = g.op('MatMul', [dy, swapLast(g, B, bs.length)])[0];
  dA = unbroadcast(g, dA, [...ob, M, K], as);
  if (bs.length === 2 && as.length > 2 && typeof K === 'number' && typeof N === 'number') {
    const a2 = g.op('Reshape', [A, ints(g, [-1, K])])[0];
    const d2 = g.op('Reshape', [dy, ints(g, [-1, N])])[0];
    dB = g.op('Gemm', [a2, d2], { transA: attr.int(1) })[0];
  } else {
    dB = g.op('MatMul', [swapLast(g, A, as.length), dy])[0];
    dB = unbroadcast(g, dB, [...ob, K, N], bs);
  }
  if (aVec) dA = g.op('Squeeze', [dA, ints(g, [0])])[0];
  if (bVec) dB = g.op('Squeeze', [dB, ints(g, [1])])[0];
  return [dA, dB];
};

/** Gemm Y = alpha·A'·B' + beta·C (A' = Aᵀ if transA…), A and B 2-D, C broadcast to M×N. */
export const gemmGrad: GradRule = (node, [dY], g) => {
  if (!dY) return [null, null, null];
  const [a, b, c] = node.inputs;
  const alpha = floatAttr(node, 'alpha', 1);
  const beta = floatAttr(node, 'beta', 1);
  const tA = intAttr(node, 'transA', 0);
  const tB = intAttr(node, 'transB', 0);
  const gemm = (x: string, y: string, ta: number, tb: number) => {
    const at: Record<string, ReturnType<typeof attr.int>> = {};
    if (ta) at.transA = attr.int(1);
    if (tb) at.transB = attr.int(1);
    if (alpha !== 1) at.alpha = attr.float(alpha);
    return g.op('Gemm', [x, y], at)[0];
  };
  let dA: string;
  let dB: string;
  if (!tA && !tB) {
    dA = gemm(dY, b, 0, 1);
    dB = gemm(a, dY, 1, 0);
  } else if (!tA && tB) {
    dA = gemm(dY, b, 0, 0);
    dB = gemm(dY, a, 1, 0);
  } else if (tA && !tB) {
    dA = gemm(b, dY, 0, 1);
    dB = gemm(a, dY, 0, 0);
  } else {
    dA = gemm(b, dY, 1, 1);
    dB = gemm(dY, a, 1, 1);
  }
  let dC: string | null = null;
  if (c) {
    const ys = shapeOf(g, node.outputs[0], node);
    dC = unbroadcast(g, dY, ys, shapeOf(g, c, node));
    if (beta !== 1) dC = g.op('Mul', [dC, scalar(g, beta, c)])[0];
  }
  return [dA, dB, dC];
};
