/**
 * Encoder verification: runs an exported encoder's features and, through the engine's own backward graph, the
 * gradients of L = Σ features ⊙ r with respect to the input and every weight the reference lists; compares them to
 * a PyTorch reference file (`.ref.json`). This is the acceptance test of "fine-tune any ONNX CNN".
 *
 * Two engines compute them: `onnxruntime` (default) runs the graph with our own backward pass in onnxruntime, the
 * engine every training step uses; `tfjs` runs the same imported graph in the TF.js interpreter and takes the
 * gradients from TF.js's own autodiff, an independent check of the exported model that uses none of our gradient
 * rules (on tfjs-node / tfjs-node-gpu when installed, else TF.js's pure-JS CPU backend).
 */
import * as ort from 'onnxruntime-node';
import { QcbError } from '../errors.js';
import { didYouMean } from '../util/suggest.js';
import { appendBackward } from './grad/autodiff.js';
import { resolvePads } from './grad/conv.js';
import { GraphBuilder } from './ir/builder.js';
import type { Graph, Node } from './ir/graph.js';
import { upgradeOpset } from './ir/opset.js';
import { inferShapes } from './ir/shapes.js';
import { importOnnx } from './onnx/import.js';
import { type EncoderReference, maxRelError, readReference } from './onnx/reference.js';
import { defaultExecutionProvider, loadSession, type RuntimeOptions } from './runtime/session.js';

/**
 * The engines that can run an encoder graph (`--engine` of `encoder verify` and `eval`): onnxruntime (the training
 * engine) or the TF.js interpreter (src/engine/tfjs/interpreter.ts, loaded only when chosen).
 */
export const ENCODER_ENGINES = ['onnxruntime', 'tfjs'] as const;
export type EncoderEngine = (typeof ENCODER_ENGINES)[number];

/**
 * Checks an engine name.
 * @param key the flag named in the error (default `--engine`)
 * @throws QCB_USAGE for an unknown name, with did-you-mean
 */
export function checkEncoderEngine(name: string, key = '--engine'): EncoderEngine {
  if ((ENCODER_ENGINES as readonly string[]).includes(name)) return name as EncoderEngine;
  throw new QcbError('QCB_USAGE', `unknown engine '${name}'`, {
    key,
    value: name,
    allowed: ENCODER_ENGINES.join(', '),
    fix: didYouMean(name, ENCODER_ENGINES),
  });
}

export interface VerifyItem {
  /** 'features', 'grad_input' or `weight:<initializer>`. */
  name: string;
  shape: number[];
  /** max|got − ref| / max|ref|. */
  relError: number;
  tolerance: number;
  ok: boolean;
}

export interface VerifyReport {
  model: string;
  reference: string;
  /** Which engine computed features and gradients. */
  engine: EncoderEngine;
  /**
   * Where it ran: onnxruntime's execution provider ('cpu', 'cuda'), or the TF.js backend ('tensorflow' for
   * tfjs-node / tfjs-node-gpu, 'cpu' for the pure-JS backend).
   */
  backend: string;
  ok: boolean;
  items: VerifyItem[];
  /**
   * ReLU nodes whose input comes within `KINK_TOL` of 0 on the reference input, smallest first. There float32
   * rounding differences between onnxruntime and PyTorch (≈1e-7) can flip the ReLU mask, which changes gradients
   * locally by far more than the tolerance without either side being wrong; a failure with entries here is most
   * likely that, not an engine error.
   */
  nearKinks: { node: string; minAbsInput: number }[];
  /**
   * MaxPool nodes with windows whose two largest values (the largest > 0) differ, but by less than `KINK_TOL`
   * relative, smallest gap first. Which element is the max there depends on float32 rounding, and the gradient goes to it
   * alone: near-duplicates are common after a strided max pool whose repeated maxima pass through 1×1 convolutions
   * (GoogLeNet's inception blocks). As with `nearKinks`, a failure with entries here is most likely the reference
   * input, not the engine.
   */
  nearTies: { node: string; minRelGap: number; windows: number }[];
  /** Largest relative errors per kind. */
  features: number;
  gradInput: number;
  weights: number;
  seconds: number;
}

export const FEATURE_TOL = 1e-4;
/** |ReLU input| below which the reference and the engine may disagree on the ReLU mask. */
export const KINK_TOL = 1e-5;
export const GRAD_TOL = 1e-3;

/**
 * The encoder plus the loss L = ReduceSum(features ⊙ r), in place, with shapes inferred: the forward graph both
 * engines start from. Checks that the encoder has one input and that every listed weight is an initializer.
 */
function lossGraph(
  encoder: Graph,
  weights: string[],
  file?: string,
): { graph: Graph; b: GraphBuilder; input: string; r: string; features: string; loss: string } {
  if (encoder.inputs.length !== 1 || encoder.outputs.length < 1) {
    throw new QcbError(
      'QCB_ONNX_GRAPH',
      `an encoder has one image input and a features output; this model has ${encoder.inputs.length} inputs`,
      {
        file,
        fix: 'export the encoder alone (input N×3×H×W → features N×D)',
      },
    );
  }
  const g = encoder;
  upgradeOpset(g, 17); // backward graphs use opset-17 operators
  const input = g.inputs[0].name;
  const features = g.outputs[0].name;
  for (const w of weights) {
    if (!g.initializers.has(w)) {
      throw new QcbError(
        'QCB_REFERENCE',
        `the reference lists a gradient for '${w}', which is not an initializer of the model`,
        {
          file,
          key: w,
          fix: 'use the reference file made for this model',
        },
      );
    }
  }
  const b = new GraphBuilder(g);
  const fshape = g.values.get(features)?.shape;
  const r = b.freshInput('r', 'float32', fshape ?? ['N', 'D']);
  const loss = b.reduceSum(b.mul(features, r), undefined, false);
  inferShapes(g, { file });
  return { graph: g, b, input, r, features, loss };
}

/**
 * Appends, for every ReLU node, min |input| as a graph output (after any backward pass, so these probes are not
 * differentiated).
 * @returns node name → probe value
 */
function addKinkProbes(g: Graph, b: GraphBuilder, reluNodes: Node[]): Map<string, string> {
  const kinkProbes = new Map<string, string>();
  for (const n of reluNodes) {
    const m = b.op1('ReduceMin', [b.abs(n.inputs[0])], { keepdims: 0 }, 'relu_min_abs');
    kinkProbes.set(n.name, m);
    g.outputs.push({ name: m, dtype: 'float32' });
  }
  return kinkProbes;
}

/**
 * Appends, for every MaxPool node with a static channel count and kernel, the smallest nonzero relative gap between
 * the two largest values of a window (over windows whose largest value is > 0) and the number of windows with a
 * nonzero gap below `KINK_TOL`, as graph outputs. The windows are unfolded by a one-hot depthwise Conv over the input padded with
 * −1e30 (explicit pads, auto_pad and ceil_mode's extra tail alike), then TopK 2.
 * @returns node name → [min gap, count] probe values
 */
function addTieProbes(g: Graph, b: GraphBuilder, poolNodes: Node[]): Map<string, [string, string]> {
  const probes = new Map<string, [string, string]>();
  for (const n of poolNodes) {
    const xs = g.values.get(n.inputs[0])?.shape;
    const ys = g.values.get(n.outputs[0])?.shape;
    const kernel = n.attrs.kernel_shape?.type === 'ints' ? n.attrs.kernel_shape.value : undefined;
    if (!xs || !ys || !kernel || xs.length !== kernel.length + 2) continue;
    const C = xs[1];
    const inSize = xs.slice(2);
    const outSize = ys.slice(2);
    if (typeof C !== 'number' || !inSize.every((d) => typeof d === 'number')) continue;
    if (!outSize.every((d) => typeof d === 'number')) continue;
    const sp = kernel.length;
    const ints = (k: string, d: number) =>
      n.attrs[k]?.type === 'ints' ? (n.attrs[k].value as number[]) : new Array(sp).fill(d);
    const strides = ints('strides', 1);
    const dilations = ints('dilations', 1);
    const pads = resolvePads(n, inSize as number[], kernel, strides, dilations);
    // pad the tail so that every window ceil_mode keeps is whole
    const end = (outSize as number[]).map((o, i) =>
      Math.max(
        pads.end[i],
        (o - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - (inSize[i] as number) - pads.begin[i],
      ),
    );
    const KK = kernel.reduce((p, q) => p * q, 1);
    const xp = b.op1('Pad', [n.inputs[0], b.ints([0, 0, ...pads.begin, 0, 0, ...end]), b.scalar(-1e30)]);
    const oneHot = new Float32Array(C * KK * KK);
    for (let c = 0; c < C; c++) for (let i = 0; i < KK; i++) oneHot[(c * KK + i) * KK + i] = 1;
    const w = b.constant({ dtype: 'float32', dims: [C * KK, 1, ...kernel], data: oneHot }, 'pool_windows_onehot');
    let win = b.op1('Conv', [xp, w], { kernel_shape: kernel, strides, dilations, group: C });
    const axes = Array.from({ length: sp }, (_, i) => i + 2);
    win = b.op1('Slice', [win, b.ints(axes.map(() => 0)), b.ints(outSize as number[]), b.ints(axes)]);
    const top = b.op('TopK', [b.reshape(win, [0, C, KK, -1]), b.ints([2])], { axis: 2 }, 2)[0]; // N×C×2×P
    const first = b.op1('Slice', [top, b.ints([0]), b.ints([1]), b.ints([2])]);
    const second = b.op1('Slice', [top, b.ints([1]), b.ints([2]), b.ints([2])]);
    const rel = b.div(b.sub(first, second), b.op1('Max', [b.abs(first), b.scalar(1e-30)]));
    // exact ties (gap 0) are left out: they are copies of one value (a strided max pool's repeated maxima), equal
    // on both sides and resolved alike by the first-index rule
    const keep = b.op1('And', [b.op1('Greater', [first, b.scalar(0)]), b.op1('Greater', [rel, b.scalar(0)])]);
    const gap = b.op1('Where', [keep, rel, b.scalar(1e30)]);
    const minGap = b.op1('ReduceMin', [gap], { keepdims: 0 }, 'pool_min_gap');
    const count = b.op1(
      'ReduceSum',
      [b.cast(b.op1('Less', [gap, b.scalar(KINK_TOL)]), 'float32')],
      { keepdims: 0 },
      'pool_near_ties',
    );
    probes.set(n.name, [minGap, count]);
    g.outputs.push({ name: minGap, dtype: 'float32' }, { name: count, dtype: 'float32' });
  }
  return probes;
}

/**
 * Builds the verification graph: the encoder plus L = ReduceSum(features ⊙ r) and its backward pass.
 * Outputs: features, grad_input, then one gradient per listed weight (`grad:<name>`).
 */
export function verificationGraph(
  encoder: Graph,
  weights: string[],
  file?: string,
): {
  graph: Graph;
  input: string;
  features: string;
  gradInput: string;
  weightGrads: Map<string, string>;
  kinkProbes: Map<string, string>;
  tieProbes: Map<string, [string, string]>;
} {
  const { graph: g, b, input, features, loss } = lossGraph(encoder, weights, file);
  const reluNodes = g.nodes.filter((n) => n.opType === 'Relu');
  const poolNodes = g.nodes.filter((n) => n.opType === 'MaxPool');
  const grads = appendBackward(g, loss, [input, ...weights], { file });
  const gradInput = grads.get(input)!;
  g.outputs = [
    { name: features, dtype: 'float32' },
    { name: gradInput, dtype: 'float32' },
  ];
  const weightGrads = new Map<string, string>();
  for (const w of weights) {
    const gw = grads.get(w)!;
    weightGrads.set(w, gw);
    if (!g.outputs.some((o) => o.name === gw)) g.outputs.push({ name: gw, dtype: 'float32' });
  }
  const kinkProbes = addKinkProbes(g, b, reluNodes);
  const tieProbes = addTieProbes(g, b, poolNodes);
  inferShapes(g, { file });
  return { graph: g, input, features, gradInput, weightGrads, kinkProbes, tieProbes };
}

/** Computed values to compare: shape and float32 data. */
interface Computed {
  dims: readonly number[];
  data: Float32Array;
}

/** Features, gradients and ReLU probes of one engine. */
interface EngineResult {
  backend: string;
  features: Computed;
  gradInput: Computed;
  weightGrads: Map<string, Computed>;
  /** node name → min |ReLU input| */
  kinks: Map<string, number>;
  /** MaxPool node name → [smallest relative gap of the two largest window values, windows below KINK_TOL] */
  ties: Map<string, [number, number]>;
}

async function runOnnxruntime(
  modelPath: string,
  ref: EncoderReference,
  weights: string[],
  rt: RuntimeOptions,
): Promise<EngineResult> {
  const v = verificationGraph(importOnnx(modelPath), weights, modelPath);
  const rName = v.graph.inputs.find((i) => i.name !== v.input)!.name;
  const session = await loadSession(v.graph, { ...rt, noCache: true }, modelPath);
  try {
    const out = await session.run({
      [v.input]: new ort.Tensor('float32', ref.input.data, ref.input.shape),
      [rName]: new ort.Tensor('float32', ref.r.data, ref.r.shape),
    });
    const get = (name: string): Computed => ({ dims: out[name].dims, data: out[name].data as Float32Array });
    return {
      backend: rt.executionProviders?.[0] ?? defaultExecutionProvider(),
      features: get(v.features),
      gradInput: get(v.gradInput),
      weightGrads: new Map([...v.weightGrads].map(([w, gname]) => [w, get(gname)])),
      kinks: new Map([...v.kinkProbes].map(([node, probe]) => [node, (out[probe].data as Float32Array)[0]])),
      ties: new Map(
        [...v.tieProbes].map(([node, [gap, n]]) => [
          node,
          [(out[gap].data as Float32Array)[0], (out[n].data as Float32Array)[0]],
        ]),
      ),
    };
  } finally {
    await session.session.release();
  }
}

/**
 * Features (and ReLU probes) by the TF.js interpreter's forward pass; gradients of L by TF.js's own autodiff over
 * the interpreted graph: none of the engine's gradient rules take part.
 */
async function runTfjs(modelPath: string, ref: EncoderReference, weights: string[]): Promise<EngineResult> {
  const { initTfjsEngine, runGraph, tfjsGradients } = await import('./tfjs/interpreter.js');
  const backend = await initTfjsEngine();
  const { graph: g, b, input, r, features, loss } = lossGraph(importOnnx(modelPath), weights, modelPath);
  const reluNodes = g.nodes.filter((n) => n.opType === 'Relu');
  const poolNodes = g.nodes.filter((n) => n.opType === 'MaxPool');
  const kinkProbes = addKinkProbes(g, b, reluNodes);
  const tieProbes = addTieProbes(g, b, poolNodes);
  inferShapes(g, { file: modelPath });
  const feeds = {
    [input]: { dtype: 'float32' as const, dims: [...ref.input.shape], data: ref.input.data },
    [r]: { dtype: 'float32' as const, dims: [...ref.r.shape], data: ref.r.data },
  };
  const fwd = runGraph(g, feeds, [features, ...kinkProbes.values(), ...[...tieProbes.values()].flat()]);
  const { grads } = tfjsGradients(g, loss, [input, ...weights], feeds);
  const get = (t: { dims: readonly number[]; data: unknown }): Computed => ({
    dims: t.dims,
    data: t.data as Float32Array,
  });
  return {
    backend,
    features: get(fwd[features]),
    gradInput: get(grads[input]),
    weightGrads: new Map(weights.map((w) => [w, get(grads[w])])),
    kinks: new Map([...kinkProbes].map(([node, probe]) => [node, (fwd[probe].data as Float32Array)[0]])),
    ties: new Map(
      [...tieProbes].map(([node, [gap, n]]) => [
        node,
        [(fwd[gap].data as Float32Array)[0], (fwd[n].data as Float32Array)[0]],
      ]),
    ),
  };
}

/** Options of {@link verifyEncoder}. */
export interface VerifyOptions {
  /** Default 'onnxruntime'. */
  engine?: EncoderEngine;
}

/** Verifies an encoder ONNX file against its reference. Never throws for numeric mismatches: see `ok`. */
export async function verifyEncoder(
  modelPath: string,
  refPath: string,
  rt: RuntimeOptions = {},
  o: VerifyOptions = {},
): Promise<VerifyReport> {
  const t0 = performance.now();
  const engine = o.engine ?? 'onnxruntime';
  const ref: EncoderReference = readReference(refPath);
  const weights = [...ref.weightGrads.keys()];
  const res =
    engine === 'tfjs' ? await runTfjs(modelPath, ref, weights) : await runOnnxruntime(modelPath, ref, weights, rt);
  const items: VerifyItem[] = [];
  const cmp = (name: string, got: Computed, want: { shape: number[]; data: Float32Array }, tol: number) => {
    const sameShape = got.dims.length === want.shape.length && got.dims.every((d, i) => d === want.shape[i]);
    const e = sameShape ? maxRelError(got.data, want.data) : Number.POSITIVE_INFINITY;
    items.push({ name, shape: [...got.dims], relError: e, tolerance: tol, ok: e <= tol });
  };
  cmp('features', res.features, ref.features, FEATURE_TOL);
  cmp('grad_input', res.gradInput, ref.gradInput, GRAD_TOL);
  for (const [w, got] of res.weightGrads) cmp(`weight:${w}`, got, ref.weightGrads.get(w)!, GRAD_TOL);
  const nearKinks = [...res.kinks]
    .map(([node, minAbsInput]) => ({ node, minAbsInput }))
    .filter((k) => k.minAbsInput < KINK_TOL)
    .sort((a, b) => a.minAbsInput - b.minAbsInput);
  const nearTies = [...res.ties]
    .map(([node, [minRelGap, windows]]) => ({ node, minRelGap, windows }))
    .filter((t) => t.windows > 0)
    .sort((a, b) => a.minRelGap - b.minRelGap);
  const maxOf = (f: (i: VerifyItem) => boolean) => Math.max(0, ...items.filter(f).map((i) => i.relError));
  return {
    model: modelPath,
    reference: refPath,
    engine,
    backend: res.backend,
    ok: items.every((i) => i.ok),
    items,
    features: maxOf((i) => i.name === 'features'),
    gradInput: maxOf((i) => i.name === 'grad_input'),
    weights: maxOf((i) => i.name.startsWith('weight:')),
    nearKinks,
    nearTies,
    seconds: (performance.now() - t0) / 1000,
  };
}
