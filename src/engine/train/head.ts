/**
 * The linear classification head every trained task and encoder puts on its features (Masud et al. 2022 §3.3:
 * "a single dense layer with 2 output classes"), and softmax cross-entropy as ONNX operators. Used by the downstream
 * linear and fine-tuning tasks, the QC model and FractalDB pretraining.
 */
import { mulberry32 } from '../../util/random.js';
import type { GraphBuilder } from '../ir/builder.js';
import type { Tensor } from '../ir/graph.js';

/**
 * PyTorch `nn.Linear(inF, outF)` default initialisation: weight and bias ~ U(−1/√inF, 1/√inF) (kaiming_uniform with
 * a = √5 reduces to this bound for the weight). Weight outF×inF (used with Gemm transB), bias outF. Seeded.
 */
export function linearInit(inF: number, outF: number, seed: number): { weight: Tensor; bias: Tensor } {
  const rnd = mulberry32(seed);
  const bound = 1 / Math.sqrt(inF);
  const w = new Float32Array(outF * inF);
  for (let i = 0; i < w.length; i++) w[i] = (2 * rnd() - 1) * bound;
  const bi = new Float32Array(outF);
  for (let i = 0; i < outF; i++) bi[i] = (2 * rnd() - 1) * bound;
  return {
    weight: { dtype: 'float32', dims: [outF, inF], data: w },
    bias: { dtype: 'float32', dims: [outF], data: bi },
  };
}

/**
 * Appends logits = features·Wᵀ + b (features N×D → logits N×K), parameters `<prefix>weight` K×D, `<prefix>bias` K.
 */
export function appendLinearHead(
  b: GraphBuilder,
  features: string,
  inF: number,
  classes: number,
  seed: number,
  prefix = 'head.',
): { logits: string; params: string[] } {
  const { weight, bias } = linearInit(inF, classes, seed);
  const w = b.param(`${prefix}weight`, weight);
  const bb = b.param(`${prefix}bias`, bias);
  const logits = b.gemm(features, w, bb, { transB: true });
  return { logits, params: [w, bb] };
}

/** Mean softmax cross-entropy: −mean_n Σ_k y[n,k]·log softmax(logits)[n,k] (y one-hot N×K) → scalar. */
export function appendCrossEntropy(b: GraphBuilder, logits: string, onehot: string): string {
  const lsm = b.logSoftmax(logits, -1);
  const perRow = b.reduceSum(b.mul(lsm, onehot), [1], false);
  return b.neg(b.reduceMean(perRow, undefined, false));
}
