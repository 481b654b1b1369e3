/**
 * Training checkpoints: a partially trained model saved so that a rerun resumes where the last one stopped. One file
 * holds named tensors (the parameters, the optimizer's state such as momentum buffers, and any extra state of the
 * loop, under names of the caller's choosing) and a JSON metadata object (the step or epoch reached, the settings
 * the run was started with, its curves so far).
 *
 * Format ("QCBCKPT1"): 8 bytes magic `QCBCKPT1`, u64 little-endian header length L, L bytes of UTF-8 JSON header
 * `{ meta, tensors: { name: { dtype, dims, offset, bytes } } }`, then the raw little-endian tensor data
 * concatenated in insertion order (offsets relative to the end of the header). Files are written atomically, so a
 * crash leaves the previous checkpoint intact.
 */
import { readFileSync } from 'node:fs';
import { QcbError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import type { DType, Tensor } from '../ir/graph.js';
import { bytesOf, dataFromBytes } from '../onnx/dtypes.js';

const MAGIC = 'QCBCKPT1';

interface CkptHeader {
  meta: Record<string, unknown>;
  tensors: Record<string, { dtype: DType; dims: number[]; offset: number; bytes: number }>;
}

/** A checkpoint's contents: metadata (JSON-serialisable) and named tensors of any shape and dtype. */
export interface Checkpoint {
  meta: Record<string, unknown>;
  tensors: Map<string, Tensor>;
}

/**
 * Writes tensors + metadata atomically to `path` (see the module doc for the format). Tensors are stored in the
 * map's iteration order, so the same contents give the same bytes.
 */
export function writeCheckpoint(path: string, meta: Record<string, unknown>, tensors: Map<string, Tensor>): void {
  const header: CkptHeader = { meta, tensors: {} };
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const [k, t] of tensors) {
    const bytes = bytesOf(t.data);
    header.tensors[k] = { dtype: t.dtype, dims: [...t.dims], offset: off, bytes: bytes.length };
    parts.push(bytes);
    off += bytes.length;
  }
  const h = new TextEncoder().encode(JSON.stringify(header));
  const buf = new Uint8Array(16 + h.length + off);
  buf.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(buf.buffer).setBigUint64(8, BigInt(h.length), true);
  buf.set(h, 16);
  let p = 16 + h.length;
  for (const part of parts) {
    buf.set(part, p);
    p += part.length;
  }
  writeFileAtomic(path, buf);
}

/**
 * Reads a checkpoint written by `writeCheckpoint`; every tensor is a fresh copy (aligned for its typed array).
 * @throws QCB_FILE_TRUNCATED for a damaged file (bad magic, header not JSON, a tensor beyond the end of the file)
 */
export function readCheckpoint(path: string): Checkpoint {
  const buf = readFileSync(path);
  const bad = (why: string) =>
    new QcbError('QCB_FILE_TRUNCATED', `checkpoint ${path} is damaged: ${why}`, {
      file: path,
      fix: 'delete the checkpoint to restart pretraining from scratch',
    });
  if (buf.length < 16 || buf.subarray(0, 8).toString('latin1') !== MAGIC) throw bad('bad magic');
  const hl = Number(buf.readBigUInt64LE(8));
  if (16 + hl > buf.length) throw bad('header beyond end of file');
  let header: CkptHeader;
  try {
    header = JSON.parse(buf.subarray(16, 16 + hl).toString('utf8'));
  } catch {
    throw bad('header is not JSON');
  }
  const base = 16 + hl;
  const tensors = new Map<string, Tensor>();
  for (const [k, e] of Object.entries(header.tensors)) {
    if (base + e.offset + e.bytes > buf.length) throw bad(`tensor '${k}' beyond end of file`);
    const bytes = new Uint8Array(buf.subarray(base + e.offset, base + e.offset + e.bytes)); // copy: alignment
    tensors.set(k, { dtype: e.dtype, dims: e.dims, data: dataFromBytes(e.dtype, bytes) });
  }
  return { meta: header.meta, tensors };
}
