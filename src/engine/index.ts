/**
 * Public API of the engine: build or import ONNX graphs, infer shapes, differentiate, compile training steps, run
 * them in onnxruntime, export trained models, verify encoders against PyTorch references.
 */

export { appendBackward } from './grad/autodiff.js';
export type { ConvOpts, PoolOpts } from './ir/builder.js';
export { fromArray, full, GraphBuilder, int64s, randn, randu, scalar, zeros } from './ir/builder.js';
export type { Attr, Dim, DType, Graph, Node, Tensor, TensorData, ValueInfo } from './ir/graph.js';
export { attr, emptyGraph, numel } from './ir/graph.js';
export { upgradeOpset } from './ir/opset.js';
export { broadcastShapes, inferShapes, SHAPE_RULES, SUPPORTED_OPS } from './ir/shapes.js';
export { type ExportOptions, exportOnnx } from './onnx/export.js';
export { type ImportOptions, importOnnx } from './onnx/import.js';
export { type EncoderReference, maxRelError, readReference } from './onnx/reference.js';
export {
  clearSessionCache,
  defaultThreads,
  EngineSession,
  type ExecutionProvider,
  fromOrt,
  loadSession,
  type RuntimeOptions,
  sessionOptions,
  toOrt,
  validateFeeds,
} from './runtime/session.js';
export { type CompiledStep, compileTrainStep, type TrainStepSpec } from './train/compile.js';
export { exportInference, type InferenceExportOptions, inferenceGraph } from './train/export-inference.js';
export { AdamW, Lars, makeOptimizer, OPTIMIZERS, type Optimizer, Sgd } from './train/optim/index.js';
export { type StepResult, Trainer, type TrainerOptions } from './train/trainer.js';
export { type VerifyReport, verifyEncoder } from './verify.js';
