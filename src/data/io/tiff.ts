import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { QcbError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';

/**
 * Baseline TIFF: a writer for 16-bit grayscale fields (what the synthetic screen and benchmarks write) and our own
 * decoder for strip-organised grayscale/multi-sample TIFFs (uncompressed, LZW, deflate, PackBits; horizontal
 * predictor). Our decoder is exact by construction, needs no native code, and is faster than a sharp round trip for
 * the uncompressed MetaMorph/IXM files that dominate HCS data. Anything it does not handle (tiles, JPEG, float
 * predictor, planar multi-sample) returns `undefined` so the caller can fall back to sharp.
 */

/** Decoded TIFF page: interleaved samples, row-major (H×W×C). */
export interface TiffImage {
  width: number;
  height: number;
  channels: number;
  bitDepth: 8 | 16 | 32;
  data: Uint8Array | Uint16Array | Float32Array;
}

/**
 * Writes a single-page, uncompressed, little-endian 16-bit grayscale TIFF (one strip). `data` is H×W row-major.
 * Written atomically (temp file + rename) so a killed generator never leaves half a field behind.
 */
export function writeTiff16(path: string, width: number, height: number, data: Uint16Array): void {
  writeFileAtomic(path, encodeTiff16(width, height, data));
}

/** The bytes of an uncompressed 16-bit grayscale TIFF (see {@link writeTiff16}). */
export function encodeTiff16(width: number, height: number, data: Uint16Array): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new QcbError('QCB_IMAGE_SIZE', `cannot write a ${width}×${height} TIFF`, {
      value: { width, height },
      allowed: 'positive integer width and height',
      fix: 'pass the image size in pixels',
    });
  }
  if (data.length !== width * height) {
    throw new QcbError('QCB_IMAGE_SIZE', `TIFF data has ${data.length} pixels, expected ${width}×${height}`, {
      value: data.length,
      allowed: String(width * height),
      fix: 'pass a Uint16Array of width×height values (row-major)',
    });
  }
  const nTags = 10;
  const ifdOffset = 8;
  const ifdSize = 2 + nTags * 12 + 4;
  const extraOffset = ifdOffset + ifdSize; // XResolution/YResolution rationals
  const dataOffset = extraOffset + 16;
  const byteCount = width * height * 2;
  const buf = Buffer.alloc(dataOffset + byteCount);
  buf.write('II', 0, 'latin1');
  buf.writeUInt16LE(42, 2);
  buf.writeUInt32LE(ifdOffset, 4);
  let p = ifdOffset;
  buf.writeUInt16LE(nTags, p);
  p += 2;
  const tag = (id: number, type: number, count: number, value: number) => {
    buf.writeUInt16LE(id, p);
    buf.writeUInt16LE(type, p + 2);
    buf.writeUInt32LE(count, p + 4);
    if (type === 3 && count === 1) buf.writeUInt16LE(value, p + 8);
    else buf.writeUInt32LE(value, p + 8);
    p += 12;
  };
  // Tags must be in ascending order.
  tag(256, 4, 1, width); // ImageWidth
  tag(257, 4, 1, height); // ImageLength
  tag(258, 3, 1, 16); // BitsPerSample
  tag(259, 3, 1, 1); // Compression: none
  tag(262, 3, 1, 1); // Photometric: BlackIsZero
  tag(273, 4, 1, dataOffset); // StripOffsets
  tag(277, 3, 1, 1); // SamplesPerPixel
  tag(278, 4, 1, height); // RowsPerStrip
  tag(279, 4, 1, byteCount); // StripByteCounts
  tag(296, 3, 1, 1); // ResolutionUnit: none
  buf.writeUInt32LE(0, p); // no next IFD
  buf.writeUInt32LE(1, extraOffset);
  buf.writeUInt32LE(1, extraOffset + 4);
  buf.writeUInt32LE(1, extraOffset + 8);
  buf.writeUInt32LE(1, extraOffset + 12);
  // Pixel data: on a little-endian host a straight byte copy is the LE encoding.
  const src = new Uint8Array(data.buffer, data.byteOffset, byteCount);
  if (isLittleEndianHost) buf.set(src, dataOffset);
  else for (let i = 0; i < data.length; i++) buf.writeUInt16LE(data[i], dataOffset + 2 * i);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

const isLittleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** True when the bytes start with a TIFF header (`II*\0` or `MM\0*`). */
export function isTiff(b: Uint8Array): boolean {
  return (
    b.length >= 4 &&
    ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 42 && b[3] === 0) ||
      (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && b[3] === 42))
  );
}

function truncated(file: string, what: string): QcbError {
  return new QcbError('QCB_FILE_TRUNCATED', `TIFF file is truncated or corrupt: ${what}`, {
    file,
    fix: 'copy or download the file again; in non-strict extraction the field is skipped and listed in skipped.csv',
  });
}

interface Ifd {
  get(tag: number): number[] | undefined;
}

/** Parses the first IFD (tags with numeric values only; ASCII tags such as a NUL-riddled DateTime are skipped). */
function parseIfd(b: Uint8Array, file: string): { ifd: Ifd; le: boolean } {
  if (b.length < 8) throw truncated(file, 'header shorter than 8 bytes');
  const le = b[0] === 0x49;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const u16 = (o: number) => dv.getUint16(o, le);
  const u32 = (o: number) => dv.getUint32(o, le);
  const off = u32(4);
  if (off + 2 > b.length) throw truncated(file, `first IFD at byte ${off} is past the end (${b.length} bytes)`);
  const n = u16(off);
  if (off + 2 + n * 12 > b.length) throw truncated(file, `IFD with ${n} entries runs past the end of the file`);
  const tags = new Map<number, number[]>();
  const typeSize: Record<number, number> = { 1: 1, 3: 2, 4: 4, 16: 8 };
  for (let i = 0; i < n; i++) {
    const e = off + 2 + i * 12;
    const id = u16(e);
    const type = u16(e + 2);
    const count = u32(e + 4);
    const size = typeSize[type];
    if (size === undefined || size === 8) continue; // ASCII, rational, … are not needed to decode pixels
    const total = size * count;
    const vo = total <= 4 ? e + 8 : u32(e + 8);
    if (vo + total > b.length) {
      // A corrupt pointer in an unneeded tag is harmless; in a needed one decodeTiff reports it below.
      continue;
    }
    const vals = new Array<number>(count);
    for (let k = 0; k < count; k++) {
      vals[k] = size === 1 ? b[vo + k] : size === 2 ? u16(vo + 2 * k) : u32(vo + 4 * k);
    }
    tags.set(id, vals);
  }
  return { ifd: { get: (t) => tags.get(t) }, le };
}

/** TIFF LZW decoder (MSB-first codes, early change), as in TIFF 6.0 §13. */
function lzwDecode(src: Uint8Array, expected: number, file: string): Uint8Array {
  const out = new Uint8Array(expected);
  let op = 0;
  // Dictionary as (prefix code, last byte, length) so strings are rebuilt backwards without allocation.
  const prefix = new Int32Array(4096);
  const suffix = new Uint8Array(4096);
  const first = new Uint8Array(4096);
  const length = new Int32Array(4096);
  for (let i = 0; i < 256; i++) {
    prefix[i] = -1;
    suffix[i] = i;
    first[i] = i;
    length[i] = 1;
  }
  let next = 258;
  let width = 9;
  // Bit reader: MSB-first, refilled a byte at a time into a 32-bit accumulator.
  let acc = 0;
  let nbits = 0;
  let ip = 0;
  const n = src.length;
  let old = -1;
  for (;;) {
    while (nbits < width && ip < n) {
      acc = ((acc << 8) | src[ip++]) >>> 0;
      nbits += 8;
    }
    if (nbits < width) break; // out of data (no EOI): whatever was decoded is checked below
    const code = (acc >>> (nbits - width)) & ((1 << width) - 1);
    nbits -= width;
    acc &= (1 << nbits) - 1;
    if (code === 257) break;
    if (code === 256) {
      next = 258;
      width = 9;
      old = -1;
      continue;
    }
    let emitCode: number;
    if (old === -1) {
      if (code > 255) throw truncated(file, 'LZW stream starts with a non-literal code');
      emitCode = code;
    } else if (code < next) {
      emitCode = code;
      if (next < 4096) {
        prefix[next] = old;
        suffix[next] = first[code];
        first[next] = first[old];
        length[next] = length[old] + 1;
        next++;
      }
    } else if (code === next && next < 4096) {
      prefix[next] = old;
      suffix[next] = first[old];
      first[next] = first[old];
      length[next] = length[old] + 1;
      next++;
      emitCode = code;
    } else {
      throw truncated(file, `LZW code ${code} is beyond the dictionary (${next})`);
    }
    // Write the string of emitCode backwards (clipped: some encoders pad the last strip).
    const len = length[emitCode];
    let c = emitCode;
    for (let k = op + len - 1; k >= op; k--) {
      if (k < expected) out[k] = suffix[c];
      c = prefix[c];
    }
    op += len;
    old = code;
    if (next + 1 >= 1 << width && width < 12) width++;
    if (op >= expected) break;
  }
  if (op < expected) throw truncated(file, `LZW strip decoded to ${op} of ${expected} bytes`);
  return out;
}

/** PackBits (compression 32773). */
function packBitsDecode(src: Uint8Array, expected: number, file: string): Uint8Array {
  const out = new Uint8Array(expected);
  let i = 0;
  let o = 0;
  while (o < expected && i < src.length) {
    const n = (src[i++] << 24) >> 24;
    if (n >= 0) {
      const len = Math.min(n + 1, expected - o, src.length - i);
      out.set(src.subarray(i, i + len), o);
      i += n + 1;
      o += len;
    } else if (n !== -128) {
      const len = Math.min(1 - n, expected - o);
      out.fill(src[i++], o, o + len);
      o += len;
    }
  }
  if (o < expected) throw truncated(file, `PackBits strip decoded to ${o} of ${expected} bytes`);
  return out;
}

/**
 * Decodes the first page of a TIFF from bytes, or returns `undefined` for layouts we leave to sharp (tiles, JPEG,
 * planar multi-sample, float predictor, bit depths other than 8/16/32-float). Throws QCB_FILE_TRUNCATED when strips
 * run past the end of the file or do not decompress to the expected size.
 */
export function decodeTiff(b: Uint8Array, file: string): TiffImage | undefined {
  if (!isTiff(b)) return undefined;
  const { ifd, le } = parseIfd(b, file);
  const width = ifd.get(256)?.[0];
  const height = ifd.get(257)?.[0];
  if (width === undefined || height === undefined || width === 0 || height === 0) {
    throw truncated(file, 'no ImageWidth/ImageLength tag');
  }
  const spp = ifd.get(277)?.[0] ?? 1;
  const bpsList = ifd.get(258) ?? [1];
  const bps = bpsList[0];
  if (bpsList.some((v) => v !== bps)) return undefined;
  const compression = ifd.get(259)?.[0] ?? 1;
  const predictor = ifd.get(317)?.[0] ?? 1;
  const planar = ifd.get(284)?.[0] ?? 1;
  const sampleFormat = ifd.get(339)?.[0] ?? 1;
  const photometric = ifd.get(262)?.[0] ?? 1;
  if (ifd.get(322) !== undefined) return undefined; // tiled
  if (planar !== 1 && spp > 1) return undefined;
  if (![1, 5, 8, 32946, 32773].includes(compression)) return undefined;
  if (predictor !== 1 && predictor !== 2) return undefined;
  if (photometric === 3 || photometric > 2) return undefined; // palette / RGB-ish colour models beyond plain samples
  let bitDepth: 8 | 16 | 32;
  if (bps === 8 && sampleFormat === 1) bitDepth = 8;
  else if (bps === 16 && sampleFormat === 1) bitDepth = 16;
  else if (bps === 32 && sampleFormat === 3) bitDepth = 32;
  else return undefined;
  const offsets = ifd.get(273);
  const counts = ifd.get(279);
  if (!offsets || !counts || offsets.length !== counts.length) {
    throw truncated(file, 'StripOffsets/StripByteCounts missing or unreadable');
  }
  const rowsPerStrip = Math.min(ifd.get(278)?.[0] ?? height, height);
  const bytesPerSample = bps / 8;
  const rowBytes = width * spp * bytesPerSample;
  const total = rowBytes * height;
  const raw = new Uint8Array(total);
  let pos = 0;
  for (let s = 0; s < offsets.length && pos < total; s++) {
    const rows = Math.min(rowsPerStrip, height - s * rowsPerStrip);
    const expected = rows * rowBytes;
    const o = offsets[s];
    const c = counts[s];
    if (o + c > b.length) {
      throw truncated(file, `strip ${s} (bytes ${o}–${o + c}) runs past the end of the file (${b.length} bytes)`);
    }
    const src = b.subarray(o, o + c);
    let strip: Uint8Array;
    if (compression === 1) {
      if (c < expected) throw truncated(file, `strip ${s} has ${c} bytes, expected ${expected}`);
      strip = src.subarray(0, expected);
    } else if (compression === 5) strip = lzwDecode(src, expected, file);
    else if (compression === 32773) strip = packBitsDecode(src, expected, file);
    else {
      try {
        strip = inflateSync(src);
      } catch (e) {
        throw truncated(file, `deflate strip ${s} does not decompress (${(e as Error).message})`);
      }
      if (strip.length < expected) throw truncated(file, `deflate strip ${s} has ${strip.length} of ${expected} bytes`);
      strip = strip.subarray(0, expected);
    }
    raw.set(strip, pos);
    pos += expected;
  }
  if (pos < total) throw truncated(file, `strips hold ${pos} of ${total} bytes`);
  const n = width * height * spp;
  let data: Uint8Array | Uint16Array | Float32Array;
  if (bitDepth === 8) data = raw;
  else {
    const swap = le !== isLittleEndianHost;
    if (swap) {
      for (let i = 0; i < total; i += bytesPerSample) {
        for (let a = 0, z = bytesPerSample - 1; a < z; a++, z--) {
          const t = raw[i + a];
          raw[i + a] = raw[i + z];
          raw[i + z] = t;
        }
      }
    }
    data = bitDepth === 16 ? new Uint16Array(raw.buffer, 0, n) : new Float32Array(raw.buffer, 0, n);
  }
  if (predictor === 2) {
    if (bitDepth === 32) return undefined;
    const d = data as Uint8Array | Uint16Array; // wraps modulo 2^bits on assignment
    const stride = width * spp;
    for (let y = 0; y < height; y++) {
      const r = y * stride;
      for (let x = spp; x < stride; x++) d[r + x] = d[r + x] + d[r + x - spp];
    }
  }
  if (photometric === 0 && bitDepth !== 32) {
    // WhiteIsZero: invert so that larger always means brighter.
    const max = bitDepth === 8 ? 255 : 65535;
    const d = data as Uint8Array | Uint16Array;
    for (let i = 0; i < n; i++) d[i] = max - d[i];
  }
  return { width, height, channels: spp, bitDepth, data };
}

/** Reads and decodes a TIFF file with our own decoder (see {@link decodeTiff}). */
export function readTiffFile(path: string): TiffImage | undefined {
  return decodeTiff(readFileSync(path), path);
}
