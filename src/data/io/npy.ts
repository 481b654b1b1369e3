import { QcbError } from '../../errors.js';
import type { ImageData } from '../types.js';

/**
 * NumPy `.npy` (format 1.0–3.0) for images: dtypes uint8 / uint16 / float32 (either byte order), C order, shapes
 * H×W (one channel) or H×W×C (interleaved channels, C ≤ 16).
 */

/** True when the bytes start with the NPY magic `\x93NUMPY`. */
export function isNpy(b: Uint8Array): boolean {
  return b.length >= 6 && b[0] === 0x93 && String.fromCharCode(b[1], b[2], b[3], b[4], b[5]) === 'NUMPY';
}

/** Decodes an image from `.npy` bytes; `file` names the source in errors. */
export function decodeNpy(b: Uint8Array, file: string): ImageData {
  const bad = (what: string, code: 'QCB_FILE_TRUNCATED' | 'QCB_FILE_FORMAT' = 'QCB_FILE_TRUNCATED') =>
    new QcbError(
      code,
      `NPY file ${code === 'QCB_FILE_FORMAT' ? 'is not supported' : 'is truncated or corrupt'}: ${what}`,
      {
        file,
        allowed: 'uint8, uint16 or float32 arrays in C order, shape H×W or H×W×C',
        fix:
          code === 'QCB_FILE_FORMAT'
            ? "save with numpy as np.save(path, np.ascontiguousarray(img.astype('uint16')))"
            : 'write the file again (np.save)',
      },
    );
  if (b.length < 10) throw bad('header shorter than 10 bytes');
  const major = b[6];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > b.length) throw bad(`header of ${hlen} bytes runs past the end`);
  const header = Buffer.from(b.buffer, b.byteOffset + hstart, hlen).toString('latin1');
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw bad(`header not understood: ${header.trim()}`);
  if (fortran === 'True') throw bad('array is in Fortran order', 'QCB_FILE_FORMAT');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (
    shape.length < 2 ||
    shape.length > 3 ||
    shape.some((v) => !Number.isInteger(v) || v <= 0) ||
    (shape[2] ?? 1) > 16
  ) {
    throw bad(`shape (${shapeText}) is not an image`, 'QCB_FILE_FORMAT');
  }
  const [height, width, channels = 1] = shape;
  const n = height * width * channels;
  const order = descr[0];
  const kind = descr.slice(1);
  const bytes = kind === 'u1' ? 1 : kind === 'u2' ? 2 : kind === 'f4' ? 4 : 0;
  if (bytes === 0) throw bad(`dtype ${descr}`, 'QCB_FILE_FORMAT');
  const start = hstart + hlen;
  if (start + n * bytes > b.length) throw bad(`data holds ${b.length - start} of ${n * bytes} bytes`);
  const raw = new Uint8Array(n * bytes); // a copy: aligned, and independent of the (possibly pooled) file buffer
  raw.set(b.subarray(start, start + n * bytes));
  const bigEndian = order === '>' && bytes > 1;
  if (bigEndian) {
    for (let i = 0; i < raw.length; i += bytes) raw.subarray(i, i + bytes).reverse();
  }
  if (bytes === 1) return { width, height, channels, bitDepth: 8, data: raw };
  if (bytes === 2) return { width, height, channels, bitDepth: 16, data: new Uint16Array(raw.buffer, 0, n) };
  return { width, height, channels, bitDepth: 32, data: new Float32Array(raw.buffer, 0, n) };
}

/** Encodes an image as `.npy` bytes (little-endian), the inverse of {@link decodeNpy}; used for tests and exports. */
export function encodeNpy(img: ImageData): Uint8Array {
  const descr = img.bitDepth === 8 ? '|u1' : img.bitDepth === 16 ? '<u2' : '<f4';
  const shape = img.channels === 1 ? `(${img.height}, ${img.width})` : `(${img.height}, ${img.width}, ${img.channels})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const data = new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(data, 10 + header.length);
  return out;
}
