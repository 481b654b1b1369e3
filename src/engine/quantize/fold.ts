/**
 * BatchNormalization folded into the convolution before it (inference only), so that the quantised convolution
 * carries the scaled weights and its per-channel int8 scales see the weights that actually run. onnxruntime does the
 * same fold at session optimisation for fp32 graphs; a QDQ graph must have it done before quantisation, since a
 * BatchNormalization between a QLinearConv and its Quantize would keep the convolution out of the integer kernels.
 *
 *   W'[k] = W[k] · γ[k] / √(σ²[k] + ε)      b'[k] = (b[k] − μ[k]) · γ[k] / √(σ²[k] + ε) + β[k]
 *   (Ioffe & Szegedy 2015, eq. of the inference transform)
 */
import { floatAttr } from '../ir/attrs.js';
import type { Graph, Node } from '../ir/graph.js';

/** Graph outputs and node consumers of every value. */
export function consumersOf(g: Graph): Map<string, Node[]> {
  const m = new Map<string, Node[]>();
  for (const n of g.nodes) {
    for (const i of n.inputs) {
      if (!i) continue;
      const l = m.get(i);
      if (l) l.push(n);
      else m.set(i, [n]);
    }
  }
  return m;
}

function freshName(g: Graph, hint: string): string {
  let name = hint;
  for (let k = 1; g.initializers.has(name) || g.values.has(name); k++) name = `${hint}_${k}`;
  return name;
}

/**
 * Folds every inference-mode BatchNormalization whose input is the only use of a Conv with constant weights, in
 * place (new initializers; the originals stay for other users). Returns the number folded.
 */
export function foldBatchNorm(g: Graph): number {
  const consumers = consumersOf(g);
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const outputs = new Set(g.outputs.map((o) => o.name));
  const drop = new Set<Node>();
  for (const bn of g.nodes) {
    if (bn.opType !== 'BatchNormalization' || bn.domain !== '' || bn.outputs.length !== 1) continue;
    const conv = producer.get(bn.inputs[0]);
    if (conv?.opType !== 'Conv' || conv.domain !== '') continue;
    if ((consumers.get(bn.inputs[0]) ?? []).length !== 1 || outputs.has(bn.inputs[0])) continue;
    const [gamma, beta, mean, varT] = bn.inputs.slice(1, 5).map((i) => g.initializers.get(i));
    const w = g.initializers.get(conv.inputs[1]);
    const b0 = conv.inputs[2] ? g.initializers.get(conv.inputs[2]) : undefined;
    if (!gamma || !beta || !mean || !varT || !w || (conv.inputs[2] && !b0)) continue;
    if ([gamma, beta, mean, varT, w, b0].some((t) => t && t.dtype !== 'float32')) continue;
    const K = w.dims[0];
    if (gamma.data.length !== K) continue;
    const eps = floatAttr(bn, 'epsilon', 1e-5);
    const per = w.data.length / K;
    const wd = w.data as Float32Array;
    const nw = new Float32Array(wd.length);
    const nb = new Float32Array(K);
    for (let k = 0; k < K; k++) {
      const s = (gamma.data as Float32Array)[k] / Math.sqrt((varT.data as Float32Array)[k] + eps);
      for (let j = 0; j < per; j++) nw[k * per + j] = wd[k * per + j] * s;
      const bias = b0 ? (b0.data as Float32Array)[k] : 0;
      nb[k] = (bias - (mean.data as Float32Array)[k]) * s + (beta.data as Float32Array)[k];
    }
    const wName = freshName(g, `${conv.inputs[1]}_bnfold`);
    const bName = freshName(g, `${conv.inputs[1]}_bnfold_bias`);
    g.initializers.set(wName, { dtype: 'float32', dims: [...w.dims], data: nw });
    g.initializers.set(bName, { dtype: 'float32', dims: [K], data: nb });
    g.values.set(wName, { name: wName, dtype: 'float32', shape: [...w.dims] });
    g.values.set(bName, { name: bName, dtype: 'float32', shape: [K] });
    g.values.delete(conv.outputs[0]);
    conv.inputs = [conv.inputs[0], wName, bName];
    conv.outputs = [bn.outputs[0]];
    drop.add(bn);
  }
  if (drop.size === 0) return 0;
  g.nodes = g.nodes.filter((n) => !drop.has(n));
  const used = new Set<string>();
  for (const n of g.nodes) for (const i of n.inputs) used.add(i);
  for (const o of g.outputs) used.add(o.name);
  for (const k of [...g.initializers.keys()]) {
    if (!used.has(k)) {
      g.initializers.delete(k);
      g.values.delete(k);
    }
  }
  return drop.size;
}
