/**
 * Feature extraction through an encoder's ONNX graph in onnxruntime, in batches: uint8 crops N×C×S×S → float in
 * [0, 1] → the encoder's normalisation (x − mean) / std per channel → `features` N×D. A frozen encoder's features
 * are computed once per (encoder, crops) and shared by kNN and the linear probe (paper §3.3 tasks 1–2).
 * `qcbench eval --engine tfjs` runs the same graph in the TF.js interpreter instead (see {@link setFeatureEngine}).
 */
import { readFileSync } from 'node:fs';
import { QcbError } from '../errors.js';
import * as ort from 'onnxruntime-node';
import {
  type CalibrationMethod,
  type Precision,
  quantizeGraph,
  type QuantizeReport,
} from '../engine/quantize/index.js';
import type { Graph } from '../engine/ir/graph.js';
import { loadSession, ortF32 } from '../engine/runtime/session.js';
import { permutation } from '../util/random.js';
import type { EncoderEngine } from '../engine/verify.js';
import type { EncoderGraph, Preprocess } from './types.js';
import type { Logger } from '../util/log.js';

/** Crops in memory: N×C×S×S uint8, channel-major per crop (the crop store's layout). */
export interface CropSet {
  data: Uint8Array;
  n: number;
  channels: number;
  size: number;
}

/** N×D float32 features, row-major. */
export interface Features {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** A CropSet of the given rows (copied). */
export function selectCrops(c: CropSet, rows: readonly number[]): CropSet {
  const per = c.channels * c.size * c.size;
  const data = new Uint8Array(rows.length * per);
  rows.forEach((r, i) => {
    data.set(c.data.subarray(r * per, (r + 1) * per), i * per);
  });
  return { data, n: rows.length, channels: c.channels, size: c.size };
}

/** Rows `rows` of N×D features (copied): rows.length×D. */
export function selectFeatureRows(f: Features, rows: readonly number[]): Features {
  const data = new Float32Array(rows.length * f.cols);
  rows.forEach((r, i) => {
    data.set(f.data.subarray(r * f.cols, (r + 1) * f.cols), i * f.cols);
  });
  return { data, rows: rows.length, cols: f.cols };
}

/** Float32 values as little-endian bytes (a view, not a copy): the layout of the `.f32` files. */
export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Reads a little-endian float32 file (copied, so it is aligned).
 * @throws QCB_FILE_TRUNCATED when its size is not a whole number of float32 values
 */
export function readF32(file: string): Float32Array {
  const buf = readFileSync(file);
  if (buf.length % 4 !== 0)
    throw new QcbError('QCB_FILE_TRUNCATED', `${file} has ${buf.length} bytes, not a whole number of float32 values`, {
      file,
      fix: 'delete the folder holding it: it is computed again',
    });
  const out = new Float32Array(buf.length / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/**
 * Crops `rows` of `c` as the encoder's float input, count×3×T×T (T = `targetSize` or S): scaled to [0, 1],
 * normalised per channel, grey crops replicated to 3 channels, bilinear resize (half-pixel centres, as
 * torchvision's `Resize` without antialias) when T ≠ S.
 */
export function cropsToInput(c: CropSet, rows: readonly number[], pre: Preprocess, targetSize?: number): Float32Array {
  if (c.channels !== 3 && c.channels !== 1) {
    throw new QcbError(
      'QCB_STORE',
      `crops have ${c.channels} channels; encoders take 3 (RGB composite, paper §3.1) or 1 (replicated)`,
      {
        key: 'channels',
        value: c.channels,
        allowed: '1 or 3',
        fix: 'extract crops with 3 channels (e.g. DNA, actin, mitochondria as in the paper) or a single channel',
      },
    );
  }
  const S = c.size;
  const T = targetSize ?? S;
  const plane = S * S;
  const out = new Float32Array(rows.length * 3 * T * T);
  const inv255 = 1 / 255;
  rows.forEach((r, i) => {
    for (let ch = 0; ch < 3; ch++) {
      const src = r * c.channels * plane + (c.channels === 1 ? 0 : ch) * plane;
      const dst = (i * 3 + ch) * T * T;
      const m = pre.mean[ch] ?? 0;
      const s = 1 / (pre.std[ch] ?? 1);
      if (T === S) {
        for (let k = 0; k < plane; k++) out[dst + k] = (c.data[src + k] * inv255 - m) * s;
      } else {
        const sc = S / T;
        for (let y = 0; y < T; y++) {
          const fy = Math.min(Math.max((y + 0.5) * sc - 0.5, 0), S - 1);
          const y0 = Math.floor(fy);
          const y1 = Math.min(y0 + 1, S - 1);
          const wy = fy - y0;
          for (let x = 0; x < T; x++) {
            const fx = Math.min(Math.max((x + 0.5) * sc - 0.5, 0), S - 1);
            const x0 = Math.floor(fx);
            const x1 = Math.min(x0 + 1, S - 1);
            const wx = fx - x0;
            const v =
              (1 - wy) * ((1 - wx) * c.data[src + y0 * S + x0] + wx * c.data[src + y0 * S + x1]) +
              wy * ((1 - wx) * c.data[src + y1 * S + x0] + wx * c.data[src + y1 * S + x1]);
            out[dst + y * T + x] = (v * inv255 - m) * s;
          }
        }
      }
    }
  });
  return out;
}

export interface ExtractOptions {
  /** Crops per onnxruntime run (default 64). */
  batchSize?: number;
  threads?: number;
  log?: Logger;
  /** Progress label (default "features"). */
  label?: string;
  /** Engine that runs the encoder graph; default the process-wide one ({@link setFeatureEngine}: onnxruntime). */
  engine?: EncoderEngine;
  /**
   * int8: the encoder runs statically quantised (see {@link int8Encoder}); onnxruntime only. Default fp32.
   */
  precision?: Precision;
}

/** Crops an int8 encoder is calibrated on (a seeded sample of the first crop set it embeds). */
export const FEATURE_CALIBRATION_CROPS = 256;
/** Range method of the int8 features. */
export const FEATURE_CALIBRATION_METHOD: CalibrationMethod = 'minmax';

const int8Encoders = new WeakMap<Graph, Promise<{ graph: Graph; report: QuantizeReport }>>();

/**
 * The int8 (QDQ) form of an encoder graph (src/engine/quantize/), calibrated on a seeded sample (seed 0) of
 * {@link FEATURE_CALIBRATION_CROPS} crops of the first crop set it is asked to embed, then reused for every later
 * crop set of the same graph, so that train and test features go through one quantised model. Calibration sees
 * crops only, never labels. In a run that first set is every annotated crop of the data set (the features are
 * extracted once per encoder and data set).
 */
export function int8Encoder(
  eg: EncoderGraph,
  pre: Preprocess,
  crops: CropSet,
  threads?: number,
): Promise<{ graph: Graph; report: QuantizeReport }> {
  let hit = int8Encoders.get(eg.graph);
  if (!hit) {
    const T = eg.inputSize ?? crops.size;
    const rows =
      crops.n <= FEATURE_CALIBRATION_CROPS
        ? Array.from({ length: crops.n }, (_, i) => i)
        : permutation(crops.n, 0)
            .slice(0, FEATURE_CALIBRATION_CROPS)
            .sort((a, b) => a - b);
    const feeds = function* () {
      for (let s = 0; s < rows.length; s += 32) {
        const r = rows.slice(s, s + 32);
        yield { input: new ort.Tensor('float32', cropsToInput(crops, r, pre, T), [r.length, 3, T, T]) };
      }
    };
    hit = quantizeGraph(eg.graph, { calibration: feeds(), method: FEATURE_CALIBRATION_METHOD, threads });
    int8Encoders.set(eg.graph, hit);
    hit.catch(() => int8Encoders.delete(eg.graph));
  }
  return hit;
}

/** Crops per run of the TF.js interpreter: it keeps a batch's intermediates until the batch ends. */
const TFJS_BATCH = 16;

let defaultFeatureEngine: EncoderEngine = 'onnxruntime';

/**
 * Sets the engine of every later {@link extractFeatures} whose options name none, process-wide (as the execution
 * provider is): `qcbench eval --engine`. Frozen features only: fine-tuning always trains in onnxruntime.
 * @returns the previous engine, to restore
 */
export function setFeatureEngine(engine: EncoderEngine): EncoderEngine {
  const prev = defaultFeatureEngine;
  defaultFeatureEngine = engine;
  return prev;
}

/**
 * Runs the encoder over all crops, in onnxruntime or (`engine: 'tfjs'`) in the TF.js interpreter, which is loaded
 * only then and uses tfjs-node where installed, else TF.js's pure-JS CPU backend.
 * @returns N×D features (D = `eg.dim`)
 * @throws QCB_FEED if the encoder's features are not finite (a diverged pretraining), QCB_STORE for crops with
 *   neither 1 nor 3 channels
 */
export async function extractFeatures(
  eg: EncoderGraph,
  pre: Preprocess,
  crops: CropSet,
  o: ExtractOptions = {},
): Promise<Features> {
  if (eg.compute) return checkFinite(eg.compute(crops));
  const engine = o.engine ?? defaultFeatureEngine;
  const bs = Math.max(1, o.batchSize ?? (engine === 'tfjs' ? TFJS_BATCH : 64));
  const T = eg.inputSize ?? crops.size;
  let run: (x: Float32Array, n: number) => Promise<Float32Array>;
  if (engine === 'tfjs' && o.precision === 'int8') {
    throw new QcbError('QCB_USAGE', 'int8 features run in onnxruntime only, not in the TF.js interpreter', {
      key: 'runtime.precision',
      value: 'int8',
      allowed: 'fp32 with --engine tfjs',
      fix: 'use runtime.precision fp32 with the TF.js engine, or the onnxruntime engine for int8',
    });
  }
  if (engine === 'tfjs') {
    const tfjs = await import('../engine/tfjs/interpreter.js');
    const backend = await tfjs.initTfjsEngine();
    o.log?.debug('features on the TF.js interpreter', { backend });
    run = async (x, n) =>
      tfjs.runGraph(eg.graph, { input: { dtype: 'float32', dims: [n, 3, T, T], data: x } }, ['features']).features
        .data as Float32Array;
  } else {
    const graph = o.precision === 'int8' ? (await int8Encoder(eg, pre, crops, o.threads)).graph : eg.graph;
    // (a QDQ graph's convolutions read dequantised weights: the NCHWc rewrite for computed weights must leave them
    // to onnxruntime's QDQ fusion)
    const session = await loadSession(graph, {
      intraOpNumThreads: o.threads,
      ...(o.precision === 'int8' ? { nchwcMaxPlane: 0 } : {}),
    });
    run = async (x, n) =>
      (await session.run({ input: ortF32(x, [n, 3, T, T]) }, ['features'])).features.data as Float32Array;
  }
  const D = eg.dim;
  const out = new Float32Array(crops.n * D);
  const prog = o.log && crops.n > bs ? o.log.startProgress(o.label ?? 'features', crops.n, 'crops') : undefined;
  for (let s = 0; s < crops.n; s += bs) {
    const rows = Array.from({ length: Math.min(bs, crops.n - s) }, (_, i) => s + i);
    const x = cropsToInput(crops, rows, pre, T);
    const f = await run(x, rows.length);
    if (f.length !== rows.length * D) {
      throw new QcbError(
        'QCB_ONNX_GRAPH',
        `the encoder returned ${f.length / rows.length} features per crop, expected ${D}`,
        { key: 'features', fix: 'check the encoder file' },
      );
    }
    out.set(f, s * D);
    prog?.tick(rows.length);
  }
  prog?.finish();
  return checkFinite({ data: out, rows: crops.n, cols: D });
}

/** `f` when all its values are finite. @throws QCB_FEED naming the first crop that is not */
function checkFinite(f: Features): Features {
  const D = f.cols;
  for (let i = 0; i < f.data.length; i++) {
    if (!Number.isFinite(f.data[i])) {
      throw new QcbError('QCB_FEED', `the encoder's features contain ${f.data[i]} (crop ${Math.floor(i / D)})`, {
        key: 'features',
        fix: 'the encoder is broken (a diverged pretraining gives NaN weights): retrain or re-export it',
      });
    }
  }
  return f;
}

/** Column means and standard deviations (population, as scikit-learn's StandardScaler) of N×D training features. */
export interface Standardiser {
  mean: Float64Array;
  sd: Float64Array;
}

/** The z-score of a cell: the mean and sd of each column of its N×D training features. */
export function fitStandardiser(train: Features): Standardiser {
  const D = train.cols;
  const mean = new Float64Array(D);
  const sd = new Float64Array(D);
  for (let r = 0; r < train.rows; r++) for (let j = 0; j < D; j++) mean[j] += train.data[r * D + j];
  for (let j = 0; j < D; j++) mean[j] /= Math.max(1, train.rows);
  for (let r = 0; r < train.rows; r++) for (let j = 0; j < D; j++) sd[j] += (train.data[r * D + j] - mean[j]) ** 2;
  for (let j = 0; j < D; j++) sd[j] = Math.sqrt(sd[j] / Math.max(1, train.rows));
  return { mean, sd };
}

/**
 * (x − mean) / sd per column of N×D features (a copy). A column constant over the training crops (sd 0) carries no
 * information the head could learn from, and becomes 0 for every split.
 */
export function standardise(f: Features, s: Standardiser): Features {
  const D = f.cols;
  if (s.mean.length !== D)
    throw new QcbError('QCB_INTERNAL', `standardising ${D} feature columns with statistics of ${s.mean.length}`);
  const out = new Float32Array(f.data.length);
  for (let r = 0; r < f.rows; r++)
    for (let j = 0; j < D; j++) out[r * D + j] = s.sd[j] > 0 ? (f.data[r * D + j] - s.mean[j]) / s.sd[j] : 0;
  return { data: out, rows: f.rows, cols: D };
}

/**
 * Paper Fig. 1's RGB composite for a Cell Painting store: red = WGA + phalloidin (Ph_golgi / AGP / actin),
 * green = MitoTracker (Mito; Tubulin on BBBC021), blue = Hoechst (DNA). Names compared case-insensitively.
 */
const RGB_PREFERENCES: readonly (readonly string[])[] = [
  ['ph_golgi', 'agp', 'actin', 'wga'],
  ['mito', 'mitotracker', 'tubulin'],
  ['hoechst', 'dapi', 'dna'],
];

/**
 * Which store channels feed the encoder's 3 input channels: `requested` names (3, or 1 to replicate), else all of a
 * 1- or 3-channel store, else the paper's composite by channel name.
 * @throws QCB_STORE naming the store's channels and the `--channels` fix
 */
export function chooseChannels(storeChannels: readonly string[], requested?: readonly string[]): number[] {
  const lower = storeChannels.map((c) => c.toLowerCase());
  const fail = (why: string) =>
    new QcbError('QCB_STORE', why, {
      key: '--channels',
      value: requested ?? storeChannels,
      allowed: storeChannels.join(', '),
      fix: `name 3 of the store's channels in R,G,B order (e.g. --channels ${storeChannels.slice(0, 3).join(',')}) or 1 to replicate`,
    });
  if (requested?.length) {
    if (requested.length !== 3 && requested.length !== 1) throw fail(`give 1 or 3 channels, got ${requested.length}`);
    return requested.map((r) => {
      const i = lower.indexOf(r.toLowerCase());
      if (i < 0) throw fail(`channel '${r}' is not in the store`);
      return i;
    });
  }
  if (storeChannels.length === 1 || storeChannels.length === 3) return storeChannels.map((_, i) => i);
  const idx = RGB_PREFERENCES.map((prefs) => lower.findIndex((c) => prefs.includes(c)));
  if (idx.some((i) => i < 0))
    throw fail(
      `the store has ${storeChannels.length} channels (${storeChannels.join(', ')}) and no DNA / actin / mitochondria set to compose RGB from`,
    );
  return idx;
}

/** Keeps channels `idx` (in that order) of n×C×S×S crops: n×|idx|×S×S. */
export function pickChannels(
  data: Uint8Array,
  n: number,
  channels: number,
  size: number,
  idx: readonly number[],
): CropSet {
  const plane = size * size;
  if (idx.length === channels && idx.every((c, i) => c === i)) return { data, n, channels, size };
  const out = new Uint8Array(n * idx.length * plane);
  for (let k = 0; k < n; k++) {
    idx.forEach((c, j) => {
      out.set(data.subarray((k * channels + c) * plane, (k * channels + c + 1) * plane), (k * idx.length + j) * plane);
    });
  }
  return { data: out, n, channels: idx.length, size };
}
