/**
 * `cp-quality`: the incumbent as an encoder. Screening labs QC images today with CellProfiler's MeasureImageQuality
 * and a classifier on its measures (Bray & Carpenter 2018, "Quality control for high-throughput imaging
 * experiments using machine learning in CellProfiler"). Here each crop's features are every measure of
 * src/metrics/image-quality.ts (FocusScore, LocalFocusScore, Correlation, PowerLogLogSlope, PercentMaximal,
 * PercentMinimal, Total / Mean / Median / Std / MAD / Min / Max intensity, as CellProfiler defines them) for every
 * channel of the crop: C × 13 values, channel by channel. The measures live on unrelated scales (a percentage beside a
 * variance beside a slope), so a cell z-scores them with its training crops' means and sds (`standardise`) before kNN
 * or the linear head sees them. No weights, no pretraining, no network: fine-tuning does not apply (the runner reports
 * those cells as skipped, n/a). A QC model (`qcbench qc train --encoder cp-quality`) embeds the same measures as an
 * ONNX graph (./cp-quality-graph.ts) and the standardisation, so it scores a screen like every other QC model.
 */
import type { Features } from './features.js';
import { QcbError } from '../errors.js';
import { cpQualityGraph } from './cp-quality-graph.js';
import { DEFAULT_QUALITY_SCALE, IMAGE_QUALITY_MEASURES, imageQualityVector } from '../metrics/image-quality.js';
import { type Encoder, type EncoderGraph, type EncoderLoadOptions, handMadeEncoder } from './types.js';

/** Measures per channel. */
const M = IMAGE_QUALITY_MEASURES.length;

/** The spatial scale a protocol's `encoder_settings.cp-quality.scale` sets, else CellProfiler's default (20 px). */
function scaleOf(o: EncoderLoadOptions): number {
  const s = o.settings?.scale;
  if (s === undefined) return DEFAULT_QUALITY_SCALE;
  if (!(typeof s === 'number' && Number.isInteger(s) && s >= 1))
    throw new QcbError('QCB_USAGE', `cp-quality's spatial scale must be a positive integer, got ${JSON.stringify(s)}`, {
      key: 'encoder_settings.cp-quality.scale',
      value: s,
      allowed: 'an integer ≥ 1 (pixels)',
      fix: `leave it unset for CellProfiler's default (${DEFAULT_QUALITY_SCALE}) or give about twice the nucleus diameter`,
    });
  return s;
}

/**
 * The measures of every crop: crops N×C×S×S uint8 (scaled to [0, 1] as x/255, the intensities the crop store kept)
 * → N×(C·13) features, channel-major, measures in IMAGE_QUALITY_MEASURES order.
 */
export function cpQualityFeatures(
  crops: { data: Uint8Array; n: number; channels: number; size: number },
  scale = DEFAULT_QUALITY_SCALE,
): Features {
  const { n, channels: C, size: S } = crops;
  const D = C * M;
  const per = C * S * S;
  const out = new Float32Array(n * D);
  const img = new Float32Array(per);
  for (let i = 0; i < n; i++) {
    const src = crops.data.subarray(i * per, (i + 1) * per);
    for (let k = 0; k < per; k++) img[k] = src[k] / 255;
    imageQualityVector(img, C, S, S, out, i * D, { scale });
  }
  return { data: out, rows: n, cols: D };
}

/**
 * Loads nothing: the measures are computed from the crops (`compute`) and z-scored per cell (`standardise`); their
 * ONNX form (`graph`, built when first read) is what a QC model embeds.
 */
export async function loadCpQuality(o: EncoderLoadOptions): Promise<EncoderGraph> {
  const scale = scaleOf(o);
  return handMadeEncoder('cp-quality', {
    // nominal: a 3-channel crop, as the network gives it (the computed features' width follows the crops' channels)
    dim: 3 * M,
    compute: (crops) => cpQualityFeatures(crops, scale),
    // the QC model's form: three input channels (a grey store replicated), like every encoder the QC model embeds
    network: () => cpQualityGraph(o.cropSize, scale),
    standardise: true,
    source: {
      encoder: 'cp-quality',
      definition: 'CellProfiler MeasureImageQuality (measureimagequality.py, centrosome haralick / rps)',
      measures: [...IMAGE_QUALITY_MEASURES],
      scale,
    },
  });
}

/** CellProfiler's image-quality measures per channel, standardised on the training crops: kNN / linear only. */
export const CP_QUALITY: Encoder = {
  name: 'cp-quality',
  label: 'CellProfiler image quality (hand-made)',
  kind: 'handcrafted',
  dim: 3 * M,
  // the measures see intensities in [0, 1]; no normalisation is applied
  preprocess: { mean: [0, 0, 0], std: [1, 1, 1] },
  description: 'hand-made QC metrics (CellProfiler MeasureImageQuality), standardised, kNN / linear',
  settings: {
    scale: {
      kind: 'int',
      min: 1,
      doc: `spatial scale of LocalFocusScore and Correlation, pixels; default ${DEFAULT_QUALITY_SCALE} (CellProfiler's)`,
    },
  },
  load: loadCpQuality,
};
