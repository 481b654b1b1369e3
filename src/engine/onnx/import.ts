/**
 * ONNX ModelProto → IR. Reads what PyTorch / timm exporters write (opsets 13–17+): initializers as raw_data or typed
 * lists (int64 arrives as protobufjs `Long`), Constant nodes (turned into initializers), Identity (folded by default),
 * symbolic input dims. External data is refused with a clear error; a malformed or truncated file is QCB_ONNX_PARSE.
 */
import { readFileSync, statSync } from 'node:fs';
import p from 'onnx-proto';
import { QcbError } from '../../errors.js';
import type { Attr, Dim, DType, Graph, Node, Tensor, TensorData, ValueInfo } from '../ir/graph.js';
import { emptyGraph } from '../ir/graph.js';
import { inferShapes } from '../ir/shapes.js';
import { allocData, DTYPE_BYTES, dataFromBytes, dtypeFromCode } from './dtypes.js';

const { onnx } = p;

export interface ImportOptions {
  /**
   * Fold Identity nodes (default true): an Identity of an initializer becomes its own initializer (a copy, since
   * PyTorch's exporter deduplicates equal-valued parameters that are separate in the model); other Identities are
   * bypassed unless they produce a graph output.
   */
  foldIdentity?: boolean;
  /** Run shape inference after import (default true). */
  inferShapes?: boolean;
  /** File name for error messages when importing bytes. */
  file?: string;
}

type Longish = number | { toNumber(): number } | { low: number; high: number };

function toNum(v: Longish | null | undefined): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  if ('toNumber' in v) return v.toNumber();
  return Number(v);
}

function parseErr(file: string | undefined, msg: string, cause?: unknown): QcbError {
  return new QcbError('QCB_ONNX_PARSE', msg, {
    file,
    cause,
    fix: 'the file is not a complete ONNX model: re-export it (torch.onnx.export) or re-download it',
  });
}

/** Converts a TensorProto to an engine tensor. */
export function tensorFromProto(tp: p.onnx.ITensorProto, file?: string, owner?: string): Tensor {
  const name = tp.name || owner || '';
  if (tp.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (tp.externalData && tp.externalData.length > 0)) {
    throw new QcbError(
      'QCB_ONNX_PARSE',
      `tensor '${name}' keeps its data in an external file, which is not supported`,
      {
        file,
        key: name,
        fix: 'save the model with all tensors inside the .onnx file (onnx.save_model(m, path, save_as_external_data=False)), or export a model under 2 GB',
      },
    );
  }
  const code = tp.dataType ?? 0;
  const dtype = dtypeFromCode(code);
  if (!dtype) {
    throw new QcbError(
      'QCB_ONNX_PARSE',
      `tensor '${name}' has ONNX data type ${code}, which the engine does not handle`,
      {
        file,
        key: name,
        value: code,
        allowed: 'float32, float64, float16, int64, int32, int8, uint8, bool',
        fix: 'export the model in float32',
      },
    );
  }
  const dims = (tp.dims ?? []).map((d) => toNum(d as Longish));
  const n = dims.reduce((a, b) => a * b, 1);
  const size = DTYPE_BYTES[dtype];
  const countErr = (field: string, found: number, unit = 'elements') =>
    new QcbError(
      'QCB_ONNX_PARSE',
      `${owner ? 'tensor' : 'initializer'} '${name}' (${dtype}, dims [${dims.join(', ')}]) should hold ${unit === 'bytes' ? n * size : n} ${unit} in ${field} but holds ${found}: the file is truncated or corrupt`,
      {
        file,
        key: name,
        value: { expected: unit === 'bytes' ? n * size : n, found, field },
        fix: 're-export the model (torch.onnx.export) or re-download it; a model file edited by hand must keep each tensor’s data length equal to the product of its dims',
      },
    );
  let data: TensorData;
  if (tp.rawData && tp.rawData.length > 0) {
    if (tp.rawData.length !== n * size) throw countErr('raw_data', tp.rawData.length, 'bytes');
    data = dataFromBytes(dtype, tp.rawData);
  } else {
    data = allocData(dtype, n);
    switch (dtype) {
      case 'float32': {
        const src = tp.floatData ?? [];
        if (src.length !== n) throw countErr('float_data', src.length);
        (data as Float32Array).set(src);
        break;
      }
      case 'float64': {
        const src = tp.doubleData ?? [];
        if (src.length !== n) throw countErr('double_data', src.length);
        (data as Float64Array).set(src);
        break;
      }
      case 'int64': {
        const src = tp.int64Data ?? [];
        if (src.length !== n) throw countErr('int64_data', src.length);
        const d = data as BigInt64Array;
        for (let i = 0; i < src.length; i++) {
          const v = src[i] as Longish;
          d[i] =
            typeof v === 'number'
              ? BigInt(v)
              : 'low' in v
                ? (BigInt(v.high) << 32n) | BigInt(v.low >>> 0)
                : BigInt(v.toNumber());
        }
        break;
      }
      default: {
        // int32, int8, uint8, bool and float16 (as bits) are stored in int32_data
        const src = tp.int32Data ?? [];
        if (src.length !== n) throw countErr('int32_data', src.length);
        const d = data as Int32Array | Int8Array | Uint8Array | Uint16Array;
        for (let i = 0; i < src.length; i++) d[i] = src[i];
      }
    }
  }
  if (data.length !== n) {
    throw parseErr(
      file,
      `tensor '${name}' declares ${n} elements (dims [${dims}]) but holds ${data.length}: the file is truncated or corrupt`,
    );
  }
  return { dtype, dims, data };
}

function attrFromProto(a: p.onnx.IAttributeProto, node: string, file?: string): Attr | undefined {
  const T = onnx.AttributeProto.AttributeType;
  const dec = new TextDecoder();
  switch (a.type) {
    case T.INT:
      return { type: 'int', value: toNum(a.i as Longish) };
    case T.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case T.STRING:
      return { type: 'string', value: dec.decode(a.s ?? new Uint8Array()) };
    case T.INTS:
      return { type: 'ints', value: (a.ints ?? []).map((v) => toNum(v as Longish)) };
    case T.FLOATS:
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case T.STRINGS:
      return { type: 'strings', value: (a.strings ?? []).map((s) => dec.decode(s)) };
    case T.TENSOR:
      return { type: 'tensor', value: tensorFromProto(a.t ?? {}, file, `${node}.${a.name}`) };
    default:
      throw new QcbError(
        'QCB_ONNX_UNSUPPORTED_OP',
        `node '${node}' has attribute '${a.name}' of ONNX type ${a.type} (graph/sparse/type attributes: control flow), which the engine does not handle`,
        {
          file,
          key: `${node}.${a.name}`,
          fix: 'export the model without control flow (If/Loop/Scan); torch.onnx.export of a CNN encoder in eval mode does not use them',
        },
      );
  }
}

function valueInfoFromProto(v: p.onnx.IValueInfoProto, file?: string): ValueInfo {
  const name = v.name ?? '';
  const tt = v.type?.tensorType;
  if (!tt) {
    throw new QcbError('QCB_ONNX_PARSE', `value '${name}' is not a tensor (sequence/map types are not supported)`, {
      file,
      key: name,
    });
  }
  const dtype = dtypeFromCode(tt.elemType ?? 0);
  if (!dtype) {
    throw new QcbError(
      'QCB_ONNX_PARSE',
      `value '${name}' has ONNX element type ${tt.elemType}, which the engine does not handle`,
      {
        file,
        key: name,
        fix: 'export the model in float32',
      },
    );
  }
  const vi: ValueInfo = { name, dtype };
  if (tt.shape) {
    vi.shape = (tt.shape.dim ?? []).map((d, i): Dim => {
      if (d.dimParam) return d.dimParam;
      // protobuf decodes an absent dim_value as 0: treat 0 as an unnamed symbolic dim
      const n = toNum(d.dimValue as Longish);
      return n > 0 ? n : `${name}_d${i}`;
    });
  }
  return vi;
}

/**
 * Imports an ONNX model from bytes or a file path into the IR, shapes inferred.
 * @throws QCB_FILE_NOT_FOUND, QCB_ONNX_PARSE (malformed, truncated, external data), QCB_ONNX_UNSUPPORTED_OP.
 */
export function importOnnx(src: Uint8Array | string, opts: ImportOptions = {}): Graph {
  let bytes: Uint8Array;
  let file = opts.file;
  if (typeof src === 'string') {
    file = src;
    try {
      if (!statSync(src).isFile()) throw new Error('not a file');
      bytes = readFileSync(src);
    } catch (e) {
      throw new QcbError('QCB_FILE_NOT_FOUND', `ONNX model file not found: ${src}`, {
        file: src,
        cause: e,
        fix: 'check the path',
      });
    }
  } else bytes = src;
  let model: p.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw parseErr(file, `cannot parse ONNX model: ${(e as Error).message}`, e);
  }
  const g = model.graph;
  if (!g || (g.node ?? []).length === 0 || (g.output ?? []).length === 0) {
    throw parseErr(file, 'the file holds no ONNX graph with nodes and outputs');
  }
  let opset = 0;
  for (const o of model.opsetImport ?? []) {
    if (!o.domain || o.domain === 'ai.onnx') opset = toNum(o.version as Longish);
  }
  if (opset === 0) throw parseErr(file, 'the model declares no default-domain opset (opset_import)');
  if (opset < 7) {
    throw new QcbError('QCB_ONNX_PARSE', `opset ${opset} is too old`, {
      file,
      value: opset,
      allowed: 'opset 7 or newer (13–17+ tested)',
      fix: 'export with opset_version=13 or newer',
    });
  }

  const graph = emptyGraph(g.name || 'graph', opset);
  if (file !== undefined) graph.source = file;
  for (const t of g.initializer ?? []) {
    graph.initializers.set(t.name ?? '', tensorFromProto(t, file));
  }
  if ((g.sparseInitializer ?? []).length > 0) throw parseErr(file, 'sparse initializers are not supported');
  for (const v of g.input ?? []) {
    if (graph.initializers.has(v.name ?? '')) continue; // IR < 4 lists initializers as inputs too
    graph.inputs.push(valueInfoFromProto(v, file));
  }
  graph.outputs = (g.output ?? []).map((v) => valueInfoFromProto(v, file));
  const outputNames = new Set(graph.outputs.map((o) => o.name));

  const fold = opts.foldIdentity ?? true;
  const rename = new Map<string, string>();
  const rn = (s: string) => rename.get(s) ?? s;
  let idx = 0;
  for (const np of g.node ?? []) {
    const opType = np.opType ?? '';
    const name = np.name || `${opType}_${idx}`;
    idx++;
    const attrs: Record<string, Attr> = {};
    for (const a of np.attribute ?? []) {
      const v = attrFromProto(a, name, file);
      if (v) attrs[a.name ?? ''] = v;
    }
    const node: Node = {
      opType,
      domain: np.domain === 'ai.onnx' ? '' : (np.domain ?? ''),
      name,
      inputs: (np.input ?? []).map(rn),
      outputs: [...(np.output ?? [])],
      attrs,
    };
    if (
      opType === 'Constant' &&
      node.domain === '' &&
      attrs.value?.type === 'tensor' &&
      !outputNames.has(node.outputs[0])
    ) {
      graph.initializers.set(node.outputs[0], attrs.value.value);
      continue;
    }
    if (opType === 'Constant' && node.domain === '' && !outputNames.has(node.outputs[0])) {
      const t = constantScalarTensor(attrs);
      if (t) {
        graph.initializers.set(node.outputs[0], t);
        continue;
      }
    }
    if (fold && opType === 'Identity' && node.domain === '' && !outputNames.has(node.outputs[0])) {
      const src = node.inputs[0];
      const init = graph.initializers.get(src);
      if (init)
        graph.initializers.set(node.outputs[0], { dtype: init.dtype, dims: [...init.dims], data: init.data.slice() });
      else rename.set(node.outputs[0], src);
      continue;
    }
    graph.nodes.push(node);
  }
  for (const o of graph.outputs) {
    if (rename.has(o.name)) throw new QcbError('QCB_INTERNAL', `graph output '${o.name}' was folded`);
  }
  if (opts.inferShapes ?? true) inferShapes(graph, { file });
  return graph;
}

function constantScalarTensor(attrs: Record<string, Attr>): Tensor | undefined {
  const a = attrs.value_float ?? attrs.value_floats ?? attrs.value_int ?? attrs.value_ints;
  if (!a) return undefined;
  const dtype: DType = a.type === 'float' || a.type === 'floats' ? 'float32' : 'int64';
  const vals = Array.isArray(a.value) ? (a.value as number[]) : [a.value as number];
  const dims = Array.isArray(a.value) ? [vals.length] : [];
  const data = dtype === 'float32' ? Float32Array.from(vals) : BigInt64Array.from(vals.map((v) => BigInt(v)));
  return { dtype, dims, data };
}
