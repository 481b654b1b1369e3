/**
 * The typed registry of gradient rules: ONNX op type → rule. Adding an operator is a rule in its family file plus
 * one line here. Ops in {@link NO_GRAD_OPS} have integer/boolean outputs or are piecewise constant: no gradient.
 */
import * as act from './activation.js';
import { convGrad, convTransposeGrad } from './conv.js';
import * as ew from './elementwise.js';
import { gemmGrad, matMulGrad } from './matmul.js';
import { batchNormGrad, layerNormGrad } from './norm.js';
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
