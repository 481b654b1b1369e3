/**
 * Calibration of activation ranges for static int8 quantisation: the fp32 graph runs over calibration batches with
 * every tensor to be quantised fetched as an extra output, and each tensor's range is its running minimum and maximum
 * (`minmax`), or the (100 − p)-th and p-th percentiles of a seeded sample of its values (`percentile`, p = 99.99 by
 * default), which ignores the rare extreme activations that would otherwise stretch the 256 levels
 * (Wu et al. 2020, "Integer quantization for deep learning inference", §4.1 calibration: max and percentile).
 */
import * as ort from 'onnxruntime-node';
import { QcbError } from '../../errors.js';
import { mulberry32 } from '../../util/random.js';
import type { Graph } from '../ir/graph.js';
import { exportOnnx } from '../onnx/export.js';
import { cloneGraph } from '../train/compile.js';
import { sessionOptions } from '../runtime/session.js';

export type CalibrationMethod = 'minmax' | 'percentile';

/** The calibration methods `--calibration` / `runtime.calibration` accept. */
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile'];

/** A tensor's calibrated range [lo, hi] (always containing 0, so that 0 is exact). */
export interface Range {
  lo: number;
  hi: number;
}

export interface CalibrationOptions {
  method?: CalibrationMethod;
  /** p of the percentile method (default 99.99). */
  percentile?: number;
  threads?: number;
  /** Seed of the percentile method's value sample (default 0). */
  seed?: number;
}

export interface CalibrationResult {
  ranges: Map<string, Range>;
  /** Batches and samples (first axis of the first input) seen. */
  batches: number;
  samples: number;
}

/** Values sampled from each tensor per batch (percentile method). */
const SAMPLE_PER_BATCH = 16384;

/**
 * Runs `graph` over the calibration feeds and returns the range of each named tensor (graph inputs are read from the
 * feeds themselves).
 * @throws QCB_USAGE when there are no calibration batches
 */
export async function calibrateRanges(
  graph: Graph,
  tensors: readonly string[],
  feeds: Iterable<Record<string, ort.Tensor>> | AsyncIterable<Record<string, ort.Tensor>>,
  o: CalibrationOptions = {},
): Promise<CalibrationResult> {
  const method = o.method ?? 'minmax';
  const p = o.percentile ?? 99.99;
  const inputs = new Set(graph.inputs.map((v) => v.name));
  const g = cloneGraph(graph);
  const fetch = tensors.filter((t) => !inputs.has(t));
  const have = new Set(g.outputs.map((v) => v.name));
  for (const t of fetch) if (!have.has(t)) g.outputs.push({ name: t, dtype: 'float32' });
  const session = await ort.InferenceSession.create(
    exportOnnx(g, { valueInfo: false }),
    sessionOptions({ intraOpNumThreads: o.threads, executionProviders: ['cpu'] }),
  );
  const stats = new Map<string, { lo: number; hi: number; sample: number[] }>();
  for (const t of tensors) stats.set(t, { lo: 0, hi: 0, sample: [] });
  const rnd = mulberry32(o.seed ?? 0);
  let batches = 0;
  let samples = 0;
  try {
    for await (const feed of feeds) {
      const out = fetch.length ? await session.run(feed, fetch) : {};
      for (const t of tensors) {
        const v = (inputs.has(t) ? feed[t] : out[t]).data as Float32Array;
        const s = stats.get(t)!;
        let lo = s.lo;
        let hi = s.hi;
        for (let i = 0; i < v.length; i++) {
          const x = v[i];
          if (x < lo) lo = x;
          else if (x > hi) hi = x;
        }
        s.lo = lo;
        s.hi = hi;
        if (method === 'percentile') {
          const m = Math.min(v.length, SAMPLE_PER_BATCH);
          for (let i = 0; i < m; i++) s.sample.push(v[Math.floor(rnd() * v.length)]);
        }
      }
      batches++;
      const first = Object.values(feed)[0];
      samples += first ? first.dims[0] : 0;
    }
  } finally {
    await session.release();
  }
  if (batches === 0) {
    throw new QcbError('QCB_USAGE', 'no calibration batches: static int8 quantisation needs crops to calibrate on', {
      key: 'calibration',
      fix: 'give a calibration store with crops',
    });
  }
  const ranges = new Map<string, Range>();
  for (const [t, s] of stats) {
    if (method === 'percentile' && s.sample.length > 0) {
      const a = Float64Array.from(s.sample).sort();
      const at = (q: number) => a[Math.min(a.length - 1, Math.max(0, Math.round((q / 100) * (a.length - 1))))];
      ranges.set(t, { lo: Math.min(0, Math.max(s.lo, at(100 - p))), hi: Math.max(0, Math.min(s.hi, at(p))) });
    } else ranges.set(t, { lo: Math.min(0, s.lo), hi: Math.max(0, s.hi) });
  }
  return { ranges, batches, samples };
}
