/**
 * The training-step compiler: forward graph + loss → one ONNX model that computes the loss, its gradients (the
 * engine's autodiff) and the optimizer update, so a whole step is one onnxruntime `run`.
 *
 * Step model interface:
 * - inputs: the forward graph's data inputs, `lr` (float32 scalar), every trainable parameter (same name as the
 *   initializer), every state tensor (optimizer state `<param>::<suffix>`, global `optim::<name>`, BN running
 *   statistics under their initializer names);
 * - outputs: the loss, requested extra outputs (embeddings, logits), then the updated parameters and state.
 * Frozen parameters stay initializers of the step model (a linear probe trains only its head).
 */
import { QcbError } from '../../errors.js';
import { appendBackward } from '../grad/autodiff.js';
import { GraphBuilder } from '../ir/builder.js';
import type { Graph, Node, Tensor, ValueInfo } from '../ir/graph.js';
import { upgradeOpset } from '../ir/opset.js';
import { inferShapes } from '../ir/shapes.js';
import { expandBatchNormTrain, lowerBatchNormTraining } from './batchnorm.js';
import type { Optimizer } from './optim/types.js';

export interface TrainStepSpec {
  /** Forward graph computing the loss (model + loss); parameters are initializers. Not modified. */
  graph: Graph;
  /** Name of the loss value (a scalar, or a tensor whose elements are summed by the seed of 1s). */
  loss: string;
  /** Trainable parameter names, or a predicate; default: every float initializer of rank ≥ 1 the loss depends on. */
  trainable?: string[] | ((name: string, t: Tensor) => boolean);
  optimizer: Optimizer;
  /** Values to return besides the loss each step (embeddings, logits). */
  extraOutputs?: string[];
  /**
   * Which BatchNormalization nodes use batch statistics and update running stats; default: those whose scale or
   * bias is trainable (a frozen encoder keeps its BN in inference mode, as in a linear probe).
   */
  bnTraining?: boolean | ((n: Node) => boolean);
  /**
   * Training-mode BN as one node with a hand-written gradient (default true: fewer full-tensor passes), or false to
   * lower it to primitive ops differentiated op by op (the same math; a reference for tests).
   */
  bnFused?: boolean;
  /**
   * Dropout active during training steps (default true, as PyTorch's `model.train()`): each Dropout node gets
   * `training_mode = true` and a mask output; the session's `seed` makes it reproducible. Inference export keeps
   * Dropout inactive.
   */
  dropoutTraining?: boolean;
  /** Model file named in error messages; default `graph.source` (set when the graph was imported from a file). */
  file?: string;
}

/** A tensor carried between steps: fed as `input`, returned as `output`. */
export interface Carried {
  name: string;
  input: string;
  output: string;
  init: Tensor;
}

export interface CompiledStep {
  /** The step model. */
  graph: Graph;
  /** A copy of the forward graph (inference mode), for exporting trained weights. */
  forward: Graph;
  loss: string;
  dataInputs: ValueInfo[];
  lr: string;
  extraOutputs: string[];
  params: Carried[];
  /** Optimizer state, then BN running statistics. */
  state: Carried[];
  frozen: string[];
}

/** Deep-copies a graph's structure; tensors are shared (never mutated by the compiler). */
export function cloneGraph(g: Graph): Graph {
  return {
    name: g.name,
    opset: g.opset,
    inputs: g.inputs.map((v) => ({ ...v, shape: v.shape ? [...v.shape] : undefined })),
    outputs: g.outputs.map((v) => ({ ...v, shape: v.shape ? [...v.shape] : undefined })),
    initializers: new Map(g.initializers),
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } })),
    values: new Map([...g.values].map(([k, v]) => [k, { ...v, shape: v.shape ? [...v.shape] : undefined }])),
    ...(g.source !== undefined ? { source: g.source } : {}),
  };
}

const FLOAT = new Set(['float32', 'float64', 'float16']);

/** Values the loss depends on (backwards reachability). */
function ancestors(g: Graph, loss: string): Set<string> {
  const need = new Set([loss]);
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (n.outputs.some((o) => need.has(o))) for (const i of n.inputs) if (i) need.add(i);
  }
  return need;
}

/** Compiles a training step. @throws QCB_ONNX_GRAPH for unknown names, QCB_ONNX_UNSUPPORTED_OP from autodiff */
export function compileTrainStep(spec: TrainStepSpec): CompiledStep {
  const file = spec.file ?? spec.graph.source;
  const forward = cloneGraph(spec.graph);
  inferShapes(forward, { file });
  const g = cloneGraph(forward);
  upgradeOpset(g, 17); // backward graphs use opset-17 operators
  inferShapes(g, { file });
  const known = (v: string) => g.values.has(v);
  if (!known(spec.loss)) {
    throw new QcbError('QCB_ONNX_GRAPH', `loss '${spec.loss}' is not a value of graph '${g.name}'`, {
      file,
      key: spec.loss,
      fix: 'pass the name of the loss node output',
    });
  }
  for (const e of spec.extraOutputs ?? []) {
    if (!known(e))
      throw new QcbError('QCB_ONNX_GRAPH', `extra output '${e}' is not a value of graph '${g.name}'`, {
        file,
        key: e,
        fix: 'name an existing value',
      });
  }

  const bnStats = new Set<string>();
  for (const n of g.nodes) if (n.opType === 'BatchNormalization') for (const i of n.inputs.slice(3, 5)) bnStats.add(i);
  const deps = ancestors(g, spec.loss);
  let trainable: string[];
  if (Array.isArray(spec.trainable)) {
    for (const t of spec.trainable) {
      if (!g.initializers.has(t)) {
        throw new QcbError('QCB_ONNX_GRAPH', `trainable parameter '${t}' is not an initializer of graph '${g.name}'`, {
          file,
          key: t,
          fix: 'name model parameters (initializers)',
        });
      }
    }
    trainable = [...spec.trainable];
  } else {
    const pred = spec.trainable;
    trainable = [...g.initializers]
      .filter(([k, t]) =>
        pred ? pred(k, t) : FLOAT.has(t.dtype) && t.dims.length >= 1 && deps.has(k) && !bnStats.has(k),
      )
      .map(([k]) => k);
  }
  const tset = new Set(trainable);
  const frozen = [...g.initializers.keys()].filter(
    (k) =>
      !tset.has(k) &&
      FLOAT.has(g.initializers.get(k)!.dtype) &&
      g.initializers.get(k)!.dims.length >= 1 &&
      !bnStats.has(k),
  );

  // BatchNormalization: training mode for the selected nodes
  const sel = spec.bnTraining;
  const bnSelect = (n: Node) =>
    typeof sel === 'function'
      ? sel(n)
      : typeof sel === 'boolean'
        ? sel
        : tset.has(n.inputs[1]) || tset.has(n.inputs[2]);
  const bnUpdates = lowerBatchNormTraining(g, bnSelect, { fused: spec.bnFused ?? true });
  if (spec.dropoutTraining ?? true) enableDropout(g);

  // trainable parameters and running stats become inputs
  const promote = (name: string) => {
    const t = g.initializers.get(name)!;
    g.initializers.delete(name);
    g.inputs.push({ name, dtype: t.dtype, shape: [...t.dims] });
    return t;
  };
  const params: Carried[] = trainable.map((name) => ({ name, input: name, output: '', init: promote(name) }));
  const bnCarried: Carried[] = [];
  for (const u of bnUpdates) {
    for (const [inp, out] of [
      [u.runningMean, u.newMean],
      [u.runningVar, u.newVar],
    ] as const) {
      if (bnCarried.some((c) => c.input === inp)) {
        throw new QcbError('QCB_ONNX_GRAPH', `running statistic '${inp}' is shared by two BatchNormalization nodes`, {
          file,
          key: inp,
          fix: 're-export the model without shared BN buffers',
        });
      }
      if (!g.initializers.has(inp))
        throw new QcbError(
          'QCB_ONNX_GRAPH',
          `BatchNormalization '${u.node}' running statistic '${inp}' is not an initializer`,
          { file, key: inp },
        );
      bnCarried.push({ name: inp, input: inp, output: out, init: promote(inp) });
    }
  }
  inferShapes(g, { file });

  const grads = appendBackward(g, spec.loss, trainable, { file });
  // private-domain nodes (custom gradients) become standard ops now that the backward pass is built
  expandBatchNormTrain(g);

  const b = new GraphBuilder(g);
  const lr = b.freshInput('lr', 'float32', []);
  const opt = spec.optimizer;
  const globalCarried: Carried[] = opt.globalState().map((s) => ({
    name: `optim::${s.name}`,
    input: b.input(`optim::${s.name}`, s.init.dtype, [...s.init.dims]),
    output: '',
    init: s.init,
  }));
  const { global: newGlobal, ctx } = opt.prepare(
    b,
    lr,
    Object.fromEntries(opt.globalState().map((s, i) => [s.name, globalCarried[i].input])),
  );
  opt.globalState().forEach((s, i) => {
    globalCarried[i].output = newGlobal[s.name];
  });
  const optCarried: Carried[] = [];
  for (const p of params) {
    const specs = opt.state({ name: p.name, dims: p.init.dims });
    const stateIn = specs.map((s) => {
      const name = `${p.name}::${s.suffix}`;
      const init = s.init(p.init);
      b.input(name, init.dtype, [...init.dims]);
      return { name, init };
    });
    const grad = grads.get(p.name);
    if (!grad) throw new QcbError('QCB_INTERNAL', `autodiff returned no gradient for '${p.name}'`);
    const r = opt.update(
      b,
      { name: p.name, dims: p.init.dims, value: p.input, grad, state: stateIn.map((s) => s.name) },
      lr,
      ctx,
    );
    p.output = r.param;
    stateIn.forEach((s, i) => {
      optCarried.push({ name: s.name, input: s.name, output: r.state[i], init: s.init });
    });
  }
  const state = [...globalCarried, ...optCarried, ...bnCarried];

  // outputs: loss, extras, updates (a value may appear once as an output)
  const extraOutputs = spec.extraOutputs ?? [];
  const outs: string[] = [];
  const addOut = (v: string) => {
    if (!outs.includes(v)) outs.push(v);
  };
  addOut(spec.loss);
  for (const e of extraOutputs) addOut(e);
  for (const c of [...params, ...state]) {
    // an update that is a graph input (never updated) or already an output gets its own Identity
    if (outs.includes(c.output) || g.inputs.some((i) => i.name === c.output) || g.initializers.has(c.output))
      c.output = b.identity(c.output, `${c.name}::new`);
    addOut(c.output);
  }
  g.outputs = outs.map((o) => ({ name: o, dtype: 'float32' }));
  pruneDead(g);
  inferShapes(g, { file });

  const dataInputs = forward.inputs.filter((v) => !tset.has(v.name));
  return { graph: g, forward, loss: spec.loss, dataInputs, lr, extraOutputs, params, state, frozen };
}

/** Switches every Dropout node to training mode (ratio and training_mode inputs, mask output). */
function enableDropout(g: Graph): void {
  const b = new GraphBuilder(g);
  for (const n of g.nodes) {
    if (n.opType !== 'Dropout' || n.domain !== '') continue;
    const ratioAttr = n.attrs.ratio;
    delete n.attrs.ratio;
    const ratio = n.inputs[1] || b.scalar(ratioAttr && ratioAttr.type === 'float' ? ratioAttr.value : 0.5);
    const on = b.constant({ dtype: 'bool', dims: [], data: Uint8Array.of(1) }, 'dropout_training');
    n.inputs = [n.inputs[0], ratio, on];
    if (!n.outputs[1]) n.outputs[1] = b.fresh(`${n.outputs[0]}_mask`);
  }
}

/** Removes nodes whose outputs no graph output needs, and unused initializers. */
export function pruneDead(g: Graph): void {
  const need = new Set(g.outputs.map((o) => o.name));
  const keep: boolean[] = new Array(g.nodes.length).fill(false);
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (n.outputs.some((o) => need.has(o))) {
      keep[k] = true;
      for (const i of n.inputs) if (i) need.add(i);
    }
  }
  const dropped = g.nodes.filter((_, k) => !keep[k]);
  g.nodes = g.nodes.filter((_, k) => keep[k]);
  for (const n of dropped) for (const o of n.outputs) g.values.delete(o);
  for (const k of [...g.initializers.keys()]) if (!need.has(k)) g.initializers.delete(k);
}
