/**
 * The engine's graph IR: an ONNX graph held as plain TypeScript data, with static shapes (a dimension is a number, or
 * a string for a symbolic size such as the batch `N`).
 *
 * Values are named by strings as in ONNX. A graph is a list of nodes in topological order, its inputs, outputs and
 * initializers (constant tensors: weights). Shape information for every value lives in `graph.values`.
 */

/** Element types the engine handles (ONNX TensorProto.DataType names, lower case). */
export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

/** A dimension: a number when known, a string for a symbolic size (`'N'`). */
export type Dim = number | string;

/** Typed array backing a tensor of each dtype. float16 is kept as raw Uint16 bits. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int8Array
  | Uint8Array;

/** A constant tensor (initializer, Constant node value, or a tensor attribute). Row-major. */
export interface Tensor {
  dtype: DType;
  dims: number[];
  data: TensorData;
}

/** Type and shape of a value. `shape` undefined means rank unknown. */
export interface ValueInfo {
  name: string;
  dtype: DType;
  shape?: Dim[];
}

/** An ONNX attribute, typed as ONNX types it (an int 1 and a float 1.0 are different attributes). */
export type Attr =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: number[] }
  | { type: 'floats'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: Tensor };

/** One operator application. Empty strings in `inputs` mark omitted optional inputs, as in ONNX. */
export interface Node {
  opType: string;
  /** '' for the default ONNX domain. */
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
}

/** A graph: nodes in topological order plus its interface. */
export interface Graph {
  name: string;
  /** Default-domain opset version the graph targets. */
  opset: number;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  nodes: Node[];
  /** Known type/shape of every value (inputs, initializers, node outputs) when inferred. */
  values: Map<string, ValueInfo>;
  /**
   * The model file the graph was imported from (set by `importOnnx`, kept by `cloneGraph`); the default file named
   * in shape-inference and autodiff errors.
   */
  source?: string;
}

/** Attribute constructors: `attr.ints([1, 1])`, `attr.float(0.1)`. */
export const attr = {
  int: (value: number): Attr => ({ type: 'int', value }),
  float: (value: number): Attr => ({ type: 'float', value }),
  string: (value: string): Attr => ({ type: 'string', value }),
  ints: (value: number[]): Attr => ({ type: 'ints', value }),
  floats: (value: number[]): Attr => ({ type: 'floats', value }),
  strings: (value: string[]): Attr => ({ type: 'strings', value }),
  tensor: (value: Tensor): Attr => ({ type: 'tensor', value }),
};

/** Number of elements of a fully static shape. */
export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** An empty graph. */
export function emptyGraph(name = 'graph', opset = 17): Graph {
  return { name, opset, inputs: [], outputs: [], initializers: new Map(), nodes: [], values: new Map() };
}
