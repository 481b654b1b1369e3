/**
 * Encoder verification: runs an exported encoder's features and, through the engine's own backward graph, the
 * gradients of L = Σ features ⊙ r with respect to the input and every weight the reference lists; compares them to
 * a PyTorch reference file (`.ref.json`). This is the acceptance test of "fine-tune any ONNX CNN".
 */
import * as ort from 'onnxruntime-node';
import { QcbError } from '../errors.js';
import { appendBackward } from './grad/autodiff.js';
import { GraphBuilder } from './ir/builder.js';
import type { Graph } from './ir/graph.js';
import { upgradeOpset } from './ir/opset.js';
import { inferShapes } from './ir/shapes.js';
import { importOnnx } from './onnx/import.js';
import { type EncoderReference, maxRelError, readReference } from './onnx/reference.js';
import { loadSession, type RuntimeOptions } from './runtime/session.js';

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
  ok: boolean;
  items: VerifyItem[];
  /**
   * ReLU nodes whose input comes within `KINK_TOL` of 0 on the reference input, smallest first. There float32
   * rounding differences between onnxruntime and PyTorch (≈1e-7) can flip the ReLU mask, which changes gradients
   * locally by far more than the tolerance without either side being wrong; a failure with entries here is most
   * likely that, not an engine error.
   */
  nearKinks: { node: string; minAbsInput: number }[];
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
} {
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
  const reluNodes = g.nodes.filter((n) => n.opType === 'Relu');
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
  // min |input| of every ReLU (after the backward pass, so these probes are not differentiated)
  const kinkProbes = new Map<string, string>();
  for (const n of reluNodes) {
    const m = b.op1('ReduceMin', [b.abs(n.inputs[0])], { keepdims: 0 }, 'relu_min_abs');
    kinkProbes.set(n.name, m);
    g.outputs.push({ name: m, dtype: 'float32' });
  }
  inferShapes(g, { file });
  return { graph: g, input, features, gradInput, weightGrads, kinkProbes };
}

/** Verifies an encoder ONNX file against its reference. Never throws for numeric mismatches: see `ok`. */
export async function verifyEncoder(
  modelPath: string,
  refPath: string,
  rt: RuntimeOptions = {},
): Promise<VerifyReport> {
  const t0 = performance.now();
  const ref: EncoderReference = readReference(refPath);
  const encoder = importOnnx(modelPath);
  const weights = [...ref.weightGrads.keys()];
  const v = verificationGraph(encoder, weights, modelPath);
  const rName = v.graph.inputs.find((i) => i.name !== v.input)!.name;
  const session = await loadSession(v.graph, { ...rt, noCache: true }, modelPath);
  try {
    const out = await session.run({
      [v.input]: new ort.Tensor('float32', ref.input.data, ref.input.shape),
      [rName]: new ort.Tensor('float32', ref.r.data, ref.r.shape),
    });
    const items: VerifyItem[] = [];
    const cmp = (name: string, got: ort.Tensor, want: { shape: number[]; data: Float32Array }, tol: number) => {
      const sameShape = got.dims.length === want.shape.length && got.dims.every((d, i) => d === want.shape[i]);
      const e = sameShape ? maxRelError(got.data as Float32Array, want.data) : Number.POSITIVE_INFINITY;
      items.push({ name, shape: [...got.dims], relError: e, tolerance: tol, ok: e <= tol });
    };
    cmp('features', out[v.features], ref.features, FEATURE_TOL);
    cmp('grad_input', out[v.gradInput], ref.gradInput, GRAD_TOL);
    for (const [w, gname] of v.weightGrads) cmp(`weight:${w}`, out[gname], ref.weightGrads.get(w)!, GRAD_TOL);
    const nearKinks = [...v.kinkProbes]
      .map(([node, probe]) => ({ node, minAbsInput: (out[probe].data as Float32Array)[0] }))
      .filter((k) => k.minAbsInput < KINK_TOL)
      .sort((a, b) => a.minAbsInput - b.minAbsInput);
    const maxOf = (f: (i: VerifyItem) => boolean) => Math.max(0, ...items.filter(f).map((i) => i.relError));
    return {
      model: modelPath,
      reference: refPath,
      ok: items.every((i) => i.ok),
      items,
      features: maxOf((i) => i.name === 'features'),
      gradInput: maxOf((i) => i.name === 'grad_input'),
      weights: maxOf((i) => i.name.startsWith('weight:')),
      nearKinks,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await session.session.release();
  }
}
