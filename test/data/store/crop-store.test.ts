import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { CropStoreWriter, openCropStore } from '../../../src/data/store/crop-store.js';
import type { CropMeta } from '../../../src/data/types.js';
import { QcbError } from '../../../src/errors.js';

const C = 2;
const S = 8;
const PER = C * S * S;

function crop(i: number): Uint8Array {
  return new Uint8Array(PER).map((_, k) => (i * 31 + k * 7) % 256);
}
function meta(i: number): Omit<CropMeta, 'index'> {
  return {
    crop_id: `P1_B02_s1_${i}_${2 * i}`,
    plate: 'P1',
    well: 'B02',
    site: 1,
    field_id: 'P1_B02_s1',
    x: i,
    y: 2 * i,
    area: 100 + i,
    source_files: 'a.tif;b.tif',
    metadata: { compound: i % 2 ? 'DMSO' : 'drug, "x"', moa: '' },
  };
}
const opts = {
  channels: ['dna', 'actin'],
  size: S,
  metadataColumns: ['compound', 'moa'],
  dataset: 'test',
  normalisation: { kind: 'percentile', lo: 0.1, hi: 99.9 },
};

async function writeAll(path: string, n: number, compression: 'none' | 'gzip' = 'none') {
  const w = await CropStoreWriter.create(path, { ...opts, compression });
  for (let i = 0; i < n; i += 10) {
    const m = Math.min(10, n - i);
    const data = new Uint8Array(m * PER);
    for (let j = 0; j < m; j++) data.set(crop(i + j), j * PER);
    await w.append(
      data,
      Array.from({ length: m }, (_, j) => meta(i + j)),
    );
    if (i % 30 === 0) await w.checkpoint({ done: i + m });
  }
  return w.finish();
}

test('write 150 crops (3 chunks, last partial), reopen, read ranges and indices, metadata round trip', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'qcb-store-')), 'store');
  const info = await writeAll(dir, 150);
  assert.equal(info.count, 150);
  assert.match(info.hash, /^[0-9a-f]{64}$/);
  const s = await openCropStore(dir);
  assert.equal(s.count, 150);
  assert.deepEqual(s.channels, ['dna', 'actin']);
  assert.equal(s.size, S);
  assert.equal(s.meta.length, 150);
  assert.deepEqual(s.meta[77], { ...meta(77), index: 77 });
  assert.equal(s.meta[0].metadata.compound, 'drug, "x"');
  const r = await s.read(60, 130); // spans three chunks
  for (let i = 60; i < 130; i++) assert.deepEqual(r.subarray((i - 60) * PER, (i - 59) * PER), crop(i));
  const idx = [149, 0, 64, 63, 149, 5];
  const ri = await s.readIndices(idx);
  for (const [j, i] of idx.entries()) assert.deepEqual(ri.subarray(j * PER, (j + 1) * PER), crop(i));
  // Layout that Python's zarr / numpy read: zarr.json with shape, and raw little-endian chunks c/k/0/0/0.
  const zj = JSON.parse(readFileSync(join(dir, 'crops', 'zarr.json'), 'utf8'));
  assert.deepEqual(zj.shape, [150, C, S, S]);
  assert.deepEqual(zj.chunk_grid.configuration.chunk_shape, [64, C, S, S]);
  assert.equal(zj.data_type, 'uint8');
  assert.deepEqual(readdirSync(join(dir, 'crops', 'c')).sort(), ['0', '1', '2']);
  const raw = readFileSync(join(dir, 'crops', 'c', '1', '0', '0', '0'));
  assert.deepEqual(new Uint8Array(raw.subarray(3 * PER, 4 * PER)), crop(67));
  const header = readFileSync(join(dir, 'crops.csv'), 'utf8').split('\n')[0];
  assert.equal(header, 'crop_id,index,plate,well,site,field_id,x,y,area,source_files,compound,moa');
  // A fresh store (empty chunk cache) reads a few crops per chunk in place: same bytes.
  const fresh = await openCropStore(dir);
  const rf = await fresh.readIndices(idx);
  assert.deepEqual(rf, ri);
  await assert.rejects(s.readIndices([150]), (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE');
});

test('gzip chunks: same crops, smaller files, standard gzip payloads', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'qcb-store-')), 'gz');
  await writeAll(dir, 70, 'gzip');
  const s = await openCropStore(dir);
  assert.equal(s.info.compression, 'gzip');
  const all = await s.read(0, 70);
  for (let i = 0; i < 70; i++) assert.deepEqual(all.subarray(i * PER, (i + 1) * PER), crop(i));
  const raw = readFileSync(join(dir, 'crops', 'c', '0', '0', '0', '0'));
  assert.equal(gunzipSync(raw).length, 64 * PER);
});

test('a killed writer resumes from its last checkpoint and ends identical (same hash) to an uninterrupted run', async () => {
  const base = mkdtempSync(join(tmpdir(), 'qcb-store-'));
  const ref = await writeAll(join(base, 'ref'), 150);
  const path = join(base, 'resumed');
  const w = await CropStoreWriter.create(path, opts);
  const put = async (wr: CropStoreWriter, a: number, b: number) => {
    const data = new Uint8Array((b - a) * PER);
    for (let i = a; i < b; i++) data.set(crop(i), (i - a) * PER);
    await wr.append(
      data,
      Array.from({ length: b - a }, (_, j) => meta(a + j)),
    );
  };
  await put(w, 0, 70);
  await w.checkpoint({ fieldsDone: 7 });
  await put(w, 70, 100); // lost: never checkpointed (the process "dies" here)
  await assert.rejects(
    openCropStore(path),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE' && /interrupted/.test(e.message),
  );
  await assert.rejects(
    CropStoreWriter.create(path, opts),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE' && /continue it/.test(e.context.fix ?? ''),
  );
  const r = await CropStoreWriter.create(path, { ...opts, resume: true });
  assert.deepEqual(r.resumedState, { fieldsDone: 7 });
  assert.equal(r.length, 70);
  await put(r, 70, 150);
  const info = await r.finish();
  assert.equal(info.count, 150);
  assert.equal(readFileSync(join(path, 'crops.csv'), 'utf8'), readFileSync(join(base, 'ref', 'crops.csv'), 'utf8'));
  assert.equal(
    readFileSync(join(path, 'chunks.sha256'), 'utf8'),
    readFileSync(join(base, 'ref', 'chunks.sha256'), 'utf8'),
  );
  assert.equal(info.hash, ref.hash);
  // Resuming with other settings is refused.
  const p2 = join(base, 'other');
  const w2 = await CropStoreWriter.create(p2, opts);
  await put(w2, 0, 5);
  await w2.checkpoint({});
  await assert.rejects(
    CropStoreWriter.create(p2, { ...opts, size: 16, resume: true }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE',
  );
});

test('missing store, wrong array shape and truncated metadata give QCB_STORE naming the file', async () => {
  const base = mkdtempSync(join(tmpdir(), 'qcb-store-'));
  await assert.rejects(
    openCropStore(join(base, 'nope')),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE' && e.context.file === join(base, 'nope'),
  );
  const dir = join(base, 's');
  await writeAll(dir, 20);
  const zj = join(dir, 'crops', 'zarr.json');
  const good = readFileSync(zj, 'utf8');
  const m = JSON.parse(good);
  m.shape = [20, 3, S, S];
  writeFileSync(zj, JSON.stringify(m));
  await assert.rejects(
    openCropStore(dir),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE' && e.context.file === zj,
  );
  writeFileSync(zj, good);
  const chunk0 = join(dir, 'crops', 'c', '0', '0', '0', '0');
  const bytes = readFileSync(chunk0);
  writeFileSync(chunk0, bytes.subarray(0, 5 * PER));
  const cut = await openCropStore(dir);
  assert.deepEqual(await cut.readIndices([2]), crop(2));
  await assert.rejects(
    cut.readIndices([7]),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE' && e.context.file === chunk0,
  );
  writeFileSync(chunk0, bytes);
  const csv = join(dir, 'crops.csv');
  writeFileSync(csv, readFileSync(csv, 'utf8').split('\n').slice(0, 10).join('\n'));
  await assert.rejects(
    openCropStore(dir),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE' && e.context.file === csv,
  );
});
