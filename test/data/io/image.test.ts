import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { decodeImage, readImage, sniffFormat } from '../../../src/data/io/image.js';
import { normalizePercentile, percentileRanges } from '../../../src/data/io/normalize.js';
import { decodeNpy, encodeNpy } from '../../../src/data/io/npy.js';
import { decodeTiff, encodeTiff16, writeTiff16 } from '../../../src/data/io/tiff.js';
import { QcbError } from '../../../src/errors.js';

const FIX = fileURLToPath(new URL('../../../../shared/fixtures/bbbc/', import.meta.url));
const FIXTURES = [
  'bbbc022/IXMtest_A01_s1_w164FBEEF7-F77C-4892-86F5-72D0160D4FB2.tif',
  'bbbc022/IXMtest_E05_s6_w1A1A21FBC-5638-47D7-8E40-41FDFA080C60.tif',
  'bbbc006/00_mcf-z-stacks-03212011_k06_s2_w12667264a-6432-4f7e-bf58-625a1319a1c9.tif',
  'bbbc006/BBBC006_z_aligned__a01__s1__w1_10.png',
];
const tmp = mkdtempSync(join(tmpdir(), 'qcb-io-'));

async function sharp16(b: Uint8Array): Promise<Uint16Array> {
  const { data } = await sharp(b, { failOn: 'none' })
    .toColourspace('grey16')
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
  return new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
}

function ramp(w: number, h: number): Uint16Array {
  const d = new Uint16Array(w * h);
  for (let i = 0; i < d.length; i++) d[i] = ((i * 7919) % 4096) + (i % w) * 3 + (i === 5 ? 65535 - 4096 : 0);
  return d;
}

async function expectCode(p: Promise<unknown>, code: string, file?: string): Promise<QcbError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof QcbError, `expected QcbError, got ${e}`);
    assert.equal(e.code, code);
    if (file) assert.equal(e.context.file, file);
    assert.ok(e.context.fix, 'error carries a fix');
    return e;
  }
  assert.fail(`expected ${code}`);
}

test('every BBBC fixture decodes to exact 16-bit values (own decoder = sharp grey16) and is sniffed by content', async () => {
  for (const f of FIXTURES) {
    const bytes = readFileSync(join(FIX, f));
    assert.equal(sniffFormat(bytes), 'tiff', `${f} is a TIFF whatever its name`);
    const img = await readImage(join(FIX, f));
    assert.equal(img.width, 696);
    assert.equal(img.height, 520);
    assert.equal(img.channels, 1);
    assert.equal(img.bitDepth, 16);
    const ref = await sharp16(bytes);
    assert.equal(ref.length, img.data.length);
    assert.deepEqual(img.data, ref, `${f}: values differ from sharp`);
    let max = 0;
    for (const v of img.data) max = Math.max(max, v);
    assert.ok(max > 1000 && max < 4096, `${f}: 12-bit data in 16 bits (max ${max})`);
  }
});

test('the NUL-byte DateTime MetaMorph file and the LZW file are decoded; LZW matches sharp pixel for pixel', async () => {
  const lzw = readFileSync(join(FIX, FIXTURES[2]));
  const own = decodeTiff(lzw, FIXTURES[2]);
  assert.ok(own);
  assert.deepEqual(own.data, await sharp16(lzw));
  // Spot values read independently of any decoder: the uncompressed strip of the BBBC022 field, little-endian.
  const raw = readFileSync(join(FIX, FIXTURES[0]));
  const img = decodeTiff(raw, FIXTURES[0]);
  assert.ok(img);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const firstIfd = dv.getUint32(4, true);
  const n = dv.getUint16(firstIfd, true);
  const entry = (tag: number) => {
    for (let i = 0; i < n; i++) {
      const e = firstIfd + 2 + 12 * i;
      if (dv.getUint16(e, true) === tag) return { count: dv.getUint32(e + 4, true), value: dv.getUint32(e + 8, true) };
    }
    throw new Error(`tag ${tag} missing`);
  };
  const so = entry(273);
  const rowsPerStrip = entry(278).value;
  const stripOffset = (s: number) => (so.count === 1 ? so.value : dv.getUint32(so.value + 4 * s, true));
  for (const [x, y] of [
    [0, 0],
    [300, 1],
    [348, 260],
    [695, 519],
  ]) {
    const s = Math.floor(y / rowsPerStrip);
    const k = (y - s * rowsPerStrip) * 696 + x;
    assert.equal(img.data[y * 696 + x], dv.getUint16(stripOffset(s) + 2 * k, true), `pixel ${x},${y}`);
  }
});

test('writeTiff16 round-trips exactly through sharp and our decoder', async () => {
  const w = 37;
  const h = 23;
  const d = ramp(w, h);
  const p = join(tmp, 'w.tif');
  writeTiff16(p, w, h, d);
  assert.deepEqual(await sharp16(readFileSync(p)), d);
  const img = await readImage(p);
  assert.deepEqual(img.data, d);
  assert.throws(
    () => encodeTiff16(3, 3, new Uint16Array(8)),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_IMAGE_SIZE',
  );
});

test('LZW, deflate and PackBits TIFFs written by libvips (with and without predictor) decode exactly', async () => {
  const w = 100;
  const h = 60;
  const d = ramp(w, h);
  for (const [compression, predictor] of [
    ['lzw', 'horizontal'],
    ['lzw', 'none'],
    ['deflate', 'horizontal'],
    ['deflate', 'none'],
    ['packbits', 'none'],
  ] as const) {
    const buf = await sharp(d, { raw: { width: w, height: h, channels: 1 } })
      .toColourspace('grey16')
      .tiff({ compression, predictor })
      .toBuffer();
    const img = await decodeImage(buf, `${compression}.tif`);
    assert.equal(img.bitDepth, 16);
    assert.deepEqual(img.data, d, `${compression}/${predictor}`);
  }
});

test('PNG 8 and 16 bit, whatever the extension', async () => {
  const w = 50;
  const h = 40;
  const d16 = ramp(w, h);
  const p16 = join(tmp, 'png16.tif'); // a PNG named .tif
  writeFileSync(
    p16,
    await sharp(d16, { raw: { width: w, height: h, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer(),
  );
  const a = await readImage(p16);
  assert.equal(a.bitDepth, 16);
  assert.equal(a.channels, 1);
  assert.deepEqual(a.data, d16);
  const d8 = new Uint8Array(w * h * 3).map((_, i) => (i * 31) % 256);
  const p8 = join(tmp, 'rgb8.png');
  writeFileSync(
    p8,
    await sharp(d8, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toBuffer(),
  );
  const b = await readImage(p8);
  assert.equal(b.bitDepth, 8);
  assert.equal(b.channels, 3);
  assert.deepEqual(b.data, d8);
});

test('NPY uint8/uint16/float32 round trip, big-endian input, and rejection of Fortran order', () => {
  const d = ramp(9, 7);
  for (const img of [
    { width: 9, height: 7, channels: 1, bitDepth: 16 as const, data: d },
    { width: 3, height: 7, channels: 3, bitDepth: 8 as const, data: new Uint8Array(63).map((_, i) => i * 4) },
    { width: 9, height: 7, channels: 1, bitDepth: 32 as const, data: Float32Array.from(d, (v) => v / 7) },
  ]) {
    const back = decodeNpy(encodeNpy(img), 'x.npy');
    assert.equal(back.bitDepth, img.bitDepth);
    assert.equal(back.channels, img.channels);
    assert.deepEqual(back.data, img.data);
  }
  const le = encodeNpy({ width: 9, height: 7, channels: 1, bitDepth: 16, data: d });
  const be = Buffer.from(le);
  const hdr = be.toString('latin1', 10, 10 + be.readUInt16LE(8)).replace('<u2', '>u2');
  be.write(hdr, 10, 'latin1');
  const start = 10 + be.readUInt16LE(8);
  for (let i = start; i < be.length; i += 2) [be[i], be[i + 1]] = [be[i + 1], be[i]];
  assert.deepEqual(decodeNpy(be, 'be.npy').data, d);
  const f = Buffer.from(le);
  f.write(f.toString('latin1', 10, start).replace('False', 'True '), 10, 'latin1');
  assert.throws(
    () => decodeNpy(f, 'f.npy'),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FILE_FORMAT',
  );
});

test('truncated TIFF, PNG and NPY give QCB_FILE_TRUNCATED naming the file; unknown bytes give QCB_FILE_FORMAT', async () => {
  const full = readFileSync(join(FIX, FIXTURES[3])); // IFD first, then pixel data: cut the strip
  const t1 = join(tmp, 'cut.tif');
  writeFileSync(t1, full.subarray(0, full.length - 5000));
  const meta = readFileSync(join(FIX, FIXTURES[0])); // MetaMorph: IFD at the end, cut it off
  const t2 = join(tmp, 'cut2.tif');
  writeFileSync(t2, meta.subarray(0, 300_000));
  const w = 60;
  const png = await sharp(ramp(w, w), { raw: { width: w, height: w, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  const t3 = join(tmp, 'cut.png');
  writeFileSync(t3, png.subarray(0, Math.floor(png.length / 2)));
  const t4 = join(tmp, 'cut.npy');
  writeFileSync(t4, encodeNpy({ width: w, height: w, channels: 1, bitDepth: 16, data: ramp(w, w) }).subarray(0, 500));
  for (const t of [t1, t2, t3, t4]) {
    const e = await expectCode(readImage(t), 'QCB_FILE_TRUNCATED', t);
    assert.match(e.format(), /file:/);
  }
  const t5 = join(tmp, 'notes.tif');
  writeFileSync(t5, 'this is not an image');
  await expectCode(readImage(t5), 'QCB_FILE_FORMAT', t5);
  await expectCode(readImage(join(tmp, 'absent.tif')), 'QCB_FILE_NOT_FOUND', join(tmp, 'absent.tif'));
});

test('percentile normalisation maps the 0.1–99.9 % window of each channel to 0–255', async () => {
  const img = await readImage(join(FIX, FIXTURES[0]));
  const [r] = percentileRanges(img);
  const sorted = Array.from(img.data).sort((a, b) => a - b);
  assert.equal(r.min, sorted[Math.floor(0.001 * sorted.length)]);
  assert.equal(r.max, sorted[Math.floor(0.999 * sorted.length)]);
  const u8 = normalizePercentile(img);
  assert.equal(u8.bitDepth, 8);
  let zeros = 0;
  let full = 0;
  for (const v of u8.data) {
    if (v === 0) zeros++;
    if (v === 255) full++;
  }
  // About 0.1 % of pixels at or below the low percentile, about 0.1 % saturate.
  assert.ok(zeros >= 0.001 * u8.data.length && zeros < 0.05 * u8.data.length, `zeros ${zeros}`);
  assert.ok(full >= 0.0009 * u8.data.length && full < 0.005 * u8.data.length, `255s ${full}`);
  // Two channels normalised independently.
  const two = {
    width: 2,
    height: 2,
    channels: 2,
    bitDepth: 16 as const,
    data: new Uint16Array([0, 100, 10, 200, 20, 300, 30, 400]),
  };
  const n2 = normalizePercentile(two, 0, 100);
  assert.deepEqual(Array.from(n2.data), [0, 0, 85, 85, 170, 170, 255, 255]);
});

test('big-endian (MM) TIFF decodes to the same values', async () => {
  const w = 13;
  const h = 7;
  const d = ramp(w, h);
  const le = Buffer.from(encodeTiff16(w, h, d));
  // Re-encode our little-endian layout as big-endian: header, IFD entries, rationals and pixels.
  const be = Buffer.alloc(le.length);
  be.write('MM', 0, 'latin1');
  be.writeUInt16BE(42, 2);
  const ifd = le.readUInt32LE(4);
  be.writeUInt32BE(ifd, 4);
  const n = le.readUInt16LE(ifd);
  be.writeUInt16BE(n, ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + 12 * i;
    const type = le.readUInt16LE(e + 2);
    be.writeUInt16BE(le.readUInt16LE(e), e);
    be.writeUInt16BE(type, e + 2);
    be.writeUInt32BE(le.readUInt32LE(e + 4), e + 4);
    if (type === 3) be.writeUInt16BE(le.readUInt16LE(e + 8), e + 8);
    else be.writeUInt32BE(le.readUInt32LE(e + 8), e + 8);
  }
  const pixels = le.length - 2 * w * h;
  for (let o = ifd + 2 + 12 * n; o < pixels; o += 4) be.writeUInt32BE(le.readUInt32LE(o), o);
  for (let i = 0; i < w * h; i++) be.writeUInt16BE(d[i], pixels + 2 * i);
  assert.equal(sniffFormat(be), 'tiff');
  const img = await decodeImage(be, 'be.tif');
  assert.deepEqual(img.data, d);
  assert.deepEqual(await sharp16(be), d);
});
