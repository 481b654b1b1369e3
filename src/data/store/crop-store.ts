import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import FileSystemStore from '@zarrita/storage/fs';
import * as zarr from 'zarrita';
import { QcbError } from '../../errors.js';
import { contentHash, updateHashFromFile, writeJsonAtomic } from '../../util/fs.js';
import { csvCell } from '../../util/csv.js';
import { parseCsvRecords } from '../datasets/csv-parse.js';
import type { CropMeta } from '../types.js';

/**
 * The crop store: a Zarr v3 hierarchy that Python's zarr (≥ 3) and pandas read as well as we do.
 *
 * ```
 * STORE/zarr.json          group
 * STORE/crops/zarr.json    array uint8 [N, C, S, S], chunks [64, C, S, S], dims (crop, channel, y, x)
 * STORE/crops/c/<k>/0/0/0  chunk k (crops 64k … 64k+63), raw or gzip
 * STORE/crops.csv          one row per crop: crop_id, index, plate, well, site, field_id, x, y, area, source_files, …metadata
 * STORE/qcbench.json       channels, size, normalisation, dataset, source root, count, content hash, complete
 * STORE/skipped.csv        fields left out by extraction, with the reason
 * STORE/fields.csv         every field given, with its outcome and whole-field measures (store/field-table.ts)
 * ```
 * While a store is being written, `progress.json` records the last checkpoint (crop count, byte lengths of crops.csv
 * and chunks.sha256), so a killed run resumes from it; crops beyond the checkpoint are simply rewritten.
 */

export const CHUNK = 64;
const FORMAT = 'qcbench-crops';
/**
 * The columns that locate a crop: the first columns of crops.csv, and of the per-crop tables made from a store (QC
 * scores), so that those tables join on them and read alike.
 */
export const CROP_LOCATION_COLUMNS = ['crop_id', 'index', 'plate', 'well', 'site', 'field_id', 'x', 'y'] as const;
const FIXED_COLUMNS = [...CROP_LOCATION_COLUMNS, 'area', 'source_files'] as const;

/** Chunk compression: none (fastest reads) or gzip (≈ 2–4× smaller; Python zarr reads both). */
export type Compression = 'none' | 'gzip';

/** The descriptive part of `qcbench.json`. */
export interface CropStoreInfo {
  format: typeof FORMAT;
  version: 1;
  /** Channel names in array order (C). */
  channels: string[];
  /** Crop side S in pixels. */
  size: number;
  chunk: number;
  compression: Compression;
  /**
   * How fields became uint8 (src/data/crops.ts `Normalisation`): `kind` plate (with `windows` plate → channel →
   * {min, max}, the intensities mapped to 0 and 255), percentile (per field: no window recorded) or fixed (`ranges`).
   * Stores made before plate windows existed have kind percentile.
   */
  normalisation: Record<string, unknown>;
  dataset: string;
  source_root: string;
  /** Extra provenance (segmentation settings, border policy, shard, …). */
  params: Record<string, unknown>;
  /** Metadata columns after the fixed ones in crops.csv. */
  metadata_columns: string[];
  count: number;
  /** SHA-256 over the chunk hashes, crops.csv and this info (without hash/complete). */
  hash: string;
  complete: boolean;
}

/** gzip with a real encoder (zarrita 0.7 only decodes gzip); registered once, process-wide. */
class GzipCodec {
  kind = 'bytes_to_bytes' as const;
  constructor(private readonly level: number) {}
  static fromConfig(cfg: { level?: number }): GzipCodec {
    return new GzipCodec(cfg?.level ?? 1);
  }
  encode(bytes: Uint8Array): Uint8Array {
    return gzipSync(bytes, { level: this.level });
  }
  decode(bytes: Uint8Array): Uint8Array {
    return gunzipSync(bytes);
  }
}
let gzipRegistered = false;
function registerGzip(): void {
  if (gzipRegistered) return;
  zarr.registry.set('gzip', (() => GzipCodec) as unknown as Parameters<typeof zarr.registry.set>[1]);
  gzipRegistered = true;
}

function storeError(path: string, what: string, fix: string, cause?: unknown): QcbError {
  return new QcbError('QCB_STORE', `crop store ${what}`, { file: path, fix, cause });
}

interface Progress {
  count: number;
  csvBytes: number;
  hashBytes: number;
  /** Caller state (e.g. fields done) saved with the checkpoint. */
  state: Record<string, unknown>;
}

/** Every file and folder a store writer puts directly in the store folder. */
const STORE_ENTRIES = [
  'crops',
  'crops.csv',
  'qcbench.json',
  'progress.json',
  'chunks.sha256',
  'skipped.csv',
  'fields.csv',
  'zarr.json',
];

/**
 * Refuses a store path that cannot be a store folder — an existing plain file, or a path under one — with QCB_STORE
 * naming `key` (the option that gave it), so a command fails as bad input before doing any work.
 */
export function checkStorePath(path: string, key = '--out'): void {
  let p = resolve(path);
  for (;;) {
    let isDir: boolean | undefined;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      isDir = undefined; // does not exist (yet): look at its parent
    }
    if (isDir === false) {
      throw new QcbError(
        'QCB_STORE',
        `${p} is a file, so it cannot ${p === resolve(path) ? 'be' : 'hold'} a crop store`,
        {
          file: p,
          key,
          value: path,
          fix: `choose a folder for ${key} (a new path or an existing store), not a file`,
        },
      );
    }
    if (isDir || dirname(p) === p) return;
    p = dirname(p);
  }
}

/** Options to create (or resume) a store. */
export interface CreateStoreOptions {
  channels: string[];
  size: number;
  compression?: Compression;
  normalisation?: Record<string, unknown>;
  dataset?: string;
  sourceRoot?: string;
  params?: Record<string, unknown>;
  metadataColumns?: string[];
  /** Resume from progress.json when the store exists and matches; otherwise (default) an existing store is an error. */
  resume?: boolean;
  /** Replace an existing store. */
  overwrite?: boolean;
}

/**
 * Appends crops to a store in order. `append` buffers up to a chunk; `checkpoint(state)` flushes everything (including
 * a partial last chunk) and records progress atomically; `finish()` writes qcbench.json with the content hash.
 */
export class CropStoreWriter {
  private constructor(
    readonly path: string,
    private info: Omit<CropStoreInfo, 'hash' | 'complete' | 'count'>,
    private arr: zarr.Array<'uint8', FileSystemStore>,
    private count: number,
    /** Crops from the last chunk boundary on (at most one partial chunk after a flush). */
    private pending: Uint8Array[],
    private pendingRows: string[],
    /** How many of `pendingRows` are already in crops.csv (written at a checkpoint). */
    private rowsInFile: number,
    readonly resumedState: Record<string, unknown> | undefined,
  ) {}

  /** What was there before this writer: the folders it created, or the checkpoint it resumed from (see discard). */
  private origin: { createdDirs?: string[]; resumedFrom?: { progress: string; count: number } } = {};

  private get cropBytes(): number {
    return this.info.channels.length * this.info.size * this.info.size;
  }

  /** Crops written or buffered so far. */
  get length(): number {
    return this.count + this.pending.length;
  }

  /** Creates a new store, or reopens one at its last checkpoint when `resume` is set. */
  static async create(path: string, o: CreateStoreOptions): Promise<CropStoreWriter> {
    registerGzip();
    path = resolve(path);
    const info: Omit<CropStoreInfo, 'hash' | 'complete' | 'count'> = {
      format: FORMAT,
      version: 1,
      channels: o.channels,
      size: o.size,
      chunk: CHUNK,
      compression: o.compression ?? 'none',
      normalisation: o.normalisation ?? {},
      dataset: o.dataset ?? '',
      source_root: o.sourceRoot ?? '',
      params: o.params ?? {},
      metadata_columns: o.metadataColumns ?? [],
    };
    if (o.channels.length === 0 || !Number.isInteger(o.size) || o.size <= 0) {
      throw new QcbError('QCB_USAGE', 'a crop store needs ≥ 1 channel and a positive integer crop size', {
        value: { channels: o.channels, size: o.size },
        fix: 'check --channels and --size',
      });
    }
    checkStorePath(path);
    const store = new FileSystemStore(path);
    const root = zarr.root(store);
    const progressFile = join(path, 'progress.json');
    const metaFile = join(path, 'qcbench.json');
    if (existsSync(metaFile) || existsSync(progressFile)) {
      if (o.resume && existsSync(progressFile) && !existsSync(metaFile)) {
        const progText = readFileSync(progressFile, 'utf8');
        const prog = JSON.parse(progText) as Progress & { info: typeof info };
        if (contentHash(prog.info) !== contentHash(info)) {
          throw storeError(
            path,
            'was started with other settings',
            'rerun with the same options, or use --overwrite to start again',
          );
        }
        // Roll crops.csv and chunks.sha256 back to the checkpoint (both only grow between checkpoints); chunks past
        // it are rewritten.
        truncateTo(join(path, 'crops.csv'), prog.csvBytes);
        truncateTo(join(path, 'chunks.sha256'), prog.hashBytes);
        const arr = await zarr.open.v3(root.resolve('crops'), { kind: 'array' });
        const keep = prog.count % CHUNK;
        const base = prog.count - keep;
        const pending: Uint8Array[] = [];
        const pendingRows: string[] = [];
        if (keep > 0) {
          const chunk = await arr.getChunk([base / CHUNK, 0, 0, 0]);
          const data = chunk.data as Uint8Array;
          const per = info.channels.length * info.size * info.size;
          for (let i = 0; i < keep; i++) pending.push(data.slice(i * per, (i + 1) * per));
          // The rows of the partial chunk are the last `keep` lines of crops.csv: move them back into the buffer.
          const lines = tailLines(join(path, 'crops.csv'), keep);
          pendingRows.push(...lines.slice(lines.length - keep).map((l) => `${l}\n`));
        }
        const w = new CropStoreWriter(
          path,
          info,
          arr as zarr.Array<'uint8', FileSystemStore>,
          base,
          pending,
          pendingRows,
          keep,
          prog.state,
        );
        w.origin = { resumedFrom: { progress: progText, count: prog.count } };
        return w;
      }
      if (!o.overwrite) {
        throw storeError(
          path,
          existsSync(metaFile) ? 'already exists' : 'exists from an interrupted run',
          existsSync(metaFile)
            ? 'choose another --out, or pass --overwrite'
            : 'rerun the same command (without --no-resume) to continue it, or pass --overwrite to start again',
        );
      }
    }
    if (o.overwrite) for (const p of STORE_ENTRIES) rmSync(join(path, p), { recursive: true, force: true });
    const createdDirs: string[] = [];
    for (let d = path; !existsSync(d); d = dirname(d)) createdDirs.push(d);
    mkdirSync(path, { recursive: true });
    await zarr.create(root, { attributes: { qcbench: { format: FORMAT, channels: o.channels, size: o.size } } });
    const codecs = [
      { name: 'bytes', configuration: { endian: 'little' } },
      ...(info.compression === 'gzip' ? [{ name: 'gzip', configuration: { level: 1 } }] : []),
    ];
    const arr = await zarr.create(root.resolve('crops'), {
      shape: [0, o.channels.length, o.size, o.size],
      chunkShape: [CHUNK, o.channels.length, o.size, o.size],
      dtype: 'uint8',
      codecs,
      fillValue: 0,
      dimensionNames: ['crop', 'channel', 'y', 'x'],
      attributes: { channels: o.channels },
    });
    const header = [...FIXED_COLUMNS, ...info.metadata_columns].map(csvCell).join(',');
    appendBytes(join(path, 'crops.csv'), `${header}\n`, true);
    appendBytes(join(path, 'chunks.sha256'), '', true);
    const w = new CropStoreWriter(path, info, arr, 0, [], [], 0, undefined);
    w.origin = { createdDirs };
    await w.checkpoint({});
    return w;
  }

  /**
   * Appends crops (n×C×S×S uint8, n = metas.length) with their metadata (`index` is assigned here).
   * Full chunks are written as soon as they fill.
   */
  async append(crops: Uint8Array, metas: Omit<CropMeta, 'index'>[]): Promise<void> {
    const per = this.cropBytes;
    if (crops.length !== metas.length * per) {
      throw new QcbError('QCB_INTERNAL', `append: ${crops.length} bytes for ${metas.length} crops of ${per}`, {
        fix: 'report this bug',
      });
    }
    for (let i = 0; i < metas.length; i++) {
      const m = metas[i];
      const index = this.count + this.pending.length;
      this.pending.push(crops.slice(i * per, (i + 1) * per)); // a copy: callers may reuse their buffer
      const row = [
        m.crop_id,
        index,
        m.plate,
        m.well,
        m.site,
        m.field_id,
        m.x,
        m.y,
        m.area,
        m.source_files,
        ...this.info.metadata_columns.map((k) => m.metadata[k] ?? ''),
      ];
      // One physical line per crop (line breaks inside values become spaces), so checkpoints can count lines.
      this.pendingRows.push(
        `${row.map((v) => csvCell(typeof v === 'string' ? v.replace(/[\r\n]+/g, ' ') : v)).join(',')}\n`,
      );
      if (this.pending.length === CHUNK) await this.flush();
    }
  }

  /** Writes buffered crops: whole chunks leave the buffer; a partial chunk is written but kept for rewriting. */
  private async flush(): Promise<void> {
    const n = this.pending.length;
    if (n === 0) return;
    const per = this.cropBytes;
    // Always a whole chunk: Zarr stores edge chunks at full size, the part past the array's end is fill (0).
    const data = new Uint8Array(CHUNK * per);
    for (let i = 0; i < n; i++) data.set(this.pending[i], i * per);
    this.writeChunk(this.count / CHUNK, data);
    if (n === CHUNK) {
      this.writeRows();
      appendBytes(join(this.path, 'chunks.sha256'), `${createHash('sha256').update(data).digest('hex')}\n`);
      this.count += n;
      this.pending = [];
      this.pendingRows = [];
      this.rowsInFile = 0;
    }
  }

  /**
   * Encodes and writes chunk `k` (bytes codec, then gzip when enabled) at the v3 default key `crops/c/k/0/0/0`,
   * through a temp file and a rename so a reader never sees half a chunk. Written directly rather than through
   * zarr.set: the data are already laid out as a chunk, and this avoids a strided copy and a zarr.json rewrite per
   * chunk (the array's shape is updated at checkpoints and at the end).
   */
  private writeChunk(k: number, data: Uint8Array): void {
    const bytes = this.info.compression === 'gzip' ? gzipSync(data, { level: 1 }) : data;
    const dir = join(this.path, 'crops', 'c', String(k), '0', '0');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, '0');
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
  }

  /** Appends the buffered rows crops.csv does not hold yet (each row is written exactly once). */
  private writeRows(): void {
    if (this.rowsInFile < this.pendingRows.length) {
      appendBytes(join(this.path, 'crops.csv'), this.pendingRows.slice(this.rowsInFile).join(''));
      this.rowsInFile = this.pendingRows.length;
    }
  }

  private async setShape(n: number): Promise<void> {
    if (this.arr.shape[0] === n) return;
    const file = join(this.path, 'crops', 'zarr.json');
    const meta = JSON.parse(readFileSync(file, 'utf8'));
    meta.shape[0] = n;
    writeJsonAtomic(file, meta);
    this.arr = (await zarr.open.v3(zarr.root(new FileSystemStore(this.path)).resolve('crops'), {
      kind: 'array',
    })) as zarr.Array<'uint8', FileSystemStore>;
  }

  /**
   * Makes everything appended so far durable and records `state` (e.g. the number of fields done) so that a resumed
   * writer starts here (`resumedState`).
   */
  async checkpoint(state: Record<string, unknown>): Promise<void> {
    await this.flush();
    // crops.csv gets the partial chunk's rows too, so it is complete at the checkpoint; resume reads them back.
    this.writeRows();
    await this.setShape(this.count + this.pending.length);
    fsyncFile(join(this.path, 'crops.csv'));
    fsyncFile(join(this.path, 'chunks.sha256'));
    const prog: Progress & { info: Omit<CropStoreInfo, 'hash' | 'complete' | 'count'> } = {
      count: this.count + this.pending.length,
      csvBytes: fileSize(join(this.path, 'crops.csv')),
      hashBytes: fileSize(join(this.path, 'chunks.sha256')),
      state,
      info: this.info,
    };
    writeJsonAtomic(join(this.path, 'progress.json'), prog);
  }

  /**
   * Undoes this writer after a bad-input failure, so that nothing half-written stays behind: a store it created loses
   * every file it wrote and the folders it made (a folder others write into too, such as a sharded run's `parts/`,
   * only once empty); a store it resumed goes back to the checkpoint it resumed from, so the same command continues
   * from there. Not for a finished store (whose qcbench.json this writer wrote).
   */
  discard(): void {
    const from = this.origin.resumedFrom;
    if (from) {
      const prog = JSON.parse(from.progress) as Progress;
      truncateTo(join(this.path, 'crops.csv'), prog.csvBytes);
      truncateTo(join(this.path, 'chunks.sha256'), prog.hashBytes);
      // Chunks past the checkpoint's last one are this run's; the checkpoint's partial chunk begins as it did.
      const keepChunks = Math.ceil(prog.count / CHUNK);
      const chunkDir = join(this.path, 'crops', 'c');
      for (const k of existsSync(chunkDir) ? readdirSync(chunkDir) : [])
        if (Number(k) >= keepChunks) rmSync(join(chunkDir, k), { recursive: true, force: true });
      const arrayMeta = join(this.path, 'crops', 'zarr.json');
      const meta = JSON.parse(readFileSync(arrayMeta, 'utf8'));
      meta.shape[0] = prog.count;
      writeJsonAtomic(arrayMeta, meta);
      writeJsonAtomic(join(this.path, 'progress.json'), JSON.parse(from.progress));
      return;
    }
    for (const p of STORE_ENTRIES) rmSync(join(this.path, p), { recursive: true, force: true });
    for (const d of this.origin.createdDirs ?? []) {
      try {
        rmdirSync(d); // deepest first; a folder that is not empty (another shard's part) stays
      } catch {
        break;
      }
    }
  }

  /** Flushes, computes the content hash and writes qcbench.json (the store is then complete and readable). */
  async finish(extra: Record<string, unknown> = {}): Promise<CropStoreInfo> {
    await this.flush();
    const count = this.count + this.pending.length;
    if (this.pending.length) {
      const per = this.cropBytes;
      const data = new Uint8Array(this.pending.length * per);
      for (let i = 0; i < this.pending.length; i++) data.set(this.pending[i], i * per);
      this.writeRows();
      appendBytes(join(this.path, 'chunks.sha256'), `${createHash('sha256').update(data).digest('hex')}\n`);
      this.count = count;
      this.pending = [];
      this.pendingRows = [];
      this.rowsInFile = 0;
    }
    await this.setShape(count);
    const h = createHash('sha256');
    updateHashFromFile(h, join(this.path, 'chunks.sha256'));
    updateHashFromFile(h, join(this.path, 'crops.csv'));
    const params = { ...this.info.params, ...extra };
    h.update(contentHash({ ...this.info, params, count }));
    const info: CropStoreInfo = { ...this.info, params, count, hash: h.digest('hex'), complete: true };
    writeJsonAtomic(join(this.path, 'qcbench.json'), info);
    rmSync(join(this.path, 'progress.json'), { force: true });
    return info;
  }
}

/** Copies crops `js` of an uncompressed chunk file into `out` (slot j at j × per); a missing chunk is fill (0). */
function readInPlace(file: string, js: number[], offsetOf: (j: number) => number, out: Uint8Array, per: number): void {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return; // absent chunk = fill value 0 (out is zero-initialised)
  }
  try {
    for (const j of js) {
      const got = readSync(fd, out, j * per, per, offsetOf(j));
      if (got !== per) {
        throw new QcbError('QCB_STORE', `chunk file is truncated (${got} of ${per} bytes at ${offsetOf(j)})`, {
          file,
          fix: 'the store was copied incompletely: copy it again or recreate it',
        });
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** The last `n` non-empty lines of a (possibly huge) text file, read from its end. */
function tailLines(p: string, n: number): string[] {
  const size = fileSize(p);
  let want = 64 * 1024;
  for (;;) {
    const from = Math.max(0, size - want);
    const buf = Buffer.alloc(size - from);
    const fd = openSync(p, 'r');
    try {
      readSync(fd, buf, 0, buf.length, from);
    } finally {
      closeSync(fd);
    }
    const lines = buf.toString('utf8').split('\n');
    if (from > 0) lines.shift(); // possibly cut in the middle
    const full = lines.filter((l) => l !== '');
    if (full.length >= n || from === 0) return full.slice(Math.max(0, full.length - n));
    want *= 4;
  }
}

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

function truncateTo(p: string, bytes: number): void {
  if (!existsSync(p)) return;
  const fd = openSync(p, 'r+');
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}

/** Appends text (not synced: checkpoints fsync the files they record). */
function appendBytes(p: string, text: string, create = false): void {
  const fd = openSync(p, create ? 'w' : 'a');
  try {
    const b = Buffer.from(text);
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
  } finally {
    closeSync(fd);
  }
}

function fsyncFile(p: string): void {
  const fd = openSync(p, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads crops.csv line by line from a Buffer (a full-screen table is larger than V8's longest string), checking the
 * header and the row count. Rows of one field share one metadata object (interned), which keeps 2 M crops in memory
 * cheaply.
 */
function readCropTable(file: string, info: CropStoreInfo): CropMeta[] {
  const bad = (what: string) =>
    new QcbError('QCB_STORE', `crops.csv ${what}`, {
      file,
      fix: 'the store was modified or copied incompletely: recreate it',
    });
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new QcbError('QCB_STORE', 'crops.csv is missing', { file, fix: 'recreate the store', cause: e });
  }
  const columns = [...FIXED_COLUMNS, ...info.metadata_columns];
  const meta: CropMeta[] = [];
  const shared = new Map<string, { source_files: string; metadata: Record<string, string> }>();
  let start = 0;
  let line = 0;
  while (start < buf.length) {
    let end = buf.indexOf(10, start);
    if (end < 0) end = buf.length;
    const text = buf.toString('utf8', start, end).replace(/\r$/, '');
    start = end + 1;
    line++;
    if (text === '') continue;
    const cells = parseCsvRecords(text)[0]?.cells ?? [];
    if (line === 1) {
      if (cells.join(',') !== columns.join(','))
        throw bad(`header does not match qcbench.json (${cells.slice(0, 12).join(',')}…)`);
      continue;
    }
    if (cells.length !== columns.length)
      throw bad(`line ${line} has ${cells.length} cells, expected ${columns.length}`);
    const key = cells.slice(9).join('\u0001');
    let sh = shared.get(key);
    if (!sh) {
      const metadata: Record<string, string> = {};
      info.metadata_columns.forEach((k, j) => {
        metadata[k] = cells[10 + j];
      });
      sh = { source_files: cells[9], metadata };
      shared.set(key, sh);
    }
    meta.push({
      crop_id: cells[0],
      index: Number(cells[1]),
      plate: cells[2],
      well: cells[3],
      site: Number(cells[4]),
      field_id: cells[5],
      x: Number(cells[6]),
      y: Number(cells[7]),
      area: Number(cells[8]),
      source_files: sh.source_files,
      metadata: sh.metadata,
    });
    if (shared.size > 100_000) shared.clear(); // bounded: tables are field-ordered, so recent keys are what repeats
  }
  if (meta.length !== info.count) throw bad(`has ${meta.length} rows for ${info.count} crops`);
  return meta;
}

/** A complete crop store opened for reading. */
export interface CropStore {
  path: string;
  info: CropStoreInfo;
  count: number;
  channels: string[];
  size: number;
  hash: string;
  /** Per-crop metadata in index order (read-only: crops of one field share their `metadata` object). */
  meta: CropMeta[];
  /** Crops [start, end) as (end−start)×C×S×S uint8. */
  read(start: number, end: number): Promise<Uint8Array>;
  /** Crops at the given indices (any order, repeats allowed) as n×C×S×S uint8. */
  readIndices(idx: number[]): Promise<Uint8Array>;
}

/**
 * The `qcbench.json` of a complete store (synchronous, reads nothing else); QCB_STORE naming the folder and the fix
 * when it is not one (missing, no qcbench.json, interrupted, another format).
 */
export function readCropStoreInfo(path: string): CropStoreInfo {
  path = resolve(path);
  const metaFile = join(path, 'qcbench.json');
  if (!existsSync(metaFile)) {
    const partial = existsSync(join(path, 'progress.json'));
    throw storeError(
      path,
      partial
        ? 'is incomplete (extraction was interrupted)'
        : existsSync(path)
          ? 'has no qcbench.json'
          : 'does not exist',
      partial
        ? 'rerun the same `qcbench data crops` command: it continues from the last checkpoint'
        : 'create it with `qcbench data crops --out STORE …`',
    );
  }
  let info: CropStoreInfo;
  try {
    info = JSON.parse(readFileSync(metaFile, 'utf8'));
  } catch (e) {
    throw storeError(path, 'has an unreadable qcbench.json', 'recreate the store', e);
  }
  if (info.format !== FORMAT || !info.complete)
    throw storeError(path, 'is not a complete qcbench crop store', 'recreate it with `qcbench data crops`');
  return info;
}

/** The info and per-crop table of a complete store, without opening its array (synchronous; see openCropStore). */
export function readCropStoreTable(path: string): { info: CropStoreInfo; meta: CropMeta[] } {
  const info = readCropStoreInfo(path);
  return { info, meta: readCropTable(join(resolve(path), 'crops.csv'), info) };
}

/** Opens a complete store; QCB_STORE when it is missing, unfinished or inconsistent. */
export async function openCropStore(path: string, opts: { cacheChunks?: number } = {}): Promise<CropStore> {
  registerGzip();
  path = resolve(path);
  const info = readCropStoreInfo(path);
  const store = new FileSystemStore(path);
  let arr: zarr.Array<zarr.DataType, FileSystemStore>;
  try {
    arr = await zarr.open.v3(zarr.root(store).resolve('crops'), { kind: 'array' });
  } catch (e) {
    throw storeError(path, 'has no readable crops array', 'recreate the store', e);
  }
  const C = info.channels.length;
  const S = info.size;
  const want = [info.count, C, S, S];
  if (arr.dtype !== 'uint8' || arr.shape.join() !== want.join() || arr.chunks[0] !== info.chunk) {
    throw new QcbError(
      'QCB_STORE',
      `crops array is ${arr.dtype} [${arr.shape}] but qcbench.json says uint8 [${want}]`,
      {
        file: join(path, 'crops', 'zarr.json'),
        value: arr.shape,
        allowed: `[${want}]`,
        fix: 'the store was modified or copied incompletely: recreate it',
      },
    );
  }
  const meta = readCropTable(join(path, 'crops.csv'), info);
  const per = C * S * S;
  const cacheMax = opts.cacheChunks ?? 32; // 32 chunks of 64 × 3×128×128 ≈ 100 MB
  const cache = new Map<number, Promise<Uint8Array>>();
  const chunk = (k: number): Promise<Uint8Array> => {
    const hit = cache.get(k);
    if (hit) {
      cache.delete(k);
      cache.set(k, hit);
      return hit;
    }
    const p = arr.getChunk([k, 0, 0, 0]).then((c) => c.data as Uint8Array);
    cache.set(k, p);
    if (cache.size > cacheMax) cache.delete(cache.keys().next().value as number);
    return p;
  };
  const check = (i: number) => {
    if (!Number.isInteger(i) || i < 0 || i >= info.count) {
      throw new QcbError('QCB_STORE', `crop index ${i} out of range`, {
        file: path,
        allowed: `0 … ${info.count - 1}`,
        fix: 'ask for indices within the store',
      });
    }
  };
  return {
    path,
    info,
    count: info.count,
    channels: info.channels,
    size: S,
    hash: info.hash,
    meta,
    async read(start, end) {
      if (end < start)
        throw new QcbError('QCB_STORE', `read(${start}, ${end}): end before start`, {
          file: path,
          fix: 'pass start ≤ end',
        });
      if (end === start) return new Uint8Array(0);
      check(start);
      check(end - 1);
      const out = new Uint8Array((end - start) * per);
      for (let k = Math.floor(start / CHUNK); k * CHUNK < end; k++) {
        const data = await chunk(k);
        const a = Math.max(start, k * CHUNK);
        const b = Math.min(end, (k + 1) * CHUNK);
        out.set(data.subarray((a - k * CHUNK) * per, (b - k * CHUNK) * per), (a - start) * per);
      }
      return out;
    },
    async readIndices(idx) {
      idx.forEach(check);
      const out = new Uint8Array(idx.length * per);
      const byChunk = new Map<number, number[]>();
      idx.forEach((i, j) => {
        const k = Math.floor(i / CHUNK);
        const l = byChunk.get(k);
        if (l) l.push(j);
        else byChunk.set(k, [j]);
      });
      for (const [k, js] of byChunk) {
        // Uncompressed chunks are crop-major, so a few crops of an uncached chunk are read in place (one positioned
        // read of C×S×S bytes each) instead of loading the whole chunk: random access stays fast on big stores.
        if (info.compression === 'none' && !cache.has(k) && js.length <= CHUNK / 4) {
          readInPlace(
            join(path, 'crops', 'c', String(k), '0', '0', '0'),
            js,
            (j) => (idx[j] - k * CHUNK) * per,
            out,
            per,
          );
          continue;
        }
        const data = await chunk(k);
        for (const j of js) {
          const o = (idx[j] - k * CHUNK) * per;
          out.set(data.subarray(o, o + per), j * per);
        }
      }
      return out;
    },
  };
}

/**
 * Finds crops by id (`<plate>_<well>_s<site>_<x>_<y>`): exact ids first, otherwise the nearest crop of the same field
 * within `tolerance` pixels (segmented centres differ by a pixel or two from annotated or ground-truth centres).
 * Returns the crop index per requested id, or -1 when nothing matches.
 */
export function findCrops(meta: CropMeta[], ids: string[], tolerance = 6): number[] {
  const exact = new Map<string, number>();
  const byField = new Map<string, CropMeta[]>();
  for (const m of meta) {
    exact.set(m.crop_id, m.index);
    const key = `${m.plate}_${m.well}_s${m.site}`;
    const l = byField.get(key);
    if (l) l.push(m);
    else byField.set(key, [m]);
  }
  return ids.map((id) => {
    const hit = exact.get(id);
    if (hit !== undefined) return hit;
    const m = /^(.*)_(-?\d+)_(-?\d+)$/.exec(id);
    if (!m) return -1;
    const x = Number(m[2]);
    const y = Number(m[3]);
    let best = -1;
    let bestD = tolerance;
    for (const c of byField.get(m[1]) ?? []) {
      const d = Math.hypot(c.x - x, c.y - y);
      if (d <= bestD) {
        bestD = d;
        best = c.index;
      }
    }
    return best;
  });
}
