/**
 * Reader for `<model>.ref.json` reference files written by PyTorch for an exported encoder (format in
 * ../shared/README.md): `input`, `features`, `r`, `grad_input` (dL/d input for L = sum(features * r)) and
 * `weight_grads` ({initializer name: dL/dW}). Every tensor is `{shape, data}`, data = base64 of little-endian float32.
 */
import { readFileSync } from 'node:fs';
import { QcbError } from '../../errors.js';

/** A float32 tensor of the reference file. */
export interface RefTensor {
  shape: number[];
  data: Float32Array;
}

export interface EncoderReference {
  input: RefTensor;
  features: RefTensor;
  r: RefTensor;
  gradInput: RefTensor;
  weightGrads: Map<string, RefTensor>;
}

function decode(v: unknown, key: string, file: string): RefTensor {
  const o = v as { shape?: unknown; data?: unknown };
  if (!o || !Array.isArray(o.shape) || typeof o.data !== 'string') {
    throw new QcbError('QCB_REFERENCE', `reference tensor '${key}' is not {shape, data}`, {
      file,
      key,
      fix: 'regenerate the .ref.json file',
    });
  }
  const shape = (o.shape as unknown[]).map(Number);
  const b = Buffer.from(o.data, 'base64');
  // copy: Node pools small Buffers, so the byteOffset may not be 4-aligned
  const data = new Float32Array(b.length / 4);
  new Uint8Array(data.buffer).set(b.subarray(0, data.length * 4));
  const n = shape.reduce((a, c) => a * c, 1);
  if (data.length !== n) {
    throw new QcbError('QCB_REFERENCE', `reference tensor '${key}' has ${data.length} values for shape [${shape}]`, {
      file,
      key,
      fix: 'regenerate the .ref.json file',
    });
  }
  return { shape, data };
}

/** Reads and decodes a .ref.json file. @throws QCB_FILE_NOT_FOUND, QCB_REFERENCE */
export function readReference(file: string): EncoderReference {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const nf = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new QcbError(
      nf ? 'QCB_FILE_NOT_FOUND' : 'QCB_REFERENCE',
      nf ? `reference file not found: ${file}` : `reference file is not valid JSON: ${(e as Error).message}`,
      {
        file,
        cause: e,
        fix: nf ? 'check the --ref path' : 'regenerate the .ref.json file',
      },
    );
  }
  for (const k of ['input', 'features', 'r', 'grad_input', 'weight_grads']) {
    if (!(k in j))
      throw new QcbError('QCB_REFERENCE', `reference file lacks '${k}'`, {
        file,
        key: k,
        allowed: 'input, features, r, grad_input, weight_grads',
        fix: 'regenerate the .ref.json file',
      });
  }
  const wg = new Map<string, RefTensor>();
  for (const [k, v] of Object.entries(j.weight_grads as Record<string, unknown>))
    wg.set(k, decode(v, `weight_grads.${k}`, file));
  return {
    input: decode(j.input, 'input', file),
    features: decode(j.features, 'features', file),
    r: decode(j.r, 'r', file),
    gradInput: decode(j.grad_input, 'grad_input', file),
    weightGrads: wg,
  };
}

/** max|a − b| / max|ref|: the relative error measure used by verify (0 when both are all zero). */
export function maxRelError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  if (got.length !== ref.length) return Number.POSITIVE_INFINITY;
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}
