/**
 * The typed registry of gradient rules: ONNX op type → rule. Adding an operator is a rule in its family file plus
 * one line here. Ops in {@link NO_GRAD_OPS} have integer/boolean outputs or are piecewise constant: no gradient.
 */
import type { Node } from '../ir/graph.js';
import { QCBENCH_DOMAIN } from '../ir/shapes.js';
import * as act from './activation.js';
import { convGrad, convTransposeGrad } from './conv.js';
import * as ew from './elementwise.js';
import { gemmGrad, matMulGrad } from './matmul.js';
import { batchNormGrad, batchNormTrainGrad, layerNormGrad } from './norm.js';
import { averagePoolGrad, globalAveragePoolGrad, globalMaxPoolGrad, maxPoolGrad } from './pool.js';
import * as red from './reduce.js';
import * as sh from './shape.js';
import type { GradRule } from './types.js';

export const GRAD_RULES = {
  // conv.ts
  Conv: convGrad,
  ConvTranspose: convTransposeGrad,
  // pool.ts
  MaxPool: maxPoolGrad,
  AveragePool: averagePoolGrad,
  GlobalAveragePool: globalAveragePoolGrad,
  GlobalMaxPool: globalMaxPoolGrad,
  // norm.ts
  BatchNormalization: batchNormGrad,
  LayerNormalization: layerNormGrad,
  // activation.ts
  Relu: act.reluGrad,
  LeakyRelu: act.leakyReluGrad,
  PRelu: act.preluGrad,
  Elu: act.eluGrad,
  Sigmoid: act.sigmoidGrad,
  Softplus: act.softplusGrad,
  HardSigmoid: act.hardSigmoidGrad,
  HardSwish: act.hardSwishGrad,
  Tanh: act.tanhGrad,
  Erf: act.erfGrad,
  Gelu: act.geluGrad,
  Softmax: act.softmaxGrad,
  LogSoftmax: act.logSoftmaxGrad,
  Clip: act.clipGrad,
  Dropout: act.dropoutGrad,
  // elementwise.ts
  Add: ew.addGrad,
  Sub: ew.subGrad,
  Mul: ew.mulGrad,
  Div: ew.divGrad,
  Pow: ew.powGrad,
  Sqrt: ew.sqrtGrad,
  Exp: ew.expGrad,
  Log: ew.logGrad,
  Neg: ew.negGrad,
  Abs: ew.absGrad,
  Reciprocal: ew.reciprocalGrad,
  Min: ew.extremumGrad,
  Max: ew.extremumGrad,
  Sum: ew.sumGrad,
  Mean: ew.meanGrad,
  Where: ew.whereGrad,
  Cast: ew.castGrad,
  // matmul.ts
  MatMul: matMulGrad,
  Gemm: gemmGrad,
  // reduce.ts
  ReduceSum: red.reduceSumGrad,
  ReduceMean: red.reduceMeanGrad,
  ReduceMax: red.reduceExtremumGrad,
  ReduceMin: red.reduceExtremumGrad,
  ReduceL2: red.reduceL2Grad,
  ReduceSumSquare: red.reduceSumSquareGrad,
  ReduceLogSumExp: red.reduceLogSumExpGrad,
  // shape.ts
  Transpose: sh.transposeGrad,
  Reshape: sh.reshapeLikeGrad,
  Flatten: sh.reshapeLikeGrad,
  Squeeze: sh.reshapeLikeGrad,
  Unsqueeze: sh.reshapeLikeGrad,
  Identity: sh.identityGrad,
  Expand: sh.expandGrad,
  Concat: sh.concatGrad,
  Split: sh.splitGrad,
  Slice: sh.sliceGrad,
  Gather: sh.gatherGrad,
  Pad: sh.padGrad,
} satisfies Record<string, GradRule>;

/**
 * Rules for the engine's private-domain ops (domain {@link QCBENCH_DOMAIN}): custom gradients. Such a node exists
 * only while a training step is compiled; the compiler expands it into standard ops after the backward pass is built.
 */
export const QCBENCH_GRAD_RULES: Readonly<Record<string, GradRule>> = {
  // norm.ts; expanded by train/batchnorm.ts expandBatchNormTrain
  BatchNormTrain: batchNormTrainGrad,
};

/** The gradient rule of a node (standard or private domain), undefined when there is none. */
export function gradRuleOf(node: Node): GradRule | undefined {
  if (node.domain === '' || node.domain === 'ai.onnx') {
    return Object.hasOwn(GRAD_RULES, node.opType) ? GRAD_RULES[node.opType as keyof typeof GRAD_RULES] : undefined;
  }
  if (node.domain === QCBENCH_DOMAIN && Object.hasOwn(QCBENCH_GRAD_RULES, node.opType))
    return QCBENCH_GRAD_RULES[node.opType];
  return undefined;
}

/** Ops through which no gradient flows (integer/boolean results, or piecewise-constant functions). */
export const NO_GRAD_OPS: ReadonlySet<string> = new Set([
  'Shape',
  'Size',
  'Constant',
  'ConstantOfShape',
  'Equal',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'And',
  'Or',
  'Not',
  'Xor',
  'ArgMax',
  'ArgMin',
  'Sign',
  'Floor',
  'Ceil',
  'Round',
  'NonZero',
  'IsNaN',
  'IsInf',
  'Range',
  'OneHot',
  'RandomNormal',
  'RandomNormalLike',
  'RandomUniform',
  'RandomUniformLike',
  'TopK',
]);
