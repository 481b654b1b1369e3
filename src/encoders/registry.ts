/**
 * The encoder registry: every encoder a protocol's `encoders:` may name that is not the output of SSL pretraining
 * (those come from src/ssl/registry.ts through src/runner/catalog.ts), plus any ONNX CNN by path.
 *
 * Adding an encoder: write `src/encoders/<name>.ts` exporting an `Encoder` (name, label, kind, dim, description,
 * preprocess, `load`) and add one line to `ENCODERS` below. The protocol schema, `qcbench validate`, the runner and
 * the report's rows (ordered by kind, then by this map) derive from it.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { QcbError } from '../errors.js';
import { ENCODER_KINDS, type EncoderKind } from '../results/schema.js';
import { lookup } from '../util/suggest.js';
import { CP_QUALITY } from './cp-quality.js';
import { FRACTALDB_RESNET18 } from './fractaldb.js';
import { IMAGENET_ENCODERS } from './imagenet.js';
import { loadOnnxEncoder, preprocessFromMetadata, readEncoderFile, readOnnxMetadata } from './onnx-file.js';
import { RANDOM_RESNET18 } from './random.js';
import { SECOND_ORDER_ENCODERS } from './second-order.js';
import { type Encoder, IMAGENET_PREPROCESS, type Preprocess } from './types.js';

/** Every encoder known by name here. */
export const ENCODERS = {
  ...IMAGENET_ENCODERS,
  'random-resnet18': RANDOM_RESNET18,
  'resnet18-fractaldb': FRACTALDB_RESNET18,
  ...SECOND_ORDER_ENCODERS,
  'cp-quality': CP_QUALITY,
} satisfies Record<string, Encoder>;

export type RegisteredEncoder = keyof typeof ENCODERS;

/**
 * The encoder of an SSL method: the inference ONNX that `qcbench pretrain --method <name>` (or `qcbench run`)
 * exports, passed as `pretrained` when loading.
 */
export function pretrainedEncoder(name: string, label: string, description: string): Encoder {
  return {
    name,
    label,
    kind: 'ssl',
    dim: 512,
    // solo-learn normalises custom data sets with the ImageNet statistics unless told otherwise; an export that
    // records its own statistics in metadata overrides this
    preprocess: IMAGENET_PREPROCESS,
    description,
    load: async (o) => {
      if (!o.pretrained || !existsSync(o.pretrained)) {
        throw new QcbError(
          'QCB_FILE_NOT_FOUND',
          `the '${name}' encoder is the output of SSL pretraining, ${o.pretrained ? `and ${o.pretrained} does not exist` : 'and no pretrained encoder file was given'}`,
          {
            file: o.pretrained,
            key: name,
            fix: `run \`qcbench pretrain --method ${name} --store STORE --out DIR\` and pass DIR/encoder.onnx (qcbench eval --pretrained DIR/encoder.onnx), or let \`qcbench run\` pretrain it`,
          },
        );
      }
      const eg = loadOnnxEncoder(o.pretrained, o.cropSize);
      const { info, ...rest } = eg;
      return { ...rest, source: { ...eg.source, method: name, metadata: info.metadata } };
    },
  };
}

function looksLikePath(s: string): boolean {
  return /\.onnx$/i.test(s) || s.includes('/') || s.includes('\\');
}

/**
 * Any ONNX CNN file as an encoder (input N×3×H×W → pooled features N×D, logits or a feature map; see onnx-file.ts).
 * Label, kind and normalisation come from `as` (a protocol's `{ name, onnx, kind, label }` entry), else from the
 * file's `qcbench.*` metadata, else the file name, `tl` and the ImageNet statistics. The file is read for its
 * metadata now and loaded (graph cut at the features) by `load`.
 * @throws QCB_FILE_NOT_FOUND when the file does not exist
 */
export function onnxFileEncoder(path: string, as: { name?: string; label?: string; kind?: EncoderKind } = {}): Encoder {
  const bytes = as.name
    ? readEncoderFile(
        path,
        `encoders (${as.name}).onnx`,
        'check the onnx path of the encoder (relative to the protocol file), or copy the file there',
      )
    : readEncoderFile(path);
  const meta = readOnnxMetadata(bytes);
  const pre: Preprocess = preprocessFromMetadata(meta) ?? IMAGENET_PREPROCESS;
  const kind =
    as.kind ??
    ((ENCODER_KINDS as readonly string[]).includes(meta['qcbench.kind'] as EncoderKind)
      ? (meta['qcbench.kind'] as EncoderKind)
      : 'tl');
  return {
    name: as.name ?? basename(path).replace(/\.onnx$/i, ''),
    label: as.label ?? (meta['qcbench.label'] || basename(path)),
    kind,
    // unknown until loaded: EncoderGraph.dim is the real width
    dim: 0,
    preprocess: pre,
    description: `ONNX encoder ${path}`,
    load: async (o) => {
      const eg = loadOnnxEncoder(path, o.cropSize);
      const { info, ...rest } = eg;
      return { ...rest, source: { ...eg.source, metadata: info.metadata } };
    },
  };
}

/**
 * An encoder by name in `known` (default: this registry; src/runner/catalog.ts adds the SSL encoders), or any ONNX
 * CNN by path (input N×3×H×W → features, logits or a feature map; see
 * onnx-file.ts). A file's label, kind and normalisation come from its `qcbench.*` metadata when present, else its
 * file name, `tl` and the ImageNet statistics.
 * @throws QCB_UNKNOWN_NAME with "did you mean" for an unknown name; QCB_FILE_NOT_FOUND for a missing file
 */
export function resolveEncoder(nameOrPath: string, known: Readonly<Record<string, Encoder>> = ENCODERS): Encoder {
  if (Object.hasOwn(known, nameOrPath)) return known[nameOrPath];
  if (looksLikePath(nameOrPath) || existsSync(nameOrPath)) return onnxFileEncoder(nameOrPath);
  return lookup(known, nameOrPath, 'encoder', { key: '--encoder' });
}
