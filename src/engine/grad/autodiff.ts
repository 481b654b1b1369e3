/**
 * Reverse-mode automatic differentiation over the ONNX IR: appends the backward pass of a scalar loss to a graph,
 * in place, as ordinary opset-17 ONNX nodes, so that forward + backward (+ optimizer) run as one onnxruntime model.
 */
import { QcbError } from '../../errors.js';
import type { Attr, DType, Graph, Node, Tensor, ValueInfo } from '../ir/graph.js';
import { attr } from '../ir/graph.js';
import { inferShapes } from '../ir/shapes.js';
import { GRAD_RULES, gradRuleOf, NO_GRAD_OPS } from './index.js';
import type { GradEmitter } from './types.js';
import { dtypeFromCode } from '../onnx/dtypes.js';
import { isFloat, isStatic } from './util.js';

/** Options of {@link appendBackward}. */
export interface BackwardOptions {
  /** Name of a value holding dL/dloss (same shape as the loss); default a constant 1. */
  seed?: string;
  /** Model file named in error messages; default `graph.source` (the file the graph was imported from). */
  file?: string;
}

/** All op types appendBackward can differentiate (have a rule or pass no gradient). */
export function supportedGradOps(): string[] {
  return [...Object.keys(GRAD_RULES), ...NO_GRAD_OPS].sort();
}

/**
 * Appends to `graph.nodes` the backward pass of `loss` with respect to `wrt` (graph inputs or initializers).
 *
 * Forward shapes are read from `graph.values` (shape inference runs first if some node output lacks an entry).
 * Only forward nodes that depend on some `wrt` value and reach `loss` are differentiated; fan-out gradients are
 * accumulated with Add (two) or Sum (more). Every new value gets an entry in `graph.values` (gradients take the
 * forward value's shape; intermediates get their dtype and, where the rule does not know it, no shape).
 * Backward nodes that no returned gradient needs are removed again (dead-code elimination).
 *
 * A `wrt` value the loss does not depend on gets a zero gradient. Graphs at opset 13–16 are lifted to opset 17
 * (`graph.opset` is updated), the opset of the emitted ops.
 * @returns map wrt name → name of its gradient value (same shape and dtype as the wrt value)
 * @throws QcbError QCB_ONNX_UNSUPPORTED_OP for an op without a gradient rule, QCB_ONNX_GRAPH for unknown names
 */
export function appendBackward(
  graph: Graph,
  loss: string,
  wrt: string[],
  options: BackwardOptions = {},
): Map<string, string> {
  const opts: BackwardOptions = { ...options, file: options.file ?? graph.source };
  // Backward rules emit opset-17 ops (ScatterElements with reduction needs 16). Opsets 13–16 changed nothing but
  // additions with backward-compatible defaults up to 17, so such graphs are lifted to 17.
  if (graph.opset < 13) {
    throw new QcbError(
      'QCB_ONNX_UNSUPPORTED_OP',
      `graph '${graph.name}' uses opset ${graph.opset}; differentiation needs opset 13 or later`,
      {
        file: opts.file,
        value: graph.opset,
        allowed: 'opset ≥ 13',
        fix: 're-export the model with torch.onnx.export(..., opset_version=17)',
      },
    );
  }
  if (graph.opset < 17) graph.opset = 17;
  // forward shapes come from shape inference: run it when the caller has not
  if (graph.nodes.some((n) => n.outputs.some((o) => o && !graph.values.has(o))))
    inferShapes(graph, { file: opts.file });
  const forwardCount = graph.nodes.length;
  const used = new Set<string>();
  for (const v of graph.inputs) used.add(v.name);
  for (const v of graph.outputs) used.add(v.name);
  for (const k of graph.initializers.keys()) used.add(k);
  for (const k of graph.values.keys()) used.add(k);
  for (const n of graph.nodes) {
    for (const o of n.outputs) used.add(o);
    for (const i of n.inputs) if (i) used.add(i);
    if (n.name) used.add(n.name);
  }
  const fresh = (base: string): string => {
    const b = base.replace(/\s+/g, '_');
    if (!used.has(b)) {
      used.add(b);
      return b;
    }
    for (let i = 1; ; i++) {
      const c = `${b}_${i}`;
      if (!used.has(c)) {
        used.add(c);
        return c;
      }
    }
  };

  const producer = new Map<string, Node>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const known = (v: string) => producer.has(v) || graph.initializers.has(v) || graph.inputs.some((i) => i.name === v);
  if (!known(loss)) {
    throw new QcbError('QCB_ONNX_GRAPH', `loss value '${loss}' is not produced by the graph`, {
      file: opts.file,
      key: loss,
      fix: 'pass the name of a node output or graph input',
    });
  }
  for (const w of wrt) {
    if (!known(w)) {
      throw new QcbError(
        'QCB_ONNX_GRAPH',
        `cannot differentiate with respect to '${w}': no such input, initializer or value`,
        {
          file: opts.file,
          key: w,
          fix: 'pass names of graph inputs or initializers (parameters)',
        },
      );
    }
  }

  // Constant values (for axes, shapes, ratios): initializers, Constant nodes, and values that shape inference knows
  // statically — e.g. a Slice's bounds computed as Shape → Gather → Div → Mul from a static channel count, which
  // PyTorch exports for torch.chunk/split (ShuffleNet's channel split) when the model is not constant-folded.
  const constants = new Map<string, Tensor>(graph.initializers);
  for (const n of graph.nodes) {
    const v = n.attrs.value;
    if (n.opType === 'Constant' && v && v.type === 'tensor') constants.set(n.outputs[0], v.value);
  }
  for (const [name, t] of staticValues(graph)) if (!constants.has(name)) constants.set(name, t);

  // A training-mode Dropout needs its mask in the backward pass: expose it as a second output when absent.
  for (const n of graph.nodes) {
    if (n.opType !== 'Dropout' || !n.inputs[2] || n.outputs[1]) continue;
    const m = fresh(`${n.outputs[0]}/mask`);
    n.outputs[1] = m;
    const yi = graph.values.get(n.outputs[0]);
    graph.values.set(m, { name: m, dtype: 'bool', shape: yi?.shape ? [...yi.shape] : undefined });
  }

  // Which values depend on wrt, which reach the loss.
  const depends = new Set<string>(wrt);
  for (const n of graph.nodes) {
    if (n.inputs.some((i) => i && depends.has(i))) for (const o of n.outputs) if (o) depends.add(o);
  }
  const reaches = new Set<string>([loss]);
  for (let k = graph.nodes.length - 1; k >= 0; k--) {
    const n = graph.nodes[k];
    if (n.outputs.some((o) => o && reaches.has(o))) for (const i of n.inputs) if (i) reaches.add(i);
  }

  const infoOf = (name: string): ValueInfo | undefined => {
    const v = graph.values.get(name);
    if (v) return v;
    const t = graph.initializers.get(name);
    if (t) return { name, dtype: t.dtype, shape: [...t.dims] };
    return graph.inputs.find((i) => i.name === name) ?? graph.outputs.find((o) => o.name === name);
  };
  const dtypeOf = (name: string): DType | undefined => infoOf(name)?.dtype;

  let currentNode: Node | undefined;
  const constKeys = new Map<string, string>();
  const g: GradEmitter = {
    info(name) {
      const v = infoOf(name);
      if (!v) {
        throw new QcbError('QCB_ONNX_GRAPH', `no type/shape known for value '${name}'`, {
          file: opts.file,
          key: currentNode?.name ?? name,
          fix: 'run shape inference (inferShapes) on the forward graph before appendBackward',
        });
      }
      return v;
    },
    op(opType, inputs, attrs = {}, nOutputs = 1) {
      const base = `${currentNode ? currentNode.name || currentNode.opType : 'loss'}_grad`;
      const outputs = Array.from({ length: nOutputs }, (_, i) =>
        fresh(`${base}/${opType}${nOutputs > 1 ? `_${i}` : ''}`),
      );
      const node: Node = { opType, domain: '', name: fresh(`${base}/${opType}_node`), inputs, outputs, attrs };
      graph.nodes.push(node);
      outputs.forEach((o, i) => {
        const dt = outputDtype(node, i, dtypeOf);
        if (dt) graph.values.set(o, { name: o, dtype: dt });
      });
      return outputs;
    },
    constant(t, hint) {
      const small = t.data.length <= 64;
      const key = small
        ? `${t.dtype}|${t.dims.join(',')}|${Array.from(t.data as ArrayLike<number | bigint>).join(',')}`
        : '';
      if (small && constKeys.has(key)) return constKeys.get(key) as string;
      const name = fresh(`grad_const/${hint ?? 'c'}`);
      graph.initializers.set(name, t);
      graph.values.set(name, { name, dtype: t.dtype, shape: [...t.dims] });
      if (small) constKeys.set(key, name);
      return name;
    },
    constValue(name) {
      return constants.get(name);
    },
  };

  const contribs = new Map<string, string[]>();
  const addContrib = (v: string, gname: string) => {
    const l = contribs.get(v);
    if (l) l.push(gname);
    else contribs.set(v, [gname]);
  };
  const total = (v: string): string | null => {
    const l = contribs.get(v);
    if (!l || l.length === 0) return null;
    if (l.length > 1) {
      const s = g.op(l.length === 2 ? 'Add' : 'Sum', l)[0];
      contribs.set(v, [s]);
    }
    const r = (contribs.get(v) as string[])[0];
    setShapeLike(graph, r, infoOf(v));
    return r;
  };

  // Seed dL/dloss.
  if (opts.seed) addContrib(loss, opts.seed);
  else {
    const li = g.info(loss);
    const dt = isFloat(li.dtype) ? li.dtype : 'float32';
    const shape = li.shape ?? [];
    if (isStatic(shape)) {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = dt === 'float64' ? new Float64Array(n).fill(1) : new Float32Array(n).fill(1);
      addContrib(loss, g.constant({ dtype: dt === 'float64' ? 'float64' : 'float32', dims: shape, data }, 'one'));
    } else {
      const shp = g.op('Shape', [loss])[0];
      const data = dt === 'float64' ? new Float64Array([1]) : new Float32Array([1]);
      addContrib(
        loss,
        g.op('ConstantOfShape', [shp], {
          value: attr.tensor({ dtype: dt === 'float64' ? 'float64' : 'float32', dims: [1], data }),
        })[0],
      );
    }
  }

  for (let k = forwardCount - 1; k >= 0; k--) {
    const node = graph.nodes[k];
    if (!node.outputs.some((o) => o && reaches.has(o))) continue;
    if (!node.inputs.some((i) => i && depends.has(i))) continue;
    currentNode = node;
    const dOut = node.outputs.map((o) => (o && depends.has(o) ? total(o) : null));
    if (dOut.every((d) => d === null)) continue;
    if (NO_GRAD_OPS.has(node.opType)) continue;
    const rule = gradRuleOf(node);
    if (!rule) {
      throw new QcbError(
        'QCB_ONNX_UNSUPPORTED_OP',
        `operator ${node.domain ? `${node.domain}.` : ''}${node.opType} (node '${node.name}') has no gradient rule`,
        {
          file: opts.file,
          key: node.name,
          value: node.opType,
          allowed: supportedGradOps().join(', '),
          fix: 'freeze the layers before this node (train only later parameters) or replace the operator when exporting the model',
        },
      );
    }
    const dIn = rule(node, dOut, g);
    node.inputs.forEach((inp, i) => {
      const d = dIn[i];
      if (!inp || !d || !depends.has(inp)) return;
      const dt = dtypeOf(inp);
      if (dt && !isFloat(dt)) return;
      setShapeLike(graph, d, infoOf(inp));
      addContrib(inp, d);
    });
  }
  currentNode = undefined;

  const result = new Map<string, string>();
  for (const w of wrt) {
    let d = total(w);
    if (!d) {
      const wi = g.info(w);
      const shp =
        wi.shape && isStatic(wi.shape)
          ? g.constant({ dtype: 'int64', dims: [wi.shape.length], data: BigInt64Array.from(wi.shape.map(BigInt)) })
          : g.op('Shape', [w])[0];
      const zero: Tensor =
        wi.dtype === 'float64'
          ? { dtype: 'float64', dims: [1], data: new Float64Array(1) }
          : { dtype: 'float32', dims: [1], data: new Float32Array(1) };
      d = g.op('ConstantOfShape', [shp], { value: attr.tensor(zero) })[0];
      setShapeLike(graph, d, wi);
    }
    result.set(w, d);
  }

  pruneBackward(graph, forwardCount, new Set(result.values()));
  return result;
}

/** Gives gradient value `d` the type/shape of forward value `fwd` unless it already has a shape. */
function setShapeLike(graph: Graph, d: string, fwd: ValueInfo | undefined): void {
  if (!fwd) return;
  const cur = graph.values.get(d);
  if (cur?.shape) return;
  graph.values.set(d, { name: d, dtype: cur?.dtype ?? fwd.dtype, shape: fwd.shape ? [...fwd.shape] : undefined });
}

/** Removes appended nodes (index ≥ start) whose outputs no kept value needs, and their unused constants. */
function pruneBackward(graph: Graph, start: number, keep: Set<string>): void {
  const need = new Set(keep);
  const keepNode: boolean[] = new Array(graph.nodes.length).fill(true);
  for (let k = graph.nodes.length - 1; k >= start; k--) {
    const n = graph.nodes[k];
    if (n.outputs.some((o) => need.has(o))) {
      for (const i of n.inputs) if (i) need.add(i);
    } else keepNode[k] = false;
  }
  const removed = graph.nodes.filter((_, k) => !keepNode[k]);
  graph.nodes = graph.nodes.filter((_, k) => keepNode[k]);
  for (const n of removed) for (const o of n.outputs) graph.values.delete(o);
  for (const name of [...graph.initializers.keys()]) {
    if (name.startsWith('grad_const/') && !need.has(name)) {
      graph.initializers.delete(name);
      graph.values.delete(name);
    }
  }
}

const BOOL_OPS = new Set([
  'Equal',
  'Less',
  'Greater',
  'LessOrEqual',
  'GreaterOrEqual',
  'And',
  'Or',
  'Not',
  'Xor',
  'IsNaN',
  'IsInf',
]);

/** Element type of output i of an emitted node. */
function outputDtype(node: Node, i: number, dtypeOf: (n: string) => DType | undefined): DType | undefined {
  const a: Attr | undefined = node.attrs.to;
  switch (node.opType) {
    case 'Shape':
    case 'Size':
    case 'ArgMax':
    case 'ArgMin':
    case 'NonZero':
      return 'int64';
    case 'Cast':
      return a && a.type === 'int' ? dtypeFromCode(a.value) : undefined;
    case 'ConstantOfShape': {
      const v = node.attrs.value;
      return v && v.type === 'tensor' ? v.value.dtype : 'float32';
    }
    case 'MaxPool':
      return i === 1 ? 'int64' : dtypeOf(node.inputs[0]);
    case 'Where':
      return dtypeOf(node.inputs[1]);
    default:
      if (BOOL_OPS.has(node.opType)) return 'bool';
      for (const inp of node.inputs) if (inp) return dtypeOf(inp);
      return undefined;
  }
}

/**
 * Node outputs whose contents shape inference determines statically (small integer tensors computed from static
 * dims and constants), as tensors. Inferred on a copy, so the graph's own value table is untouched.
 */
function staticValues(graph: Graph): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const produced = new Set<string>();
  for (const n of graph.nodes) if (n.opType !== 'Constant') for (const o of n.outputs) if (o) produced.add(o);
  let inferred: Map<string, { dtype: DType; shape?: (number | string)[]; value?: (number | string)[] }>;
  try {
    inferred = inferShapes({ ...graph, values: new Map() });
  } catch {
    return out; // the caller's own shape inference reports the problem
  }
  for (const [name, v] of inferred) {
    if (!produced.has(name) || !v.value || !v.shape || !v.value.every((d) => typeof d === 'number')) continue;
    if (!v.shape.every((d) => typeof d === 'number')) continue;
    const dims = v.shape as number[];
    const vals = v.value as number[];
    if (dims.reduce((a, b) => a * b, 1) !== vals.length) continue;
    if (v.dtype === 'int64') out.set(name, { dtype: 'int64', dims, data: BigInt64Array.from(vals, (x) => BigInt(x)) });
    else if (v.dtype === 'int32') out.set(name, { dtype: 'int32', dims, data: Int32Array.from(vals) });
  }
  return out;
}
