/**
 * Crop montages for people to look at: `qcbench data show`, the misclassified crops of a benchmark cell and the
 * highest-scoring crops of a well in `qc apply` all draw their grids here.
 */
import sharp from 'sharp';

/** Composes crops (n×C×S×S uint8) into an RGB grid with 2-px gaps; returns raw RGB and its size. */
export function montage(
  crops: Uint8Array,
  n: number,
  C: number,
  S: number,
  cols: number,
): { rgb: Uint8Array; width: number; height: number } {
  const gap = 2;
  const rows = Math.max(1, Math.ceil(n / cols));
  const width = cols * S + (cols + 1) * gap;
  const height = rows * S + (rows + 1) * gap;
  const rgb = new Uint8Array(width * height * 3).fill(48); // dark grey gaps, distinct from black background
  const plane = S * S;
  for (let k = 0; k < n; k++) {
    const ox = gap + (k % cols) * (S + gap);
    const oy = gap + Math.floor(k / cols) * (S + gap);
    const base = k * C * plane;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const p = base + y * S + x;
        let r: number;
        let g: number;
        let b: number;
        if (C >= 3) {
          r = crops[p];
          g = crops[p + plane];
          b = crops[p + 2 * plane];
        } else if (C === 2) {
          r = crops[p];
          g = crops[p + plane];
          b = crops[p];
        } else r = g = b = crops[p];
        const o = ((oy + y) * width + ox + x) * 3;
        rgb[o] = r;
        rgb[o + 1] = g;
        rgb[o + 2] = b;
      }
    }
  }
  return { rgb, width, height };
}

/**
 * The montage of `montage()` encoded as PNG (sharp's default compression, level 6).
 * @param crops n×C×S×S uint8, channel order as in the store
 */
export async function montagePng(crops: Uint8Array, n: number, C: number, S: number, cols: number): Promise<Buffer> {
  const m = montage(crops, n, C, S, cols);
  return sharp(Buffer.from(m.rgb.buffer, m.rgb.byteOffset, m.rgb.length), {
    raw: { width: m.width, height: m.height, channels: 3 },
  })
    .png()
    .toBuffer();
}
