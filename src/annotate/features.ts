/**
 * The features proposals are made from: `intensity` (no model, see intensity.ts) or any encoder a protocol may name
 * (by name or ONNX path), run frozen over every crop of the store in blocks, so memory stays at one block of crops.
 */
import type { CropStore } from '../data/store/crop-store.js';
import { chooseChannels, extractFeatures, type Features, pickChannels } from '../encoders/features.js';
import { resolveEncoder } from '../runner/catalog.js';
import type { Logger } from '../util/log.js';
import { intensityFeatures } from './intensity.js';

/** The default proposal features: cheap, model-free image-quality measurements. */
export const INTENSITY = 'intensity';

const BLOCK = 1024;

/**
 * N×D features of every crop of the store (row i = crop index i).
 * @param suggest `intensity`, or an encoder name or ONNX path (resolved as a protocol's `encoders:` entry)
 * @throws QCB_UNKNOWN_NAME / QCB_FILE_NOT_FOUND for an unknown encoder, QCB_STORE when its channels do not fit
 */
export async function storeFeatures(store: CropStore, suggest: string, log?: Logger): Promise<Features> {
  const n = store.count;
  const C = store.channels.length;
  const S = store.size;
  let run: (crops: Uint8Array, m: number) => Promise<Features>;
  if (suggest === INTENSITY) run = async (crops, m) => intensityFeatures({ data: crops, n: m, channels: C, size: S });
  else {
    const enc = resolveEncoder(suggest);
    const idx = chooseChannels(store.channels);
    const rgb = idx.length === 1 ? [idx[0], idx[0], idx[0]] : idx;
    const eg = await enc.load({ cropSize: S, seed: 0, log });
    const pre = eg.preprocess ?? enc.preprocess;
    run = (crops, m) => extractFeatures(eg, pre, pickChannels(crops, m, C, S, rgb));
  }
  const prog = log?.startProgress(`features (${suggest})`, n, 'crops');
  let out: Float32Array | undefined;
  let D = 0;
  for (let s = 0; s < n; s += BLOCK) {
    const e = Math.min(n, s + BLOCK);
    const f = await run(await store.read(s, e), e - s);
    if (!out) {
      D = f.cols;
      out = new Float32Array(n * D);
    }
    out.set(f.data, s * D);
    prog?.tick(e - s);
  }
  prog?.finish();
  return { data: out ?? new Float32Array(0), rows: n, cols: D };
}
