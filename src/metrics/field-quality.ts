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
 * 696×520 channels), which would cut extraction throughput several-fold; a regular sample of 1/16 of the pixels keeps
 * the intensity and saturation percentages (unbiased estimates from 22 k pixels), FocusScore (the variance over pixels
 * does not depend on which pixels are sampled), and ranks blur alike (sampling folds high frequencies into the
 * low-frequency rings the slope is fitted on, but a blurred field loses them before sampling). Tile side and
 * correlation offset (20 px) are in sampled pixels, i.e. 80 field pixels.
 */
export const FIELD_STRIDE = 4;

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

/**
 * The measurer the crop pipeline's workers import: CellProfiler's measures of the sampled channel image, except
 * that the power spectrum (PowerLogLogSlope, most of the cost) is taken on the DNA channel only — focus is judged on
 * the nuclear channel, where the objects are — and NaN (an empty cell) elsewhere; TotalIntensity is the sampled
 * mean × the field's pixel count, so it estimates the whole field's total.
 */
export const fieldMeasurer: FieldMeasurer = {
  id: `cellprofiler-measureimagequality scale ${DEFAULT_QUALITY_SCALE}, every ${FIELD_STRIDE}th pixel, spectrum on DNA`,
  measures: IMAGE_QUALITY_MEASURES,
  measure(img: ImageData, o: { dna: boolean }): Record<string, number> {
    const s = toUnitScale(img, FIELD_STRIDE);
    const x = s.data;
    const m: ImageQuality = {
      FocusScore: focusScore(x),
      LocalFocusScore: localFocusScore(x, s.height, s.width),
      Correlation: haralickCorrelation(x, s.height, s.width, DEFAULT_QUALITY_SCALE),
      PowerLogLogSlope: o.dna ? powerLogLogSlope(x, s.height, s.width) : Number.NaN,
      ...saturation(x),
      ...intensityStats(x),
    };
    m.TotalIntensity = m.MeanIntensity * img.width * img.height;
    return m;
  },
};
