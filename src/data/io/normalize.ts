import type { ImageData } from '../types.js';

/**
 * Intensity normalisation of microscopy channels to uint8. Robust percentile windows (default 0.1–99.9 %) are robust
 * to a few saturated pixels and to the 12-bit data stored in 16-bit files (BBBC021/022). Estimated per field
 * (`percentileRanges`, what CellProfiler-style pipelines and the paper's crops use) they rescale a dim, saturated or
 * nearly empty field to look normal; the median of a sample of a plate's field windows (`medianWindow`) is one window
 * for the whole plate, under which a field's intensity relative to its plate survives.
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

/**
 * One window from several fields' windows of a channel: the median of their `min`s and the median of their `max`s
 * (an even count averages the middle two). Robust to a minority of odd fields — a dark, saturated or empty field among
 * the sample moves neither end — where pooling their pixels would let a saturated field set the top percentile.
 * No windows → the empty window {0, 0} (which maps every pixel to 0).
 */
export function medianWindow(windows: IntensityRange[]): IntensityRange {
  if (windows.length === 0) return { min: 0, max: 0 };
  const med = (v: number[]) => {
    const s = [...v].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  return { min: med(windows.map((w) => w.min)), max: med(windows.map((w) => w.max)) };
}

/**
 * A uint8 → uint8 lookup table re-expressing values stored under window `from` in window `to`: a stored value v
 * stands for the intensity from.min + v/255·(from.max − from.min), which maps linearly into `to` and is rounded and
 * clipped to 0…255. Exact inside both windows up to rounding (≤ ½ step of the wider window); what the store clipped
 * at 0 or 255 (intensities beyond `from`) stays at the window's edge, so re-windowing cannot recover them. An empty
 * target window (max ≤ min) maps everything to 0, as {@link toUint8} does.
 */
export function rewindowLut(from: IntensityRange, to: IntensityRange): Uint8Array {
  const lut = new Uint8Array(256);
  const span = to.max - to.min;
  if (!(span > 0)) return lut;
  const step = (from.max - from.min) / 255;
  for (let v = 0; v < 256; v++) {
    const x = from.min + v * step;
    const y = Math.round(((x - to.min) / span) * 255);
    lut[v] = y <= 0 ? 0 : y >= 255 ? 255 : y;
  }
  return lut;
}
