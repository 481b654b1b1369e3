/**
 * Whole-field image quality for the crop pipeline's field table (data/store/field-table.ts): CellProfiler's
 * MeasureImageQuality measures (./image-quality.ts) of each channel of each field, computed in the extraction
 * workers on the decoded raw image, before any intensity normalisation, so that dim, saturated or blurred fields keep
 * their difference. Integer images are scaled to [0, 1] by their bit depth's maximum (2^bits − 1) as CellProfiler
 * loads them; float images are taken as they are.
 *
 * The crop pipeline (data/) sits below metrics/ and does not import this file: callers pass
 * {@link FIELD_MEASURES_MODULE} as `extractCrops({ fieldMeasures })` and the workers import it.
 */
import type { FieldMeasurer } from '../data/store/field-table.js';
import type { ImageData } from '../data/types.js';
import {
  DEFAULT_QUALITY_SCALE,
  focusScore,
  haralickCorrelation,
  IMAGE_QUALITY_MEASURES,
  type ImageQuality,
  intensityStats,
  localFocusScore,
  powerLogLogSlope,
  saturation,
} from './image-quality.js';

/** URL of this module, for `extractCrops({ fieldMeasures })`. */
export const FIELD_MEASURES_MODULE = import.meta.url;

/**
 * Sampling step of the field measures: every FIELD_STRIDE-th pixel of every FIELD_STRIDE-th row. The full-resolution
 * measures cost several times the rest of the crop pipeline per field (the spectrum above all; 0.5 s for three
 * 696×520 channels), which would cut extraction throughput several-fold; a regular sample of 1/64 of the pixels
 * (5.6 k of a 696×520 field) keeps the intensity and saturation percentages (unbiased estimates) and FocusScore (the
 * variance over pixels does not depend on which pixels are sampled). LocalFocusScore's tiles and Correlation's offset
 * (20 px) are in sampled pixels, i.e. 160 field pixels. The spectrum is the exception: sampling would keep only rings
 * of wavelength ≥ 8·stride pixels, which a defocus blur of a few pixels barely touches, so PowerLogLogSlope is taken
 * at full resolution on the central {@link FOCUS_WINDOW}² window (a power of two: the radix-2 FFT; a defocused field
 * is blurred everywhere; a 128² window, with half the rings, missed a σ = 6 px blur in the tests). Cost: about 6 ms
 * of CPU for a three-channel 696×520 field, against ≈ 75 ms for the rest of its extraction.
 */
export const FIELD_STRIDE = 8;
/** Side of the central full-resolution window of PowerLogLogSlope (or the field's side when smaller). */
export const FOCUS_WINDOW = 256;

/**
 * One channel image (H×W, 8/16-bit or float) sampled every `stride` pixels in x and y, as floats in CellProfiler's
 * [0, 1] scale: ⌈H/stride⌉×⌈W/stride⌉.
 */
export function toUnitScale(img: ImageData, stride = 1): { data: Float32Array; width: number; height: number } {
  const w = Math.ceil(img.width / stride);
  const h = Math.ceil(img.height / stride);
  const out = new Float32Array(w * h);
  const d = img.data;
  const C = img.channels;
  const scale = img.bitDepth === 32 ? 1 : 1 / (2 ** img.bitDepth - 1);
  for (let y = 0; y < h; y++) {
    const row = y * stride * img.width;
    for (let x = 0; x < w; x++) out[y * w + x] = d[(row + x * stride) * C] * scale;
  }
  return { data: out, width: w, height: h };
}

/** The central h×w window (h = min(size, H), w = min(size, W)) of a channel image at full resolution, in [0, 1]. */
export function centralWindow(img: ImageData, size: number): { data: Float32Array; width: number; height: number } {
  const w = Math.min(size, img.width);
  const h = Math.min(size, img.height);
  const x0 = Math.floor((img.width - w) / 2);
  const y0 = Math.floor((img.height - h) / 2);
  const out = new Float32Array(w * h);
  const scale = img.bitDepth === 32 ? 1 : 1 / (2 ** img.bitDepth - 1);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) out[y * w + x] = img.data[((y0 + y) * img.width + x0 + x) * img.channels] * scale;
  return { data: out, width: w, height: h };
}

/**
 * The measurer the crop pipeline's workers import: CellProfiler's measures of the sampled channel image, except
 * that the power spectrum (PowerLogLogSlope, most of the cost) is taken on the DNA channel's central window only —
 * focus is judged on the nuclear channel, where the objects are — and NaN (an empty cell) elsewhere; TotalIntensity
 * is the sampled mean × the field's pixel count, so it estimates the whole field's total.
 */
export const fieldMeasurer: FieldMeasurer = {
  id: `cellprofiler-measureimagequality scale ${DEFAULT_QUALITY_SCALE}, every ${FIELD_STRIDE}th pixel, spectrum on DNA ${FOCUS_WINDOW}²`,
  measures: IMAGE_QUALITY_MEASURES,
  measure(img: ImageData, o: { dna: boolean }): Record<string, number> {
    const s = toUnitScale(img, FIELD_STRIDE);
    const x = s.data;
    const m: ImageQuality = {
      FocusScore: focusScore(x),
      LocalFocusScore: localFocusScore(x, s.height, s.width),
      Correlation: haralickCorrelation(x, s.height, s.width, DEFAULT_QUALITY_SCALE),
      PowerLogLogSlope: o.dna ? slopeOf(centralWindow(img, FOCUS_WINDOW)) : Number.NaN,
      ...saturation(x),
      ...intensityStats(x),
    };
    m.TotalIntensity = m.MeanIntensity * img.width * img.height;
    return m;
  },
};

function slopeOf(w: { data: Float32Array; width: number; height: number }): number {
  return powerLogLogSlope(w.data, w.height, w.width);
}
