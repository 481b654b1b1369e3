/**
 * Static int8 quantisation of an fp32 graph (post-training, QDQ format): BatchNorm folded into its convolution
 * (fold.ts), the operators with an int8 path chosen (qdq.ts), the ranges of their activations calibrated on real
 * inputs (calibrate.ts), then QuantizeLinear / DequantizeLinear written around them with per-channel int8 weights.
 * onnxruntime turns the groups into integer kernels when a session is created; {@link optimizedOpTypes} saves and
 * reads back that optimised graph to show which ones it did.
 *
 * Operators without an int8 path (and compute-heavy ops that are ineligible, e.g. a Conv with a computed weight)
 * stay fp32 between a DequantizeLinear and a QuantizeLinear; the report names them.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Graph, Node } from '../ir/graph.js';
import { inferShapes } from '../ir/shapes.js';
import { importOnnx } from '../onnx/import.js';
import { sessionOptions } from '../runtime/session.js';
import { cloneGraph } from '../train/compile.js';
import { type CalibrationMethod, calibrateRanges } from './calibrate.js';
import { foldBatchNorm } from './fold.js';
import { type ActivationType, applyQdq, planQdq } from './qdq.js';

export type { CalibrationMethod, Range } from './calibrate.js';
export { CALIBRATION_METHODS, calibrateRanges } from './calibrate.js';
export { foldBatchNorm } from './fold.js';
export type { ActivationType } from './qdq.js';
export { activationParams, INT8_OPS, planQdq, quantizeWeight } from './qdq.js';

/** Numeric precision of a model or of the benchmark's frozen features. */
export type Precision = 'fp32' | 'int8';

/** The precisions `--precision` and `runtime.precision` accept. */
export const PRECISIONS: readonly Precision[] = ['fp32', 'int8'];

export interface QuantizeOptions {
  /** Calibration batches: feeds of the graph's inputs (float32). */
  calibration: Iterable<Record<string, ort.Tensor>> | AsyncIterable<Record<string, ort.Tensor>>;
  /** Range estimate (default minmax). */
  method?: CalibrationMethod;
  /** p of the percentile method (default 99.99). */
  percentile?: number;
  /** Activation type (default uint8: onnxruntime's U8S8 CPU kernels). */
  activations?: ActivationType;
  /** Nodes that may be quantised (default all); the rest stay fp32 without being reported. */
  include?: (n: Node) => boolean;
  threads?: number;
}

/** What quantisation did: recorded in sidecars and results. */
export interface QuantizeReport {
  format: 'qdq';
  activations: ActivationType;
  weights: 'int8 symmetric per output channel';
  method: CalibrationMethod;
  percentile?: number;
  /** Calibration batches and samples seen. */
  batches: number;
  samples: number;
  /** BatchNormalization nodes folded into their convolution. */
  folded_batchnorm: number;
  /** Quantised nodes by op type (Relu: absorbed into its producer's quantisation). */
  int8_ops: Record<string, number>;
  /** Nodes among the included ones left in fp32, by op type, with up to 5 node names each. */
  fp32_ops: Record<string, { count: number; nodes: string[] }>;
}

function countBy(nodes: Iterable<Node>): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of nodes) c[n.opType] = (c[n.opType] ?? 0) + 1;
  return c;
}

/**
 * Quantises `graph` (not modified) to int8 QDQ (see module doc).
 * @returns the QDQ graph (same inputs and outputs) and the report
 * @throws QCB_USAGE without calibration batches
 */
export async function quantizeGraph(
  graph: Graph,
  o: QuantizeOptions,
): Promise<{ graph: Graph; report: QuantizeReport }> {
  const include = o.include ?? (() => true);
  const g = cloneGraph(graph);
  const folded = foldBatchNorm(g);
  inferShapes(g);
  const plan = planQdq(g, include);
  const method = o.method ?? 'minmax';
  const cal = await calibrateRanges(g, plan.tensors, o.calibration, {
    method,
    percentile: o.percentile,
    threads: o.threads,
  });
  const dtype = o.activations ?? 'uint8';
  const fp32: QuantizeReport['fp32_ops'] = {};
  for (const n of g.nodes) {
    // (Identity and Constant compute nothing: not worth naming)
    if (plan.int8.has(n) || plan.absorbed.has(n) || !include(n) || n.opType === 'Identity' || n.opType === 'Constant')
      continue;
    const e = (fp32[n.opType] ??= { count: 0, nodes: [] });
    e.count++;
    if (e.nodes.length < 5) e.nodes.push(n.name);
  }
  const int8Ops = countBy(plan.int8);
  if (plan.absorbed.size) int8Ops.Relu = plan.absorbed.size;
  applyQdq(g, plan, cal.ranges, dtype);
  g.values.clear();
  inferShapes(g);
  return {
    graph: g,
    report: {
      format: 'qdq',
      activations: dtype,
      weights: 'int8 symmetric per output channel',
      method,
      ...(method === 'percentile' ? { percentile: o.percentile ?? 99.99 } : {}),
      batches: cal.batches,
      samples: cal.samples,
      folded_batchnorm: folded,
      int8_ops: int8Ops,
      fp32_ops: fp32,
    },
  };
}

/** onnxruntime's integer kernels (the ops a fused QDQ group becomes on the CPU). */
export const INTEGER_KERNELS: readonly string[] = [
  'QLinearConv',
  'ConvInteger',
  'QGemm',
  'QLinearMatMul',
  'MatMulInteger',
  'DynamicQuantizeMatMul',
  'MatMulIntegerToFloat',
  'QLinearAdd',
  'QLinearMul',
  'QLinearGlobalAveragePool',
  'QLinearAveragePool',
  'QLinearConcat',
  'QLinearSigmoid',
  'QLinearLeakyRelu',
];

/**
 * The op types (with counts, `domain.op` for non-default domains) of the graph onnxruntime actually runs for
 * `model` after its session optimisation, read back from the optimised model it saves
 * (SessionOptions.optimizedModelFilePath).
 */
export async function optimizedOpTypes(
  model: Uint8Array,
  o: { threads?: number; level?: 'basic' | 'extended' | 'all' } = {},
): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-optimized-'));
  try {
    const file = join(dir, 'optimized.onnx');
    const so = sessionOptions({
      intraOpNumThreads: o.threads ?? 1,
      executionProviders: ['cpu'],
      graphOptimizationLevel: o.level ?? 'all',
    });
    so.optimizedModelFilePath = file;
    const s = await ort.InferenceSession.create(model, so);
    await s.release();
    const g = importOnnx(new Uint8Array(readFileSync(file)), { inferShapes: false, foldIdentity: false, file });
    const c: Record<string, number> = {};
    for (const n of g.nodes) {
      const k = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
      c[k] = (c[k] ?? 0) + 1;
    }
    return c;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How many nodes of an {@link optimizedOpTypes} count are integer kernels, by kernel. */
export function integerKernels(ops: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(ops)) {
    const op = k.slice(k.lastIndexOf('.') + 1);
    if (INTEGER_KERNELS.includes(op)) out[k] = v;
  }
  return out;
}
