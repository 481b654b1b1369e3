/**
 * Public API of the engine: build or import ONNX graphs, infer shapes, differentiate, compile training steps, run
 * them in onnxruntime, export trained models, verify encoders against PyTorch references.
 */
export type { Attr, DType, Dim, Graph, Node, Tensor, TensorData, ValueInfo } from './ir/graph.js';
export { attr, emptyGraph, numel } from './ir/graph.js';
export { fromArray, full, GraphBuilder, int64s, mulberry32, randn, randu, scalar, zeros } from './ir/builder.js';
export type { ConvOpts, PoolOpts } from './ir/builder.js';
export { broadcastShapes, inferShapes, SHAPE_RULES, SUPPORTED_OPS } from './ir/shapes.js';
export { upgradeOpset } from './ir/opset.js';
export { importOnnx, type ImportOptions } from './onnx/import.js';
export { exportOnnx, type ExportOptions } from './onnx/export.js';
export { type EncoderReference, maxRelError, readReference } from './onnx/reference.js';
export { appendBackward } from './grad/autodiff.js';
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
export { type StepResult, Trainer, type TrainerOptions } from './train/trainer.js';
export { exportInference, inferenceGraph, type InferenceExportOptions } from './train/export-inference.js';
export { AdamW, Lars, makeOptimizer, type Optimizer, OPTIMIZERS, Sgd } from './train/optim/index.js';
export { type VerifyReport, verifyEncoder } from './verify.js';
