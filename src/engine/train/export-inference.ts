/**
 * Inference export: a trained model (a Trainer, or a graph with weights) as a standalone ONNX file that
 * onnxruntime loads: trained weights and BN running statistics as initializers, BatchNormalization in inference
 * mode, only the nodes the requested outputs need (the loss and its label inputs are dropped).
 */
import { QcbError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import type { Graph } from '../ir/graph.js';
import { inferShapes } from '../ir/shapes.js';
import { exportOnnx } from '../onnx/export.js';
import { bnInferenceMode } from './batchnorm.js';
import { cloneGraph, pruneDead } from './compile.js';
import { Trainer } from './trainer.js';

export interface InferenceExportOptions {
  /** Outputs of the exported model (default: the forward graph's outputs except the loss). */
  outputs?: string[];
  /** metadata_props written into the model. */
  metadata?: Record<string, string>;
}

/** Builds the inference graph (see module doc) without writing it. */
export function inferenceGraph(src: Trainer | Graph, opts: InferenceExportOptions = {}): Graph {
  const isTrainer = src instanceof Trainer;
  const g = cloneGraph(isTrainer ? src.compiled.forward : src);
  if (isTrainer) for (const [k, t] of src.getParams()) if (g.initializers.has(k)) g.initializers.set(k, t);
  const loss = isTrainer ? src.compiled.loss : undefined;
  const outs = opts.outputs ?? g.outputs.map((o) => o.name).filter((o) => o !== loss);
  if (outs.length === 0) {
    throw new QcbError('QCB_ONNX_GRAPH', `graph '${g.name}' has no output to export besides the loss`, {
      fix: 'pass the output names (e.g. features, logits)',
    });
  }
  inferShapes(g);
  for (const o of outs) {
    if (!g.values.has(o))
      throw new QcbError('QCB_ONNX_GRAPH', `output '${o}' is not a value of graph '${g.name}'`, {
        key: o,
        fix: 'name an existing value',
      });
  }
  for (const n of g.nodes) if (n.opType === 'BatchNormalization') bnInferenceMode(n);
  g.outputs = outs.map((o) => ({ name: o, dtype: g.values.get(o)!.dtype }));
  pruneDead(g);
  const used = new Set(g.nodes.flatMap((n) => n.inputs));
  for (const o of g.outputs) used.add(o.name);
  g.inputs = g.inputs.filter((i) => used.has(i.name));
  g.values.clear();
  inferShapes(g);
  return g;
}

/** Writes the inference model atomically to `path` and returns its graph. */
export function exportInference(src: Trainer | Graph, path: string, opts: InferenceExportOptions = {}): Graph {
  const g = inferenceGraph(src, opts);
  writeFileAtomic(path, exportOnnx(g, { metadata: opts.metadata }));
  return g;
}
