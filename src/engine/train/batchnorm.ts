/**
 * BatchNormalization in training mode, lowered to primitive ONNX ops so that the engine's autodiff differentiates
 * it exactly (through the batch statistics, as PyTorch does) and onnxruntime's CPU build, which has no training
 * kernel for BatchNormalization, runs it:
 *
 *   μ = mean(X over N,H,W);  σ² = mean((X−μ)² over N,H,W)  (biased, used to normalise)
 *   Y = (X−μ) / √(σ² + ε) · γ + β
 *   running_mean' = m·running_mean + (1−m)·μ;  running_var' = m·running_var + (1−m)·σ²·n/(n−1)
 *
 * with ONNX's momentum m (PyTorch momentum 0.1 ≙ ONNX 0.9) and n = N·H·W (unbiased running variance as PyTorch).
 */
import { GraphBuilder } from '../ir/builder.js';
import { attr, type Graph, type Node } from '../ir/graph.js';

/** A BN node switched to training mode: its running-stat inputs and the values holding their updates. */
export interface BnUpdate {
  node: string;
  runningMean: string;
  runningVar: string;
  newMean: string;
  newVar: string;
}

function attrNum(n: Node, k: string, d: number): number {
  const a = n.attrs[k];
  return a && (a.type === 'float' || a.type === 'int') ? a.value : d;
}

/**
 * Replaces each selected BatchNormalization node by its training-mode decomposition, in place (the graph stays in
 * topological order). Needs `graph.values` (run inferShapes first) for the input rank and sizes.
 * @param select which BN nodes train (others stay in inference mode)
 */
export function lowerBatchNormTraining(graph: Graph, select: (n: Node) => boolean): BnUpdate[] {
  const updates: BnUpdate[] = [];
  const old = graph.nodes;
  const b = new GraphBuilder(graph);
  graph.nodes = [];
  for (const n of old) {
    if (n.opType !== 'BatchNormalization' || n.domain !== '' || !select(n)) {
      graph.nodes.push(n);
      continue;
    }
    const [x, scale, bias, rm, rv] = n.inputs;
    const xi = graph.values.get(x);
    const rank = xi?.shape?.length ?? 4;
    const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
    const eps = attrNum(n, 'epsilon', 1e-5);
    const mom = attrNum(n, 'momentum', 0.9);
    const y = n.outputs[0];
    b.scope(`${n.name}:train`, () => {
      const mean = b.reduceMean(x, axes, true);
      const xc = b.sub(x, mean);
      const variance = b.reduceMean(b.mul(xc, xc), axes, true);
      const std = b.sqrt(b.add(variance, b.scalar(eps)));
      const bshape = [1, -1, ...Array.from({ length: rank - 2 }, () => 1)];
      const g = b.reshape(scale, bshape);
      const be = b.reshape(bias, bshape);
      // final node writes the original output name so consumers are unchanged
      const norm = b.mul(b.div(xc, std), g);
      graph.nodes.push({
        opType: 'Add',
        domain: '',
        name: b.fresh('bn_out_node'),
        inputs: [norm, be],
        outputs: [y],
        attrs: {},
      });
      // running statistics (no gradient flows: they do not reach the loss)
      const m1 = b.reshape(mean, [-1]);
      const v1 = b.reshape(variance, [-1]);
      const count = b.div(
        b.cast(b.op1('Size', [x]), 'float32'),
        b.cast(b.op1('Gather', [b.op1('Shape', [x]), b.ints([1])], { axis: 0 }), 'float32'),
      );
      const unbiased = b.div(b.mul(v1, count), b.op1('Max', [b.sub(count, b.scalar(1)), b.scalar(1)]));
      const newMean = b.add(b.mul(rm, b.scalar(mom)), b.mul(m1, b.scalar(1 - mom)));
      const newVar = b.add(b.mul(rv, b.scalar(mom)), b.mul(unbiased, b.scalar(1 - mom)));
      updates.push({ node: n.name, runningMean: rm, runningVar: rv, newMean, newVar });
    });
    // outputs other than Y (training outputs of the original node) are not supported as consumers
    for (const extra of n.outputs.slice(1))
      if (extra)
        graph.nodes.push({
          opType: 'Identity',
          domain: '',
          name: b.fresh('bn_extra_node'),
          inputs: [extra === n.outputs[1] ? updates[updates.length - 1].newMean : updates[updates.length - 1].newVar],
          outputs: [extra],
          attrs: {},
        });
  }
  return updates;
}

/** Sets a BN node to inference mode (drops training outputs and the training_mode attribute). */
export function bnInferenceMode(n: Node): void {
  delete n.attrs.training_mode;
  n.outputs = [n.outputs[0]];
  if (!n.attrs.epsilon) n.attrs.epsilon = attr.float(1e-5);
}
