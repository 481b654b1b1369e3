/**
 * BatchNormalization in training mode (batch statistics, as PyTorch's `model.train()`), which onnxruntime's CPU
 * build has no training kernel for:
 *
 *   μ = mean(X over N,H,W);  σ² = mean((X−μ)² over N,H,W)  (biased, used to normalise)
 *   Y = (X−μ) / √(σ² + ε) · γ + β
 *   running_mean' = m·running_mean + (1−m)·μ;  running_var' = m·running_var + (1−m)·σ²·n/(n−1)
 *
 * with ONNX's momentum m (PyTorch momentum 0.1 ≙ ONNX 0.9) and n = N·H·W (unbiased running variance as PyTorch).
 *
 * Two lowerings, the same math:
 * - fused (compileTrainStep's default): a private-domain node `qcbench.BatchNormTrain` (X, γ, β → Y, μ, σ², X−μ)
 *   whose gradient is a hand-written rule (grad/norm.ts batchNormTrainGrad: per-channel coefficients, three
 *   full-tensor passes for dX); {@link expandBatchNormTrain} replaces it after differentiation by ReduceMean, Sub,
 *   Mul, ReduceMean and one inference-mode BatchNormalization(X−μ, γ, β, 0, σ²), a per-channel affine map in a
 *   single pass;
 * - primitive (lowerBatchNormTraining's default; `bnFused: false` in compileTrainStep): ReduceMean, Sub, Mul,
 *   ReduceMean, Sqrt, Div, Mul, Add, differentiated op by op by the autodiff (more full-tensor passes; kept as the
 *   reference for the fused rule).
 */
import { floatAttr } from '../ir/attrs.js';
import { GraphBuilder } from '../ir/builder.js';
import { attr, type Graph, type Node, type Tensor } from '../ir/graph.js';
import { QCBENCH_DOMAIN } from '../ir/shapes.js';

/** A BN node switched to training mode: its running-stat inputs and the values holding their updates. */
export interface BnUpdate {
  node: string;
  runningMean: string;
  runningVar: string;
  newMean: string;
  newVar: string;
}

/** Options of {@link lowerBatchNormTraining}. */
export interface BnLoweringOptions {
  /**
   * Emit `qcbench.BatchNormTrain` nodes with the hand-written gradient (the graph must then go through
   * {@link expandBatchNormTrain} before a runtime sees it), or (default false) primitive ops that autodiff
   * differentiates op by op and any runtime runs as they are. compileTrainStep uses the fused form.
   */
  fused?: boolean;
}

/**
 * Replaces each selected BatchNormalization node by its training-mode form, in place (the graph stays in
 * topological order). Needs `graph.values` (run inferShapes first) for the input rank and sizes.
 * @param select which BN nodes train (others stay in inference mode)
 */
export function lowerBatchNormTraining(
  graph: Graph,
  select: (n: Node) => boolean,
  options: BnLoweringOptions = {},
): BnUpdate[] {
  const fused = options.fused ?? false;
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
    const eps = floatAttr(n, 'epsilon', 1e-5);
    const mom = floatAttr(n, 'momentum', 0.9);
    const y = n.outputs[0];
    b.scope(`${n.name}:train`, () => {
      let m1: string;
      let v1: string;
      if (fused) {
        // one node with a custom gradient; writes the original output name so consumers are unchanged
        m1 = b.fresh('mean');
        v1 = b.fresh('var');
        graph.nodes.push({
          opType: 'BatchNormTrain',
          domain: QCBENCH_DOMAIN,
          name: b.fresh('bn_train_node'),
          inputs: [x, scale, bias],
          outputs: [y, m1, v1, b.fresh('centered')],
          attrs: { epsilon: attr.float(eps) },
        });
      } else {
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
        m1 = b.reshape(mean, [-1]);
        v1 = b.reshape(variance, [-1]);
      }
      // running statistics (no gradient flows: they do not reach the loss)
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

/**
 * Expands every `qcbench.BatchNormTrain` node into standard ops, in place (after the backward pass is built: its
 * gradient rule reads the node's outputs, which keep their names). Y is an inference-mode BatchNormalization of
 * X−μ with mean 0 and the batch variance: Y = (X−μ)·γ/√(σ²+ε) + β in one pass.
 * @returns the number of expanded nodes
 */
export function expandBatchNormTrain(graph: Graph): number {
  const isBnTrain = (n: Node) => n.opType === 'BatchNormTrain' && n.domain === QCBENCH_DOMAIN;
  if (!graph.nodes.some(isBnTrain)) return 0;
  const old = graph.nodes;
  const b = new GraphBuilder(graph);
  graph.nodes = [];
  const zeros = new Map<string, string>();
  let count = 0;
  for (const n of old) {
    if (!isBnTrain(n)) {
      graph.nodes.push(n);
      continue;
    }
    count++;
    const [x, scale, bias] = n.inputs;
    const [y, mean, variance, xc] = n.outputs;
    const xi = graph.values.get(x);
    const rank = xi?.shape?.length ?? 4;
    const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
    const dtype = xi?.dtype === 'float64' ? 'float64' : 'float32';
    const emit = (opType: string, inputs: string[], output: string, attrs: Node['attrs'] = {}) =>
      graph.nodes.push({ opType, domain: '', name: b.fresh(`${opType}_node`), inputs, outputs: [output], attrs });
    const reduceMean = (v: string, keep: boolean, output: string) =>
      graph.opset >= 18
        ? emit('ReduceMean', [v, b.ints(axes)], output, { keepdims: attr.int(keep ? 1 : 0) })
        : emit('ReduceMean', [v], output, { axes: attr.ints(axes), keepdims: attr.int(keep ? 1 : 0) });
    b.scope(`${n.name}:expand`, () => {
      const m4 = b.fresh('mean');
      reduceMean(x, true, m4);
      emit('Sub', [x, m4], xc);
      reduceMean(b.mul(xc, xc), false, variance);
      emit('Reshape', [m4, b.ints([-1])], mean);
      const c = xi?.shape?.[1];
      let zero: string;
      if (typeof c === 'number') {
        const key = `${dtype}|${c}`;
        if (!zeros.has(key)) {
          const t = { dtype, dims: [c], data: dtype === 'float64' ? new Float64Array(c) : new Float32Array(c) };
          zeros.set(key, b.constant(t as Tensor, 'bn_zero_mean'));
        }
        zero = zeros.get(key) as string;
      } else {
        const t = { dtype, dims: [1], data: dtype === 'float64' ? new Float64Array(1) : new Float32Array(1) };
        zero = b.op1('ConstantOfShape', [b.op1('Shape', [scale])], { value: t as Tensor });
      }
      emit('BatchNormalization', [xc, scale, bias, zero, variance], y, {
        epsilon: n.attrs.epsilon ?? attr.float(1e-5),
      });
    });
  }
  return count;
}

/** Sets a BN node to inference mode (drops training outputs and the training_mode attribute). */
export function bnInferenceMode(n: Node): void {
  delete n.attrs.training_mode;
  n.outputs = [n.outputs[0]];
  if (!n.attrs.epsilon) n.attrs.epsilon = attr.float(1e-5);
}
