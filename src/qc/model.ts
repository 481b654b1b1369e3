/**
 * The self-contained QC classifier as one ONNX graph (scoring a whole screen with the chosen model): everything between the crop store's bytes and the
 * abnormal score runs inside the model, so onnxruntime in any language scores crops with no qcbench code.
 *
 * ```
 * crops N×C×S×S uint8 (or float32 on the 0…255 scale)
 *   → Gather channels (store channels → the encoder's R, G, B; a grey store is replicated)
 *   → Cast float → x·1/(255·std[c]) − mean[c]/std[c]      (= (x/255 − mean)/std, the encoder's normalisation)
 *   → encoder body (`input` N×3×S×S → `features` N×D, or a fine-tuned body → `logits` N×2)
 *   → (hand-made measures only) z-score with the training crops' column means and sds
 *   → head:  linear  logits = features·Wᵀ + b (paper §3.3 task 2)
 *            knn     squared Euclidean distances to the embedded training bank (MatMul), TopK(k, smallest),
 *                    Gather the bank's labels (1 = abnormal), mean → vote share (paper §3.3 task 1)
 *            logits  (fine-tuned body, task 3) nothing more
 *   → outputs: abnormal_score N, probabilities N×2 (normal, abnormal), logits N×2 (trained heads only)
 * ```
 *
 * A crop is abnormal when abnormal_score > threshold (0.5 by default, i.e. argmax; a kNN tie with an even k goes
 * to normal).
 */

import type { Preprocess } from '../encoders/types.js';
import { fromArray, GraphBuilder } from '../engine/ir/builder.js';
import type { Graph, Tensor } from '../engine/ir/graph.js';
import { cloneGraph } from '../engine/train/compile.js';
import { QcbError } from '../errors.js';

/** Classes of every QC model, in logit/probability order: index 1 (abnormal) is the positive class. */
export const QC_CLASSES = ['normal', 'abnormal'] as const;

/** The head appended to the encoder body. */
export type QcHead =
  | {
      kind: 'linear';
      /** K×D (K = 2), row-major. */
      weight: Float32Array;
      /** K. */
      bias: Float32Array;
    }
  | {
      kind: 'knn';
      /** M×D training features (before any L2 normalisation), row-major. */
      bank: Float32Array;
      rows: number;
      cols: number;
      /** M labels, 1 for abnormal, 0 for normal. */
      labels: Float32Array;
      k: number;
      normalize: 'raw' | 'l2';
    }
  /** The body already ends in `logits` N×2 (a fine-tuned encoder + head). */
  | { kind: 'logits' };

export interface ClassifierSpec {
  /** Encoder (or fine-tuned) graph: input `input` N×3×S×S float32 → `bodyOutput`. Not modified. */
  body: Graph;
  /** `features` (N×D) or `logits` (N×2, head kind `logits`). */
  bodyOutput: string;
  /** Channels C of the crops fed to the model (the crop store's channel count). */
  channels: number;
  /** Store channel index feeding each of the encoder's 3 input channels (length 3). */
  channelIndices: number[];
  /** Crop side S. */
  cropSize: number;
  preprocess: Preprocess;
  /** dtype of the `crops` input (default uint8). float32 crops carry the same 0…255 values. */
  inputType?: 'uint8' | 'float32';
  /**
   * Column z-scoring between the body's `features` and the head (hand-made measures on unrelated scales, as a cell
   * z-scores them: src/downstream/cell.ts): (f − mean) / sd, and 0 for a column whose training sd is 0. D each.
   */
  standardise?: { mean: ArrayLike<number>; sd: ArrayLike<number> };
}

function f32(dims: number[], data: ArrayLike<number>): Tensor {
  return { dtype: 'float32', dims, data: Float32Array.from(data) };
}

/** Squared L2 norm of each row of an N×D value as N×1 (MatMul with ones: works at any opset), in `dtype`. */
function rowSqNorm(b: GraphBuilder, x: string, d: number, dtype: 'float32' | 'float64' = 'float32'): string {
  const ones = b.constant(fromArray(new Array(d).fill(1), [d, 1], dtype), 'ones_d');
  return b.matMul(b.mul(x, x), ones);
}

/** (f − mean) · (1/sd, or 0 where sd is 0) per column of N×D features: the same values as encoders' `standardise`. */
function zScore(b: GraphBuilder, f: string, z: { mean: ArrayLike<number>; sd: ArrayLike<number> }): string {
  const D = z.mean.length;
  const mean = b.constant(f32([1, D], z.mean), 'z_mean');
  const inv = b.constant(
    f32(
      [1, D],
      Array.from(z.sd, (v) => (v > 0 ? 1 / v : 0)),
    ),
    'z_inv_sd',
  );
  return b.mul(b.sub(f, mean), inv);
}

/**
 * The preprocessing + body part: `crops` → the body's output, with the body's input rewired. Returns the builder
 * (on a copy of the body) and the body output name.
 */
function withPreprocessing(spec: ClassifierSpec): GraphBuilder {
  const { channels: C, cropSize: S, channelIndices: idx, preprocess: pre } = spec;
  if (idx.length !== 3 || idx.some((i) => !Number.isInteger(i) || i < 0 || i >= C)) {
    throw new QcbError('QCB_USAGE', `channel selection ${JSON.stringify(idx)} does not fit crops of ${C} channel(s)`, {
      key: '--channels',
      value: idx,
      allowed: `3 indices in 0…${C - 1}`,
      fix: 'name 3 (or 1) of the store channels',
    });
  }
  const g = cloneGraph(spec.body);
  if (!g.inputs.some((v) => v.name === 'input')) {
    throw new QcbError('QCB_ONNX_GRAPH', `encoder graph '${g.name}' has no input named 'input'`, {
      key: 'input',
      fix: 'the encoder must take input `input` N×3×S×S',
    });
  }
  const bodyNodes = g.nodes;
  // the builder first sees the whole body, so that no name it makes repeats one of the body's nodes or values
  const b = new GraphBuilder(g);
  g.nodes = [];
  g.inputs = g.inputs.filter((v) => v.name !== 'input');
  g.outputs = [];
  g.values.clear();
  const crops = b.input('crops', spec.inputType ?? 'uint8', ['N', C, S, S]);
  const picked = b.op1('Gather', [crops, b.ints(idx)], { axis: 1 }, 'rgb');
  const x = b.cast(picked, 'float32');
  const scale = b.constant(
    f32(
      [1, 3, 1, 1],
      [0, 1, 2].map((c) => 1 / (255 * (pre.std[c] ?? 1))),
    ),
    'pre_scale',
  );
  const shift = b.constant(
    f32(
      [1, 3, 1, 1],
      [0, 1, 2].map((c) => -(pre.mean[c] ?? 0) / (pre.std[c] ?? 1)),
    ),
    'pre_shift',
  );
  const normed = b.add(b.mul(x, scale), shift);
  const prep = g.nodes;
  for (const n of bodyNodes) n.inputs = n.inputs.map((i) => (i === 'input' ? normed : i));
  // topological order: preprocessing first, then the body, then whatever the caller appends
  g.nodes = [...prep, ...bodyNodes];
  return b;
}

/**
 * Feature graph: `crops` N×C×S×S → `features` N×D with the same preprocessing as the classifier (used to compute
 * the kNN bank so that bank and queries go through identical arithmetic).
 */
export function buildFeatureGraph(spec: ClassifierSpec): Graph {
  const b = withPreprocessing(spec);
  b.output(spec.bodyOutput, spec.bodyOutput === 'features' ? undefined : 'features');
  return b.build();
}

/**
 * The whole classifier graph (see module doc).
 * @returns graph with input `crops` N×C×S×S and outputs `abnormal_score` N, `probabilities` N×2 and, for trained
 *   heads, `logits` N×2
 */
export function buildClassifierGraph(spec: ClassifierSpec, head: QcHead): Graph {
  const b = withPreprocessing(spec);
  const feats = spec.standardise ? zScore(b, spec.bodyOutput, spec.standardise) : spec.bodyOutput;
  if (head.kind === 'knn') {
    const { rows: M, cols: D, k } = head;
    if (M < 1 || head.bank.length !== M * D || head.labels.length !== M) {
      throw new QcbError(
        'QCB_INTERNAL',
        `kNN bank of ${head.bank.length} values for ${M}×${D} and ${head.labels.length} labels`,
        {
          fix: 'please report this',
        },
      );
    }
    const kk = Math.min(k, M);
    const bank = Float64Array.from(head.bank);
    let q = feats;
    if (head.normalize === 'l2') {
      for (let i = 0; i < M; i++) {
        let ss = 0;
        for (let j = 0; j < D; j++) ss += bank[i * D + j] ** 2;
        if (ss > 0) {
          const inv = 1 / Math.sqrt(ss);
          for (let j = 0; j < D; j++) bank[i * D + j] *= inv;
        }
      }
      const norm = b.op1('Max', [b.sqrt(rowSqNorm(b, feats, D)), b.scalar(1e-30)]);
      q = b.div(feats, norm);
    }
    // distances in float64: the expanded form cancels ‖q‖² against 2·q·b, and in float32 that error (~1e-7·‖q‖²)
    // reorders neighbours whose distances differ by less — the benchmark's kNN (exact, float64) would not
    const bankT = new Float64Array(D * M);
    const bb = new Float64Array(M);
    for (let i = 0; i < M; i++) {
      let ss = 0;
      for (let j = 0; j < D; j++) {
        const v = bank[i * D + j];
        bankT[j * M + i] = v;
        ss += v * v;
      }
      bb[i] = ss;
    }
    const bt = b.constant({ dtype: 'float64', dims: [D, M], data: bankT }, 'knn_bank_t');
    const bn = b.constant({ dtype: 'float64', dims: [1, M], data: bb }, 'knn_bank_sqnorm');
    const lab = b.constant(f32([M], head.labels), 'knn_labels');
    // ‖q − b‖² = ‖q‖² − 2 q·b + ‖b‖²  (N×M, float64)
    const q64 = b.cast(q, 'float64');
    const dist = b.add(b.sub(rowSqNorm(b, q64, D, 'float64'), b.mul(b.matMul(q64, bt), b.scalar(2, 'float64'))), bn);
    const [, nn] = b.op('TopK', [dist, b.ints([kk])], { axis: 1, largest: 0, sorted: 1 }, 2, 'knn_topk');
    const votes = b.op1('Gather', [lab, nn], { axis: 0 }, 'knn_votes'); // N×k
    const share = b.matMul(votes, b.constant(f32([kk, 1], new Float32Array(kk).fill(1 / kk)), 'mean_k'));
    const score = b.reshape(share, [-1]);
    b.output(score, 'abnormal_score');
    const probs = b.concat([b.sub(b.scalar(1), share), share], 1);
    b.output(probs, 'probabilities');
    return b.build();
  }
  let logits: string;
  if (head.kind === 'linear') {
    const K = head.bias.length;
    const D = head.weight.length / K;
    const w = b.constant(f32([K, D], head.weight), 'head_weight');
    const bias = b.constant(f32([K], head.bias), 'head_bias');
    logits = b.gemm(feats, w, bias, { transB: true });
  } else logits = feats;
  const probs = b.softmax(logits, -1);
  const one = b.constant({ dtype: 'int64', dims: [], data: BigInt64Array.of(1n) }, 'idx_abnormal');
  const score = b.op1('Gather', [probs, one], { axis: 1 }, 'score');
  b.output(score, 'abnormal_score');
  b.output(probs, 'probabilities');
  b.output(logits, 'logits');
  return b.build();
}
