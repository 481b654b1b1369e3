/**
 * ONNX TensorProto data type codes ↔ engine dtypes, and typed-array helpers shared by import, export and runtime.
 */
import type { DType, TensorData } from '../ir/graph.js';

/** ONNX TensorProto.DataType code of each engine dtype. */
export const ONNX_TYPE_CODE = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
} satisfies Record<DType, number>;

const CODE_TO_DTYPE = new Map<number, DType>(Object.entries(ONNX_TYPE_CODE).map(([k, v]) => [v, k as DType]));

/** Engine dtype of an ONNX data type code, or undefined when the engine does not handle it. */
export function dtypeFromCode(code: number): DType | undefined {
  return CODE_TO_DTYPE.get(code);
}

/** Bytes per element. */
export const DTYPE_BYTES = {
  float32: 4,
  float64: 8,
  float16: 2,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
} satisfies Record<DType, number>;

/** A zero-filled typed array of `n` elements for `dtype`. */
export function allocData(dtype: DType, n: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'float16':
      return new Uint16Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
  }
}

/**
 * Views little-endian bytes as a typed array of `dtype`, copying so the result is aligned and owns its memory.
 * @throws RangeError when the byte length is not a whole number of elements (callers reading files check the
 *   length first and report the file; this guards against silently dropping trailing bytes).
 */
export function dataFromBytes(dtype: DType, bytes: Uint8Array): TensorData {
  const size = DTYPE_BYTES[dtype];
  if (bytes.length % size !== 0) {
    throw new RangeError(`${bytes.length} bytes are not a whole number of ${dtype} elements (${size} bytes each)`);
  }
  const out = allocData(dtype, bytes.length / size);
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes.subarray(0, out.byteLength));
  return out;
}

/** The bytes of a typed array (a view, no copy). */
export function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** onnxruntime-node's tensor type string for a dtype. */
export const ORT_TYPE = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  int64: 'int64',
  int32: 'int32',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
} satisfies Record<DType, string>;
