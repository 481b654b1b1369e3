import type { ImageData } from '../types.js';

/**
 * Intensity normalisation of microscopy channels to uint8. Per-field percentile stretching (default 0.1–99.9 %) is
 * what CellProfiler-style pipelines and the paper's crops use: robust to a few saturated pixels and to the 12-bit
 * data stored in 16-bit files (BBBC021/022).
 */

/** A fixed intensity window for one channel (`min` → 0, `max` → 255). */
export interface IntensityRange {
  min: number;
  max: number;
}

/**
 * The `lo`-th and `hi`-th percentiles (0–100) of each channel (exact for 8/16-bit via a histogram; float by sort of
 * a strided sample). Returns one {@link IntensityRange} per channel.
 */
export function percentileRanges(img: ImageData, lo = 0.1, hi = 99.9): IntensityRange[] {
  const { channels: C, data } = img;
  const n = img.width * img.height;
  const out: IntensityRange[] = [];
  for (let c = 0; c < C; c++) {
    if (img.bitDepth === 32) {
      const step = Math.max(1, Math.floor(n / 200_000));
      const sample: number[] = [];
      for (let i = c; i < n * C; i += C * step) if (Number.isFinite(data[i])) sample.push(data[i]);
      sample.sort((a, b) => a - b);
      const at = (p: number) =>
        sample[Math.min(sample.length - 1, Math.max(0, Math.round((p / 100) * (sample.length - 1))))] ?? 0;
      out.push({ min: at(lo), max: at(hi) });
      continue;
    }
    const hist = new Uint32Array(img.bitDepth === 8 ? 256 : 65536);
    for (let i = c; i < n * C; i += C) hist[data[i]]++;
    out.push({ min: histPercentile(hist, n, lo), max: histPercentile(hist, n, hi) });
  }
  return out;
}

/** The value below which `p` % of the `n` counted samples lie (nearest rank). */
export function histPercentile(hist: Uint32Array, n: number, p: number): number {
  const rank = Math.min(n - 1, Math.max(0, Math.floor((p / 100) * n)));
  let acc = 0;
  for (let v = 0; v < hist.length; v++) {
    acc += hist[v];
    if (acc > rank) return v;
  }
  return hist.length - 1;
}

/**
 * Maps channel `c` of `img` linearly from `range` to 0–255 (clipped), written as H×W into `out` (allocated when not
 * given). A flat channel (max ≤ min) maps to 0.
 */
export function toUint8(img: ImageData, c: number, range: IntensityRange, out?: Uint8Array): Uint8Array {
  const n = img.width * img.height;
  const C = img.channels;
  const dst = out ?? new Uint8Array(n);
  const span = range.max - range.min;
  if (!(span > 0)) {
    dst.fill(0, 0, n);
    return dst;
  }
  const data = img.data;
  if (img.bitDepth !== 32) {
    // Lookup table: one multiply per possible value instead of per pixel.
    const size = img.bitDepth === 8 ? 256 : 65536;
    const lut = new Uint8Array(size);
    const scale = 255 / span;
    const lo = Math.max(0, Math.ceil(range.min));
    const hi = Math.min(size - 1, Math.floor(range.max));
    for (let v = lo; v <= hi; v++) lut[v] = Math.round((v - range.min) * scale);
    lut.fill(255, Math.max(hi + 1, 0));
    for (let i = 0, j = c; i < n; i++, j += C) dst[i] = lut[data[j]];
    return dst;
  }
  const scale = 255 / span;
  for (let i = 0, j = c; i < n; i++, j += C) {
    const v = (data[j] - range.min) * scale;
    dst[i] = v <= 0 || Number.isNaN(v) ? 0 : v >= 255 ? 255 : Math.round(v);
  }
  return dst;
}

/** Per-channel percentile normalisation of a whole image to uint8 (H×W×C interleaved, like the input). */
export function normalizePercentile(img: ImageData, lo = 0.1, hi = 99.9): ImageData {
  const ranges = percentileRanges(img, lo, hi);
  const n = img.width * img.height;
  const C = img.channels;
  const out = new Uint8Array(n * C);
  const plane = new Uint8Array(n);
  for (let c = 0; c < C; c++) {
    toUint8(img, c, ranges[c], plane);
    for (let i = 0, j = c; i < n; i++, j += C) out[j] = plane[i];
  }
  return { width: img.width, height: img.height, channels: C, bitDepth: 8, data: out };
}
