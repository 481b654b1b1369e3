/**
 * The intensity windows a QC model was trained with, and what `qc apply` does when a store's differ.
 *
 * Crops are stored as uint8 after an intensity window per channel (src/data/crops.ts `Normalisation`): by default one
 * window per plate, estimated from a sample of the plate's fields. A model trained on crops cut under one window sees
 * another screen's crops through that screen's window, so the same raw intensity can arrive as a different uint8
 * value. `qc train` records the training store's normalisation (mode and windows) in the sidecar; `qc apply` compares
 * the scored store's windows with the model's and warns when they differ by more than {@link WINDOW_TOLERANCE}, and
 * with `--use-model-window` maps the stored values into the model's window before scoring ({@link rewindowLut}).
 *
 * The model's window per channel is the median over its training plates of each window end (for a one-plate training
 * store: that plate's window). Mapping is linear per plate and channel; values the store clipped at 0 or 255 stay at
 * the model window's edge (they cannot be recovered), and values outside the model's window are clipped to 0…255.
 */
import { type IntensityRange, medianWindow, rewindowLut } from '../data/io/normalize.js';
import type { CropStoreInfo } from '../data/store/crop-store.js';
import type { CropMeta } from '../data/types.js';
import { QcbError } from '../errors.js';
import type { Logger } from '../util/log.js';

/**
 * Relative difference between two windows above which `qc apply` warns: max(|Δmin|, |Δmax|) / (model max − model
 * min). 0.1 = one tenth of the model's window, about 25 of the 255 uint8 steps at the window's ends.
 */
export const WINDOW_TOLERANCE = 0.1;

/** A store's normalisation as a QC model's sidecar records it. */
export interface RecordedNormalisation {
  /** `plate` (windows per plate), `field` (per-field percentiles, no window), `fixed`, or `unknown` (older stores). */
  mode: 'plate' | 'field' | 'fixed' | 'unknown';
  /** Percentiles of a plate or field window. */
  lo?: number;
  hi?: number;
  /** Plate → channel → window (`plate`), or `*` → channel → window (`fixed`). */
  windows?: Record<string, Record<string, IntensityRange>>;
}

/** What a crop store's qcbench.json says about its normalisation (see {@link RecordedNormalisation}). */
export function recordedNormalisation(info: Pick<CropStoreInfo, 'normalisation'>): RecordedNormalisation {
  const n = info.normalisation as {
    kind?: string;
    lo?: number;
    hi?: number;
    windows?: Record<string, Record<string, IntensityRange>>;
    ranges?: Record<string, IntensityRange>;
  };
  if (n?.kind === 'plate' && n.windows) return { mode: 'plate', lo: n.lo, hi: n.hi, windows: n.windows };
  if (n?.kind === 'percentile') return { mode: 'field', lo: n.lo, hi: n.hi };
  if (n?.kind === 'fixed' && n.ranges) return { mode: 'fixed', windows: { '*': n.ranges } };
  return { mode: 'unknown' };
}

/** One window per channel: the median over plates of each end (undefined when nothing was recorded). */
export function channelWindows(n: RecordedNormalisation | undefined): Record<string, IntensityRange> | undefined {
  const plates = Object.values(n?.windows ?? {});
  if (!plates.length) return undefined;
  const channels = Object.keys(plates[0]);
  return Object.fromEntries(channels.map((c) => [c, medianWindow(plates.map((p) => p[c]).filter(Boolean))]));
}

/** max(|Δmin|, |Δmax|) / span of `model` (∞ when the model's window is empty). */
export function windowDifference(store: IntensityRange, model: IntensityRange): number {
  const span = model.max - model.min;
  const d = Math.max(Math.abs(store.min - model.min), Math.abs(store.max - model.max));
  return span > 0 ? d / span : d === 0 ? 0 : Number.POSITIVE_INFINITY;
}

/**
 * Compares a store's windows with a model's: one warning per plate and channel whose window differs by more than
 * `tolerance` (relative, see {@link windowDifference}), and one when either records no window (a store made before
 * plate windows, or per-field percentiles) — scoring still goes ahead.
 */
export function compareWindows(
  model: RecordedNormalisation | undefined,
  store: RecordedNormalisation,
  tolerance = WINDOW_TOLERANCE,
): string[] {
  const mw = channelWindows(model);
  const sw = store.windows;
  if (!model || model.mode === 'unknown')
    return ['the model records no intensity window (trained before windows were recorded): cannot compare'];
  if (!sw)
    return [
      store.mode === 'field'
        ? `the store was normalised per field (no window recorded); the model was trained on ${model.mode} windows`
        : 'the store records no intensity window (made before windows were recorded); recut it with `qcbench data crops` to compare',
    ];
  if (!mw) return [`the model was trained on a store normalised per ${model.mode} (no window recorded)`];
  const out: string[] = [];
  for (const [plate, chans] of Object.entries(sw)) {
    for (const [c, w] of Object.entries(chans)) {
      const m = mw[c];
      if (!m) continue;
      const d = windowDifference(w, m);
      if (d > tolerance)
        out.push(
          `plate ${plate}, channel ${c}: window ${fmt(w)} differs from the model's ${fmt(m)} by ${(100 * d).toFixed(0)}% of its span`,
        );
    }
  }
  return out;
}

function fmt(w: IntensityRange): string {
  return `[${+w.min.toPrecision(6)}, ${+w.max.toPrecision(6)}]`;
}

/**
 * The re-windowing `qc apply --use-model-window` applies to each batch of stored crops before scoring: every crop's
 * channel c is passed through the lookup table from its plate's stored window to the model's window of c
 * ({@link rewindowLut}), in place. `channels` are the store's channel names in array order (C), crops n×C×S×S.
 * @throws QcbError QCB_STORE when the store or the model records no window to map between (naming the fix)
 */
export function modelWindowRemap(
  model: RecordedNormalisation | undefined,
  store: RecordedNormalisation,
  channels: string[],
  storePath: string,
): (crops: Uint8Array, meta: readonly CropMeta[]) => void {
  const mw = channelWindows(model);
  if (!mw)
    throw new QcbError('QCB_STORE', '--use-model-window: the model records no intensity window to map to', {
      key: '--use-model-window',
      fix: 'retrain the model with this qcbench on a store cut with --normalise plate, or score without the flag',
    });
  if (!store.windows)
    throw new QcbError('QCB_STORE', '--use-model-window: the store records no intensity window to map from', {
      file: storePath,
      key: '--use-model-window',
      fix: 'recut the store with `qcbench data crops --normalise plate` (the default), or score without the flag',
    });
  const luts = new Map<string, (Uint8Array | undefined)[]>();
  const lutsOf = (plate: string) => {
    let l = luts.get(plate);
    if (!l) {
      const w = store.windows![plate] ?? store.windows!['*'];
      l = channels.map((c) => (w?.[c] && mw[c] ? rewindowLut(w[c], mw[c]) : undefined));
      luts.set(plate, l);
    }
    return l;
  };
  const C = channels.length;
  return (crops, meta) => {
    const per = crops.length / Math.max(1, meta.length);
    const plane = per / C;
    meta.forEach((m, j) => {
      const l = lutsOf(m.plate);
      for (let c = 0; c < C; c++) {
        const lut = l[c];
        if (!lut) continue;
        const o = j * per + c * plane;
        for (let i = o; i < o + plane; i++) crops[i] = lut[crops[i]];
      }
    });
  };
}

/**
 * What `qc apply` does about windows before scoring: logs {@link compareWindows}' warnings, and with
 * `useModelWindow` returns the in-place re-windowing of a batch (undefined otherwise).
 */
export function prepareWindows(
  model: RecordedNormalisation | undefined,
  storeInfo: Pick<CropStoreInfo, 'normalisation' | 'channels'>,
  storePath: string,
  opts: { useModelWindow?: boolean; log?: Logger } = {},
): ((crops: Uint8Array, meta: readonly CropMeta[]) => void) | undefined {
  const store = recordedNormalisation(storeInfo);
  const warnings = compareWindows(model, store);
  for (const w of warnings.slice(0, 8))
    opts.log?.warn(`intensity window: ${w}`, {
      fix: opts.useModelWindow ? undefined : 'pass --use-model-window to map the store to the model window',
    });
  if (warnings.length > 8) opts.log?.warn(`intensity window: … ${warnings.length - 8} more plate/channel differences`);
  return opts.useModelWindow ? modelWindowRemap(model, store, storeInfo.channels, storePath) : undefined;
}
