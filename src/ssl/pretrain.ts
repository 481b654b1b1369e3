/**
 * SSL pretraining (Masud et al. 2022 §3.2): a torchvision ResNet18 + the method's projector + its loss on two
 * augmented views, trained as one compiled ONNX training step per batch in onnxruntime, with a warm-up cosine
 * schedule, a checkpoint per epoch (a rerun resumes from it), the loss curve logged, an optional kNN monitor, and
 * the backbone exported as an inference ONNX encoder (`input` N×3×S×S → `features` N×512) plus a PretrainRecord.
 *
 * The public API; the parts live in src/ssl/pretrain/ by job:
 * - options.ts: the options, their defaults, the settings hash that identifies a pretraining;
 * - sources.ts: crop sources (memory, crop store) and the batches of the pretraining set;
 * - graph.ts: the training graph (backbone + projector + loss) and its trainers;
 * - monitor.ts: the kNN monitor;
 * - export.ts: the exported encoder;
 * - loop.ts: `pretrain()`, the training loop.
 * The schedule and the checkpoint format are generic and live in src/engine/train/ (schedule.ts, checkpoint.ts).
 * This file stays the entry point so that importers of `ssl/pretrain.js` need not know the layout.
 */
export { backboneGraph, exportBackbone } from './pretrain/export.js';
export {
  buildPretrainGraph,
  createSslTrainer,
  makeSslOptimizer,
  type PretrainGraph,
} from './pretrain/graph.js';
export { pretrain } from './pretrain/loop.js';
export { type KnnMonitor, knnMonitorFor } from './pretrain/monitor.js';
export {
  type PretrainOptions,
  type PretrainPlan,
  type PretrainResult,
  planPretrain,
  SSL_PREPROCESS,
} from './pretrain/options.js';
export { type CropSource, memoryCropSource, storeCropSource } from './pretrain/sources.js';
