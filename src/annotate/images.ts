/**
 * The pictures the annotation page shows: one crop with its channels side by side (the page composes them, so it can
 * toggle channels and set the contrast without asking again), and the crop's place in its field — the field image
 * downscaled with the crop's square drawn on it, or, when the store's source images cannot be read (moved, another
 * machine), the field's crops pasted at their positions (a neighbourhood built from the store alone).
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import sharp from 'sharp';
import { readImage } from '../data/io/image.js';
import { percentileRanges, toUint8 } from '../data/io/normalize.js';
import type { CropStore } from '../data/store/crop-store.js';

/**
 * Crop `index` as a grey PNG C·S wide and S high: channel c in columns [c·S, (c+1)·S), in store channel order.
 */
export async function cropStripPng(store: CropStore, index: number): Promise<Buffer> {
  const S = store.size;
  const C = store.channels.length;
  const crop = await store.readIndices([index]);
  const out = new Uint8Array(C * S * S);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < S; y++) out.set(crop.subarray(c * S * S + y * S, c * S * S + (y + 1) * S), y * C * S + c * S);
  return sharp(Buffer.from(out.buffer), { raw: { width: C * S, height: S, channels: 1 } })
    .png({ compressionLevel: 3 })
    .toBuffer();
}

/** A field view before the crop's box is drawn: RGB at `scale` (view px per field px). */
interface FieldView {
  rgb: Uint8Array;
  width: number;
  height: number;
  scale: number;
  /** `image`: the field's own files; `crops`: the store's crops of the field pasted at their centres. */
  source: 'image' | 'crops';
}

/** Store channel c → RGB weights: R, G, B for the first three (the store's order, as `data show`), then grey. */
function channelColour(c: number, C: number): [number, number, number] {
  if (C === 1) return [1, 1, 1];
  if (C === 2) return c === 0 ? [1, 0, 1] : [0, 1, 0];
  return c < 3 ? ([0, 1, 2].map((k) => (k === c ? 1 : 0)) as [number, number, number]) : [0.5, 0.5, 0.5];
}

/**
 * Field views, cached per field (the last `max` fields), so paging through one field's crops reads its files once.
 */
export class FieldViews {
  private readonly cache = new Map<string, Promise<FieldView>>();
  constructor(
    private readonly store: CropStore,
    private readonly width = 360,
    private readonly max = 16,
  ) {}

  /** PNG of crop `index`'s field with the crop's square outlined in yellow; the header says which source drew it. */
  async png(index: number): Promise<{ png: Buffer; source: 'image' | 'crops' }> {
    const m = this.store.meta[index];
    let p = this.cache.get(m.field_id);
    if (!p) {
      p = this.render(m.field_id).catch(() => this.fromCrops(m.field_id));
      this.cache.set(m.field_id, p);
      if (this.cache.size > this.max) this.cache.delete(this.cache.keys().next().value as string);
    }
    const v = await p;
    const rgb = Uint8Array.from(v.rgb);
    const half = (this.store.size / 2) * v.scale;
    const x0 = Math.round(m.x * v.scale - half);
    const y0 = Math.round(m.y * v.scale - half);
    const x1 = Math.round(m.x * v.scale + half);
    const y1 = Math.round(m.y * v.scale + half);
    const dot = (x: number, y: number) => {
      if (x < 0 || y < 0 || x >= v.width || y >= v.height) return;
      const o = (y * v.width + x) * 3;
      rgb[o] = 255;
      rgb[o + 1] = 230;
      rgb[o + 2] = 0;
    };
    for (let t = 0; t < 2; t++) {
      for (let x = x0; x <= x1; x++) {
        dot(x, y0 + t);
        dot(x, y1 - t);
      }
      for (let y = y0; y <= y1; y++) {
        dot(x0 + t, y);
        dot(x1 - t, y);
      }
    }
    const png = await sharp(Buffer.from(rgb.buffer), { raw: { width: v.width, height: v.height, channels: 3 } })
      .png({ compressionLevel: 3 })
      .toBuffer();
    return { png, source: v.source };
  }

  /** The field's channel files (paths from crops.csv, relative to the store's source root), percentile-stretched. */
  private async render(fieldId: string): Promise<FieldView> {
    const m = this.store.meta.find((r) => r.field_id === fieldId);
    const files = (m?.source_files ?? '').split(';').filter(Boolean);
    if (files.length === 0) throw new Error('no source files');
    const root = this.store.info.source_root;
    const paths = files.map((f) => (isAbsolute(f) ? f : join(root, f)));
    if (!paths.every((p) => existsSync(p))) throw new Error('source files missing');
    const C = paths.length;
    let W = 0;
    let H = 0;
    let acc: Float32Array | undefined;
    for (let c = 0; c < C; c++) {
      const img = await readImage(paths[c]);
      if (!acc) {
        W = img.width;
        H = img.height;
        acc = new Float32Array(W * H * 3);
      } else if (img.width !== W || img.height !== H) throw new Error('channel sizes differ');
      const grey = toUint8(img, 0, percentileRanges(img, 0.1, 99.9)[0]);
      const [r, g, b] = channelColour(c, C);
      for (let i = 0; i < W * H; i++) {
        acc[i * 3] += r * grey[i];
        acc[i * 3 + 1] += g * grey[i];
        acc[i * 3 + 2] += b * grey[i];
      }
    }
    const full = new Uint8Array(W * H * 3);
    for (let i = 0; i < full.length; i++) full[i] = Math.min(255, (acc as Float32Array)[i]);
    return this.downscale(full, W, H, 'image');
  }

  /** The field's crops pasted at their centres on black (later crops over earlier ones). */
  private async fromCrops(fieldId: string): Promise<FieldView> {
    const S = this.store.size;
    const C = this.store.channels.length;
    const rows = this.store.meta.filter((r) => r.field_id === fieldId);
    const W = Math.max(S, ...rows.map((r) => r.x + S / 2));
    const H = Math.max(S, ...rows.map((r) => r.y + S / 2));
    const full = new Uint8Array(W * H * 3);
    const crops = await this.store.readIndices(rows.map((r) => r.index));
    rows.forEach((r, k) => {
      for (let c = 0; c < C; c++) {
        const [cr, cg, cb] = channelColour(c, C);
        for (let y = 0; y < S; y++) {
          const fy = r.y - S / 2 + y;
          if (fy < 0 || fy >= H) continue;
          for (let x = 0; x < S; x++) {
            const fx = r.x - S / 2 + x;
            if (fx < 0 || fx >= W) continue;
            const v = crops[(k * C + c) * S * S + y * S + x];
            const o = (fy * W + fx) * 3;
            if (c === 0) full[o] = full[o + 1] = full[o + 2] = 0;
            full[o] = Math.min(255, full[o] + cr * v);
            full[o + 1] = Math.min(255, full[o + 1] + cg * v);
            full[o + 2] = Math.min(255, full[o + 2] + cb * v);
          }
        }
      }
    });
    return this.downscale(full, W, H, 'crops');
  }

  private async downscale(full: Uint8Array, W: number, H: number, source: 'image' | 'crops'): Promise<FieldView> {
    const width = Math.min(this.width, W);
    const scale = width / W;
    const height = Math.max(1, Math.round(H * scale));
    const { data } = await sharp(Buffer.from(full.buffer), { raw: { width: W, height: H, channels: 3 } })
      .resize(width, height, { fit: 'fill' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { rgb: new Uint8Array(data), width, height, scale, source };
  }
}
