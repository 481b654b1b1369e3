import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { QcbError } from '../../errors.js';
import type { ImageData } from '../types.js';
import { decodeNpy, isNpy } from './npy.js';
import { decodeTiff, isTiff } from './tiff.js';

/**
 * Image reading with the format sniffed from magic bytes, never the extension (BBBC006 ships TIFFs named `.png`).
 * TIFF: our own exact decoder for strip TIFFs (uncompressed / LZW / deflate / PackBits), sharp for the rest; PNG 8/16
 * bit via sharp; NPY via our parser. 16-bit data stay 16-bit (exact values).
 */

export type ImageFormat = 'tiff' | 'png' | 'npy' | 'jpeg' | 'unknown';

/** The format of a file from its first bytes. */
export function sniffFormat(b: Uint8Array): ImageFormat {
  if (isTiff(b)) return 'tiff';
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (isNpy(b)) return 'npy';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  return 'unknown';
}

/** Reads an image file (TIFF, PNG, NPY; JPEG accepted as 8-bit) into an {@link ImageData}. */
export async function readImage(path: string): Promise<ImageData> {
  let b: Buffer;
  try {
    b = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new QcbError('QCB_FILE_NOT_FOUND', `cannot read image: ${code ?? (e as Error).message}`, {
      file: path,
      fix: 'check the path (image paths in tables are resolved against --root)',
      cause: e,
    });
  }
  return decodeImage(b, path);
}

/** Decodes image bytes (see {@link readImage}); `file` names the source in errors. */
export async function decodeImage(b: Uint8Array, file: string): Promise<ImageData> {
  const fmt = sniffFormat(b);
  if (fmt === 'tiff') {
    const img = decodeTiff(b, file);
    if (img) return img;
    return decodeWithSharp(b, file, fmt);
  }
  if (fmt === 'npy') return decodeNpy(b, file);
  if (fmt === 'png' || fmt === 'jpeg') return decodeWithSharp(b, file, fmt);
  const head = Array.from(b.subarray(0, 8), (v) => v.toString(16).padStart(2, '0')).join(' ');
  throw new QcbError('QCB_FILE_FORMAT', 'unknown image format (not TIFF, PNG or NPY by its first bytes)', {
    file,
    value: head,
    allowed: 'TIFF (II*/MM*), PNG, NPY',
    fix: 'convert the images to 16-bit TIFF or PNG; the extension is ignored, only the content counts',
  });
}

async function decodeWithSharp(b: Uint8Array, file: string, fmt: ImageFormat): Promise<ImageData> {
  try {
    // 'truncated' still accepts benign warnings (MetaMorph's NUL byte in DateTime) but rejects cut-off data.
    const meta = await sharp(b, { failOn: 'truncated' }).metadata();
    const deep = meta.depth === 'ushort' || meta.depth === 'short';
    const float = meta.depth === 'float' || meta.depth === 'double';
    const inCh = meta.channels ?? 1;
    const hasAlpha = Boolean(meta.hasAlpha);
    const colour = inCh - (hasAlpha ? 1 : 0) >= 3;
    let pipe = sharp(b, { failOn: 'truncated' });
    if (deep) pipe = pipe.toColourspace(colour ? 'rgb16' : 'grey16');
    else if (!float) pipe = pipe.toColourspace(colour ? 'srgb' : 'b-w');
    const { data, info } = await pipe
      .raw(deep ? { depth: 'ushort' } : float ? { depth: 'float' } : {})
      .toBuffer({ resolveWithObject: true });
    const copy = new Uint8Array(data.length); // own, aligned buffer
    copy.set(data);
    const channels = info.channels;
    if (deep)
      return { width: info.width, height: info.height, channels, bitDepth: 16, data: new Uint16Array(copy.buffer) };
    if (float)
      return { width: info.width, height: info.height, channels, bitDepth: 32, data: new Float32Array(copy.buffer) };
    return { width: info.width, height: info.height, channels, bitDepth: 8, data: copy };
  } catch (e) {
    if (e instanceof QcbError) throw e;
    throw new QcbError(
      'QCB_FILE_TRUNCATED',
      `${fmt.toUpperCase()} file is truncated or corrupt: ${(e as Error).message}`,
      {
        file,
        fix: 'copy or download the file again; in non-strict extraction the field is skipped and listed in skipped.csv',
        cause: e,
      },
    );
  }
}

/** Channel `c` of an interleaved image as a new single-channel array of the same type. */
export function extractChannel(img: ImageData, c: number): ImageData {
  if (img.channels === 1) return img;
  const n = img.width * img.height;
  const Ctor = img.data.constructor as new (n: number) => Uint8Array | Uint16Array | Float32Array;
  const out = new Ctor(n);
  for (let i = 0, j = c; i < n; i++, j += img.channels) out[i] = img.data[j];
  return { width: img.width, height: img.height, channels: 1, bitDepth: img.bitDepth, data: out };
}
