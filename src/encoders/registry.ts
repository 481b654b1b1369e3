/**
 * The encoder registry: every name a protocol's `encoders:` may list (src/protocol/catalog.ts), each mapped to the
 * file that provides it. `resolveEncoder` also takes a path to any ONNX CNN (`--encoder path.onnx`).
 *
 * The second-order CNNs `soq-cnn` / `foq-cnn` (Fan et al. 2017) live in second-order.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { QcbError } from '../errors.js';
import { ENCODERS as CATALOG, type SslMethodName } from '../protocol/catalog.js';
import type { EncoderKind } from '../results/schema.js';
import { lookup } from '../util/suggest.js';
import { loadFractalDbResNet18 } from './fractaldb.js';
import { loadImageNetEncoder } from './imagenet.js';
import { loadOnnxEncoder, preprocessFromMetadata, readOnnxMetadata } from './onnx-file.js';
import { loadRandomResNet18 } from './random.js';
import { SECOND_ORDER_ENCODERS } from './second-order.js';
import {
  type Encoder,
  type EncoderGraph,
  type EncoderLoadOptions,
  IMAGENET_PREPROCESS,
  type Preprocess,
} from './types.js';
import type { ImageNetName } from './weights.js';

function imagenet(name: ImageNetName): Encoder {
  const c = CATALOG[name];
  return {
    name,
    label: c.label,
    kind: c.kind,
    dim: c.dim,
    preprocess: IMAGENET_PREPROCESS,
    description: c.description,
    load: (o) => loadImageNetEncoder(name, o),
  };
}

/** An SSL encoder: the inference ONNX exported by `qcbench pretrain --method <name>` (SSL engineer's src/ssl/). */
function ssl(name: SslMethodName): Encoder {
  const c = CATALOG[name];
  return {
    name,
    label: c.label,
    kind: c.kind,
    dim: c.dim,
    // solo-learn normalises custom data sets with the ImageNet statistics unless told otherwise; an export that
    // records its own statistics in metadata overrides this (see loadSslEncoder)
    preprocess: IMAGENET_PREPROCESS,
    description: c.description,
    load: (o) => loadSslEncoder(name, o),
  };
}

async function loadSslEncoder(name: string, o: EncoderLoadOptions): Promise<EncoderGraph> {
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
}

/** Every encoder the benchmark knows by name (names match src/protocol/catalog.ts). */
export const ENCODERS = {
  vgg16: imagenet('vgg16'),
  resnet18: imagenet('resnet18'),
  convnext_tiny: imagenet('convnext_tiny'),
  simclr: ssl('simclr'),
  barlow_twins: ssl('barlow_twins'),
  vicreg: ssl('vicreg'),
  deepclusterv2: ssl('deepclusterv2'),
  swav: ssl('swav'),
  'random-resnet18': {
    name: 'random-resnet18',
    label: CATALOG['random-resnet18'].label,
    kind: CATALOG['random-resnet18'].kind,
    dim: CATALOG['random-resnet18'].dim,
    preprocess: IMAGENET_PREPROCESS,
    description: CATALOG['random-resnet18'].description,
    load: loadRandomResNet18,
  },
  'resnet18-fractaldb': {
    name: 'resnet18-fractaldb',
    label: CATALOG['resnet18-fractaldb'].label,
    kind: CATALOG['resnet18-fractaldb'].kind,
    dim: CATALOG['resnet18-fractaldb'].dim,
    preprocess: IMAGENET_PREPROCESS,
    description: CATALOG['resnet18-fractaldb'].description,
    load: loadFractalDbResNet18,
  },
  ...SECOND_ORDER_ENCODERS,
} satisfies Record<string, Encoder>;

export type RegisteredEncoder = keyof typeof ENCODERS;

const KINDS: readonly EncoderKind[] = ['tl', 'ssl', 'control', 'supervised-synthetic', 'scratch'];

/** True when `s` names a file rather than a registry entry. */
function looksLikePath(s: string): boolean {
  return /\.onnx$/i.test(s) || s.includes('/') || s.includes('\\');
}

/**
 * An encoder by registry name, or any ONNX CNN by path (input N×3×H×W → features, logits or a feature map; see
 * onnx-file.ts). A file's label, kind and normalisation come from its `qcbench.*` metadata when present, else its
 * file name, `tl` and the ImageNet statistics.
 * @throws QCB_UNKNOWN_NAME with "did you mean" for an unknown name; QCB_FILE_NOT_FOUND for a missing file
 */
export function resolveEncoder(nameOrPath: string): Encoder {
  if (Object.hasOwn(ENCODERS, nameOrPath)) return ENCODERS[nameOrPath as RegisteredEncoder];
  if (looksLikePath(nameOrPath) || existsSync(nameOrPath)) {
    if (!existsSync(nameOrPath)) {
      throw new QcbError('QCB_FILE_NOT_FOUND', `encoder file not found: ${nameOrPath}`, {
        file: nameOrPath,
        key: '--encoder',
        fix: 'give an existing .onnx file or an encoder name',
      });
    }
    const meta = readOnnxMetadata(readFileSync(nameOrPath));
    const pre: Preprocess = preprocessFromMetadata(meta) ?? IMAGENET_PREPROCESS;
    const kind = KINDS.includes(meta['qcbench.kind'] as EncoderKind) ? (meta['qcbench.kind'] as EncoderKind) : 'tl';
    const path = nameOrPath;
    return {
      name: basename(path).replace(/\.onnx$/i, ''),
      label: meta['qcbench.label'] || basename(path),
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
  return lookup(ENCODERS, nameOrPath, 'encoder', { key: '--encoder' });
}
