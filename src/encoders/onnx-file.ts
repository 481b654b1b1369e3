/**
 * Any ONNX CNN as an encoder (`--encoder path.onnx`, ImageNet exports in the weights folder, SSL exports).
 *
 * What a file may look like (torchvision/timm `torch.onnx.export` conventions):
 * - one float input N×C×H×W (any name; renamed `input`), fixed or symbolic H×W;
 * - an output that is already the pooled features N×D, or a classifier (`… → GlobalAveragePool → Flatten → Gemm`):
 *   the graph is then cut at the classifier's input (the pooled features). When the flattened tensor still has a
 *   spatial extent (VGG: adaptive pool 7×7 → Flatten → 4096-d MLP), it is cut before the flatten and globally
 *   average-pooled instead, which gives the conv features (512 for VGG16), as the paper's "pooled features";
 * - a rank-4 output (a feature map) is globally average-pooled.
 * The input's spatial size is relaxed to the crop size when the graph allows it (a CNN ending in a global pool
 * does); otherwise crops are resized to the size the file was exported for.
 *
 * Optional `metadata_props` a qcbench export writes and this reader honours: `qcbench.preprocess.mean` and
 * `qcbench.preprocess.std` (JSON arrays), `qcbench.kind`, `qcbench.label`.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import p from 'onnx-proto';
import { QcbError } from '../errors.js';
import type { Graph, Node } from '../engine/ir/graph.js';
import { inferShapes } from '../engine/ir/shapes.js';
import { importOnnx } from '../engine/onnx/import.js';
import { cloneGraph, pruneDead } from '../engine/train/compile.js';
import { contentHash } from '../util/fs.js';
import type { EncoderGraph, Preprocess } from './types.js';

const { onnx } = p;

/** Reads `metadata_props` of an ONNX file (key → value). */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  try {
    const m = onnx.ModelProto.decode(bytes);
    const out: Record<string, string> = {};
    for (const kv of m.metadataProps ?? []) if (kv.key) out[kv.key] = kv.value ?? '';
    return out;
  } catch {
    return {};
  }
}

/** Preprocessing recorded in a file's metadata, if any (and well-formed: 3 means, 3 positive stds). */
export function preprocessFromMetadata(meta: Record<string, string>): Preprocess | undefined {
  const m = meta['qcbench.preprocess.mean'];
  const s = meta['qcbench.preprocess.std'];
  if (!m || !s) return undefined;
  try {
    const mean = JSON.parse(m) as unknown;
    const std = JSON.parse(s) as unknown;
    if (
      Array.isArray(mean) &&
      Array.isArray(std) &&
      mean.length === std.length &&
      mean.every((v) => typeof v === 'number') &&
      std.every((v) => typeof v === 'number' && v > 0)
    ) {
      return { mean: mean as number[], std: std as number[] };
    }
  } catch {
    // malformed metadata: fall back to the caller's default
  }
  return undefined;
}

/** What `loadOnnxEncoder` found out about the file besides the graph. */
export interface OnnxEncoderInfo {
  /** `features` (already pooled), `classifier-cut`, `pooled-before-flatten`, `pooled-feature-map`. */
  cut: 'features' | 'classifier-cut' | 'pooled-before-flatten' | 'pooled-feature-map';
  /** The value the features were taken from in the original graph. */
  featureValue: string;
  metadata: Record<string, string>;
  sha256: string;
  /** Input channels C of the file. */
  channels: number;
}

function rankOf(g: Graph, v: string): number | undefined {
  return g.values.get(v)?.shape?.length;
}

function producer(g: Graph, v: string): Node | undefined {
  return g.nodes.find((n) => n.outputs.includes(v));
}

/** A 2-D weight: Gemm, or MatMul by a rank-2 initializer (a Linear layer). */
function isDense(g: Graph, n: Node): boolean {
  if (n.opType === 'Gemm') return true;
  if (n.opType === 'MatMul') {
    const w = g.initializers.get(n.inputs[1]);
    return !!w && w.dims.length === 2 && rankOf(g, n.inputs[0]) === 2;
  }
  return false;
}

/**
 * Finds the pooled-feature value of an encoder graph (see module doc) and rewires the graph to output it as
 * `features`. Mutates `g`.
 */
export function cutAtFeatures(g: Graph, file?: string): { cut: OnnxEncoderInfo['cut']; featureValue: string } {
  if (g.outputs.length === 0)
    throw new QcbError('QCB_ONNX_GRAPH', 'the model has no output', {
      file,
      fix: 'export the encoder with its features (or logits) as output',
    });
  const out = g.outputs[0].name;
  const outRank = rankOf(g, out);
  const dense = g.nodes.find((n) => isDense(g, n));
  let feat: string;
  let cut: OnnxEncoderInfo['cut'];
  if (dense) {
    const a = dense.inputs[0];
    const src = producer(g, a);
    const x = src && (src.opType === 'Flatten' || src.opType === 'Reshape') ? src.inputs[0] : undefined;
    const xs = x ? g.values.get(x)?.shape : undefined;
    if (x && xs && xs.length === 4 && !(xs[2] === 1 && xs[3] === 1)) {
      // flattening a map with spatial extent (VGG's 512×7×7 → 25088): pool the map globally instead; skip the
      // adaptive average pool in front of it, which only resamples the same map
      let m = x;
      for (let q = producer(g, m); q && q.opType === 'AveragePool'; q = producer(g, m)) m = q.inputs[0];
      feat = appendGlobalPool(g, m);
      cut = 'pooled-before-flatten';
    } else {
      feat = a;
      cut = 'classifier-cut';
    }
  } else if (outRank === 4) {
    feat = appendGlobalPool(g, out);
    cut = 'pooled-feature-map';
  } else if (outRank === 2) {
    feat = out;
    cut = 'features';
  } else {
    throw new QcbError(
      'QCB_ONNX_GRAPH',
      `the model's output '${out}' has rank ${outRank ?? 'unknown'}; an encoder gives N×D features, N×C×H×W maps or N×classes logits`,
      {
        file,
        key: out,
        fix: 'export the encoder (torch.onnx.export of the backbone, classifier removed, in eval mode)',
      },
    );
  }
  if (feat !== 'features') {
    if (
      g.values.has('features') ||
      g.initializers.has('features') ||
      g.nodes.some((n) => n.outputs.includes('features'))
    ) {
      // an inner value is already called `features`: rename it out of the way
      renameValue(g, 'features', 'features__inner');
    }
    g.nodes.push({
      opType: 'Identity',
      domain: '',
      name: 'features_node',
      inputs: [feat],
      outputs: ['features'],
      attrs: {},
    });
  }
  g.outputs = [{ name: 'features', dtype: 'float32' }];
  pruneDead(g);
  return { cut, featureValue: feat };
}

function appendGlobalPool(g: Graph, x: string): string {
  const pooled = `${x}::gap`;
  const flat = `${x}::gap_flat`;
  g.nodes.push({
    opType: 'GlobalAveragePool',
    domain: '',
    name: `${pooled}_node`,
    inputs: [x],
    outputs: [pooled],
    attrs: {},
  });
  g.nodes.push({
    opType: 'Flatten',
    domain: '',
    name: `${flat}_node`,
    inputs: [pooled],
    outputs: [flat],
    attrs: { axis: { type: 'int', value: 1 } },
  });
  return flat;
}

function renameValue(g: Graph, from: string, to: string): void {
  for (const n of g.nodes) {
    n.inputs = n.inputs.map((i) => (i === from ? to : i));
    n.outputs = n.outputs.map((o) => (o === from ? to : o));
  }
  for (const v of [...g.inputs, ...g.outputs]) if (v.name === from) v.name = to;
  const t = g.initializers.get(from);
  if (t) {
    g.initializers.delete(from);
    g.initializers.set(to, t);
  }
  g.values.clear();
}

/**
 * Turns an imported graph into an encoder graph: one input `input` N×3×S×S, output `features` N×D, spatial size
 * relaxed to `cropSize` where possible. Does not mutate `src`.
 */
export function encoderFromGraph(
  src: Graph,
  cropSize: number,
  file?: string,
): { eg: Omit<EncoderGraph, 'source'>; cut: OnnxEncoderInfo['cut']; featureValue: string; channels: number } {
  const g = cloneGraph(src);
  const floats = g.inputs.filter((i) => i.dtype === 'float32' && (i.shape?.length ?? 4) === 4);
  if (g.inputs.length !== 1 || floats.length !== 1) {
    throw new QcbError(
      'QCB_ONNX_GRAPH',
      `an encoder needs exactly one float32 image input N×C×H×W; this model has ${g.inputs.map((i) => `${i.name} ${i.dtype} [${i.shape?.join('×') ?? '?'}]`).join(', ') || 'none'}`,
      {
        file,
        key: 'graph.input',
        fix: 'export the encoder with a single image input (torch.onnx.export(model, torch.randn(1, 3, 128, 128), …))',
      },
    );
  }
  const inp = g.inputs[0];
  if (inp.name !== 'input') renameValue(g, inp.name, 'input');
  inferShapes(g, { file });
  const channels = g.inputs[0].shape?.[1];
  if (typeof channels !== 'number') {
    throw new QcbError('QCB_ONNX_GRAPH', 'the encoder input has no fixed channel count', {
      file,
      key: 'input',
      fix: 'export with a fixed number of channels (3)',
    });
  }
  const { cut, featureValue } = cutAtFeatures(g, file);
  // relax the input to N×C×S×S when the graph's shapes allow it
  const native = g.inputs[0].shape ?? [];
  const relaxed = cloneGraph(g);
  relaxed.inputs[0] = { ...relaxed.inputs[0], shape: ['N', channels, cropSize, cropSize] };
  relaxed.values.clear();
  let graph: Graph = g;
  let inputSize: number | undefined;
  try {
    inferShapes(relaxed, { file });
    const fs = relaxed.values.get('features')?.shape;
    // the batch axis must stay the batch (a hard-coded Reshape(-1, …) would silently fold space into it)
    if (fs?.length !== 2 || typeof fs[1] !== 'number' || fs[0] !== 'N') throw new Error('features lost their shape');
    graph = relaxed;
  } catch {
    const h = native[2];
    const w = native[3];
    if (typeof h !== 'number' || h !== w) {
      throw new QcbError(
        'QCB_ONNX_GRAPH',
        `the encoder cannot take ${cropSize}×${cropSize} crops and has no fixed square input size to resize them to`,
        {
          file,
          key: 'input',
          value: native,
          fix: 'export the encoder with dynamic spatial axes, or for a fixed square size',
        },
      );
    }
    graph.inputs[0] = { ...graph.inputs[0], shape: ['N', channels, h, w] };
    graph.values.clear();
    inferShapes(graph, { file });
    inputSize = h;
  }
  const fshape = graph.values.get('features')?.shape;
  const dim = fshape?.[1];
  if (typeof dim !== 'number') {
    throw new QcbError(
      'QCB_ONNX_GRAPH',
      `cannot determine the feature width of the encoder (features shape [${fshape?.join(', ') ?? '?'}])`,
      {
        file,
        key: 'features',
        fix: 'export the encoder with a static feature width',
      },
    );
  }
  return { eg: { graph, dim, inputSize }, cut, featureValue, channels };
}

/**
 * The bytes of an encoder file. @throws QCB_FILE_NOT_FOUND naming the file, `key` (the option or protocol entry that
 * gave the path) and `fix`.
 */
export function readEncoderFile(
  path: string,
  key = '--encoder',
  fix = 'check the path given to --encoder (an existing .onnx file or an encoder name)',
): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `encoder file not found: ${path}`, { file: path, key, cause: e, fix });
  }
}

/**
 * Loads an ONNX file as an encoder graph. @throws QCB_FILE_NOT_FOUND, QCB_ONNX_PARSE, QCB_ONNX_GRAPH,
 * QCB_ONNX_UNSUPPORTED_OP
 */
export function loadOnnxEncoder(path: string, cropSize: number): EncoderGraph & { info: OnnxEncoderInfo } {
  const bytes = readEncoderFile(path);
  const src = importOnnx(bytes, { file: path });
  const { eg, cut, featureValue, channels } = encoderFromGraph(src, cropSize, path);
  if (channels !== 3) {
    throw new QcbError(
      'QCB_ONNX_GRAPH',
      `the encoder takes ${channels}-channel images; qcbench feeds 3-channel crops (paper §3.1)`,
      {
        file: path,
        key: 'input',
        value: channels,
        allowed: '3 input channels',
        fix: 'export the encoder for 3-channel input',
      },
    );
  }
  const metadata = readOnnxMetadata(bytes);
  const sha256 = contentHash(bytes);
  return {
    ...eg,
    preprocess: preprocessFromMetadata(metadata),
    source: { file: path, name: basename(path), sha256, cut, feature_value: featureValue },
    info: { cut, featureValue, metadata, sha256, channels },
  };
}

/**
 * Checks that an ONNX file works as an encoder before a run relies on it: it loads, its graph is cut at the pooled
 * features, and one forward pass of two blank N×3×S×S crops (S = `cropSize`, or the size the file is fixed to) in
 * onnxruntime gives finite N×D features with the D its graph declares.
 * @returns the feature width D
 * @throws QCB_FILE_NOT_FOUND, QCB_ONNX_PARSE (not ONNX), QCB_ONNX_GRAPH / QCB_ONNX_UNSUPPORTED_OP (not an image
 *   encoder, wrong output), each naming the file, `key` and a fix
 */
export async function checkOnnxEncoder(path: string, cropSize: number, key = 'encoder'): Promise<number> {
  const eg = loadOnnxEncoder(path, cropSize);
  const T = eg.inputSize ?? cropSize;
  const { loadSession, ortF32 } = await import('../engine/runtime/session.js');
  let session: Awaited<ReturnType<typeof loadSession>> | undefined;
  let dims: readonly number[];
  let data: Float32Array;
  try {
    session = await loadSession(eg.graph, { intraOpNumThreads: 1, noCache: true });
    const r = await session.run({ input: ortF32(new Float32Array(2 * 3 * T * T), [2, 3, T, T]) }, ['features']);
    dims = r.features.dims;
    data = r.features.data as Float32Array;
  } catch (e) {
    throw new QcbError('QCB_ONNX_GRAPH', `the encoder does not run on 2×3×${T}×${T} crops: ${(e as Error).message}`, {
      file: path,
      key,
      cause: e,
      fix: 'export the encoder in eval mode with one N×3×H×W float input (torch.onnx.export with dynamic batch axis)',
    });
  } finally {
    await session?.session.release();
  }
  if (dims.length !== 2 || dims[0] !== 2 || dims[1] !== eg.dim || !data.every(Number.isFinite))
    throw new QcbError(
      'QCB_ONNX_GRAPH',
      `the encoder maps 2×3×${T}×${T} crops to [${dims.join('×')}]${data.every(Number.isFinite) ? '' : ' with non-finite values'}, not 2×${eg.dim} features`,
      {
        file: path,
        key,
        value: dims,
        allowed: 'N×D finite features for N×3×S×S crops',
        fix: 'export the backbone (classifier removed or kept as the last Gemm) with a dynamic batch axis, in eval mode',
      },
    );
  return eg.dim;
}
