/**
 * safetensors files (the format timm and Hugging Face publish weights in): an 8-byte little-endian header length,
 * a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}`, then the raw little-endian
 * tensors. Read into float32 engine tensors (F32, F16, BF16, F64 are converted), and mapped by name onto a graph
 * built by the engine (`applyStateDict`), since the engine's builders use torchvision/timm `state_dict` names.
 */
import { readFileSync } from 'node:fs';
import { QcbError } from '../errors.js';
import type { Graph, Tensor } from '../engine/ir/graph.js';
import { writeFileAtomic } from '../util/fs.js';

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, U8: 1, I8: 1, BOOL: 1 };

function fmtErr(file: string, msg: string, key?: string): QcbError {
  return new QcbError('QCB_FILE_FORMAT', msg, {
    file,
    key,
    fix: 'the file is not a complete safetensors file: download it again (qcbench weights fetch NAME)',
  });
}

/** Half-precision bits → float. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** The tensors of a safetensors file, float ones as float32 (integer ones such as `num_batches_tracked` skipped). */
export interface StateDict {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Parses safetensors bytes. @throws QCB_FILE_FORMAT (not safetensors, truncated, unknown dtype) */
export function parseSafetensors(bytes: Uint8Array, file = '<bytes>'): StateDict {
  if (bytes.length < 8) throw fmtErr(file, `file is ${bytes.length} bytes long: too short for a safetensors header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n <= 1 || 8 + n > bytes.length)
    throw fmtErr(file, `header length ${n} does not fit in the ${bytes.length}-byte file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch (e) {
    throw fmtErr(file, `header is not JSON: ${(e as Error).message}`);
  }
  const base = 8 + n;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const e = v as HeaderEntry;
    if (!e || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets))
      throw fmtErr(file, `entry '${name}' is malformed`, name);
    const bpe = BYTES[e.dtype];
    if (!bpe) throw fmtErr(file, `tensor '${name}' has dtype ${e.dtype}, which qcbench does not read`, name);
    const [b0, b1] = e.data_offsets;
    const count = e.shape.reduce((a, c) => a * c, 1);
    if (b1 - b0 !== count * bpe || base + b1 > bytes.length)
      throw fmtErr(
        file,
        `tensor '${name}' data [${b0}, ${b1}) does not match its shape [${e.shape}] or lies past the end of the file (truncated?)`,
        name,
      );
    if (!['F32', 'F16', 'BF16', 'F64'].includes(e.dtype)) continue;
    const raw = bytes.subarray(base + b0, base + b1);
    const rdv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      if (e.dtype === 'F32') out[i] = rdv.getFloat32(i * 4, true);
      else if (e.dtype === 'F64') out[i] = rdv.getFloat64(i * 8, true);
      else if (e.dtype === 'F16') out[i] = halfToFloat(rdv.getUint16(i * 2, true));
      else {
        // bfloat16: the upper half of a float32
        const tmp = new DataView(new ArrayBuffer(4));
        tmp.setUint16(0, rdv.getUint16(i * 2, true), false);
        out[i] = tmp.getFloat32(0, false);
      }
    }
    tensors.set(name, { dtype: 'float32', dims: [...e.shape], data: out });
  }
  return { tensors, metadata };
}

/** Reads a safetensors file. @throws QCB_FILE_NOT_FOUND, QCB_FILE_FORMAT */
export function readSafetensors(path: string): StateDict {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `weights file not found: ${path}`, {
      file: path,
      cause: e,
      fix: 'check the path',
    });
  }
  return parseSafetensors(bytes, path);
}

/** Writes float32 tensors as a safetensors file (atomically), in the order given. */
export function writeSafetensors(
  path: string,
  tensors: Map<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of tensors) {
    const nb = t.data.length * 4;
    header[name] = { dtype: 'F32', shape: t.dims, data_offsets: [off, off + nb] };
    off += nb;
  }
  let h = Buffer.from(JSON.stringify(header));
  // pad the header with spaces to 8 bytes, as the reference writer does (alignment of the data)
  const pad = (8 - (h.length % 8)) % 8;
  if (pad) h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let p = 8 + h.length;
  for (const t of tensors.values()) {
    const f = Float32Array.from(t.data as ArrayLike<number>);
    out.set(new Uint8Array(f.buffer), p);
    p += f.byteLength;
  }
  writeFileAtomic(path, out);
}

/** Prefixes wrappers add to state_dict keys (DataParallel `module.`, Lightning `model.`, timm `backbone.`). */
const STRIP = ['module.', 'model.', 'backbone.', 'encoder.'];

/**
 * Copies a state dict onto a graph's initializers by name: every name in `names` must be present with the same
 * shape (after stripping a wrapper prefix common to all keys). Extra tensors (the classifier `fc.*`,
 * `num_batches_tracked`) are ignored.
 * @returns the names of the file's tensors that were not used
 * @throws QCB_FILE_FORMAT naming the missing or mis-shaped tensors
 */
export function applyStateDict(g: Graph, sd: StateDict, names: readonly string[], file: string): string[] {
  let map = sd.tensors;
  for (const pre of STRIP) {
    const keys = [...map.keys()];
    if (keys.length && keys.every((k) => k.startsWith(pre)) && !names.some((n) => n.startsWith(pre))) {
      map = new Map(keys.map((k) => [k.slice(pre.length), map.get(k)!]));
    }
  }
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const n of names) {
    const t = map.get(n);
    const cur = g.initializers.get(n);
    if (!cur) throw new QcbError('QCB_INTERNAL', `applyStateDict: '${n}' is not an initializer of the graph`);
    if (!t) missing.push(n);
    else if (t.dims.join('×') !== cur.dims.join('×'))
      wrong.push(`${n} [${t.dims.join('×')}] (expected [${cur.dims.join('×')}])`);
    else g.initializers.set(n, t);
  }
  if (missing.length || wrong.length) {
    const parts = [];
    if (missing.length)
      parts.push(
        `${missing.length} tensor(s) missing (${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', …' : ''})`,
      );
    if (wrong.length)
      parts.push(`${wrong.length} of another shape (${wrong.slice(0, 3).join(', ')}${wrong.length > 3 ? ', …' : ''})`);
    throw new QcbError('QCB_FILE_FORMAT', `the weights do not fit the architecture: ${parts.join('; ')}`, {
      file,
      key: missing[0] ?? wrong[0],
      fix: 'use the timm/torchvision weights of this exact architecture (qcbench weights fetch NAME), or an ONNX export',
    });
  }
  const used = new Set(names);
  return [...map.keys()].filter((k) => !used.has(k));
}
