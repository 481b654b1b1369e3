/**
 * IR → ONNX ModelProto bytes: ir_version matched to the opset, opset_import for every domain used, initializers as
 * raw_data, inputs/outputs with (symbolic) shapes and value_info for intermediate values.
 */
import p from 'onnx-proto';
import type { Attr, Dim, Graph, Tensor, ValueInfo } from '../ir/graph.js';
import { bytesOf, ONNX_TYPE_CODE } from './dtypes.js';

const { onnx } = p;

export interface ExportOptions {
  /** Write value_info for intermediate values (default true). */
  valueInfo?: boolean;
  /** producer_name (default 'qcbench'). */
  producer?: string;
  /** Extra metadata_props. */
  metadata?: Record<string, string>;
}

/** IR version that introduced support for each default-domain opset (onnx/helper.py VERSION_TABLE). */
function irVersionFor(opset: number): number {
  if (opset <= 8) return 3;
  if (opset <= 9) return 4;
  if (opset <= 10) return 5;
  if (opset <= 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

/** TensorProto for an engine tensor (raw_data little-endian). */
export function tensorToProto(name: string, t: Tensor): p.onnx.ITensorProto {
  return {
    name,
    dataType: ONNX_TYPE_CODE[t.dtype],
    dims: t.dims,
    rawData: bytesOf(t.data),
  };
}

function dimProto(d: Dim): p.onnx.TensorShapeProto.IDimension {
  return typeof d === 'number' ? { dimValue: d } : { dimParam: d };
}

function valueInfoProto(v: ValueInfo): p.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: ONNX_TYPE_CODE[v.dtype],
        shape: v.shape ? { dim: v.shape.map(dimProto) } : undefined,
      },
    },
  };
}

function attrProto(name: string, a: Attr): p.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  const enc = new TextEncoder();
  switch (a.type) {
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'string':
      return { name, type: T.STRING, s: enc.encode(a.value) };
    case 'ints':
      return { name, type: T.INTS, ints: a.value };
    case 'floats':
      return { name, type: T.FLOATS, floats: a.value };
    case 'strings':
      return { name, type: T.STRINGS, strings: a.value.map((s) => enc.encode(s)) };
    case 'tensor':
      return { name, type: T.TENSOR, t: tensorToProto('', a.value) };
  }
}

/** Builds the ModelProto message (for callers that want to inspect it before encoding). */
export function toModelProto(graph: Graph, opts: ExportOptions = {}): p.onnx.IModelProto {
  const io = new Set<string>([
    ...graph.inputs.map((v) => v.name),
    ...graph.outputs.map((v) => v.name),
    ...graph.initializers.keys(),
  ]);
  const domains = new Map<string, number>([['', graph.opset]]);
  for (const n of graph.nodes) {
    if (n.domain && !domains.has(n.domain)) domains.set(n.domain, 1);
  }
  const outputs = graph.outputs.map((o) => {
    const v = graph.values.get(o.name);
    return valueInfoProto(v ? { ...v, name: o.name } : o);
  });
  const valueInfo: p.onnx.IValueInfoProto[] = [];
  if (opts.valueInfo ?? true) {
    for (const [name, v] of graph.values) if (!io.has(name) && v.shape) valueInfo.push(valueInfoProto(v));
  }
  return {
    irVersion: irVersionFor(graph.opset),
    producerName: opts.producer ?? 'qcbench',
    producerVersion: '0.1.0',
    opsetImport: [...domains].map(([domain, version]) => ({ domain, version })),
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: graph.nodes.map((n) => ({
        opType: n.opType,
        domain: n.domain,
        name: n.name,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, a]) => attrProto(k, a)),
      })),
      initializer: [...graph.initializers].map(([name, t]) => tensorToProto(name, t)),
      input: graph.inputs.map(valueInfoProto),
      output: outputs,
      valueInfo,
    },
  };
}

/** Serialises the graph as ONNX ModelProto bytes that onnxruntime loads. */
export function exportOnnx(graph: Graph, opts: ExportOptions = {}): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(toModelProto(graph, opts) as p.onnx.ModelProto)).finish();
}
