/**
 * ImageNet transfer-learning encoders (Masud et al. 2022 §2.1, §3.2: "For all TL methods, we used a model
 * pre-trained on ImageNet as an encoder"): VGG16, ResNet18, ConvNeXt-Tiny, pooled features 512 / 512 / 768, with
 * ImageNet normalisation.
 *
 * Weights come from the weights folder (see weights.ts): an ONNX export (any torchvision/timm export; a classifier is
 * cut off at the pooled features) or timm/torchvision safetensors mapped onto the engine's own builders (ResNet18,
 * VGG16, ConvNeXt-Tiny: resnet18.ts, vgg16.ts, convnext.ts). Without weights this throws QCB_WEIGHTS_MISSING with the fix command: never
 * random weights under an ImageNet name.
 */
import { QcbError } from '../errors.js';
import { GraphBuilder } from '../engine/ir/builder.js';
import { contentHash } from '../util/fs.js';
import { readFileSync } from 'node:fs';
import { loadOnnxEncoder } from './onnx-file.js';
import { buildConvNext, CONVNEXT_TINY, torchvisionToTimm } from './convnext.js';
import { buildResNet18 } from './resnet18.js';
import { applyStateDict, parseSafetensors } from './safetensors.js';
import { type Encoder, type EncoderGraph, type EncoderLoadOptions, IMAGENET_PREPROCESS } from './types.js';
import { buildVgg16 } from './vgg16.js';
import { findWeights, type ImageNetName, WEIGHTS, weightsDir, weightsMissing } from './weights.js';

/** Builds the engine graph an ImageNet safetensors file maps onto: input N×3×S×S → features N×D. */
function builderGraph(
  name: ImageNetName,
  cropSize: number,
): { b: GraphBuilder; params: string[]; buffers: string[]; bnNodes: string[] } {
  const b = new GraphBuilder(name);
  const input = b.input('input', 'float32', ['N', 3, cropSize, cropSize]);
  if (name === 'resnet18') {
    const r = buildResNet18(b, input, { seed: 0 });
    b.output(r.features, 'features');
    return { b, params: r.params, buffers: r.buffers, bnNodes: r.bnNodes };
  }
  if (name === 'vgg16') {
    const r = buildVgg16(b, input, { seed: 0 });
    b.output(r.features, 'features');
    return { b, params: r.params, buffers: [], bnNodes: [] };
  }
  const r = buildConvNext(b, input, { seed: 0, config: CONVNEXT_TINY });
  b.output(r.features, 'features');
  return { b, params: r.params, buffers: [], bnNodes: [] };
}

/**
 * Loads an ImageNet encoder's weights from the weights folder.
 * @throws QCB_WEIGHTS_MISSING when no file is present (cell skipped with the fix command), QCB_FILE_FORMAT /
 *   QCB_ONNX_* for a file that is present but unusable
 */
export async function loadImageNetEncoder(name: ImageNetName, opts: EncoderLoadOptions): Promise<EncoderGraph> {
  const dir = weightsDir(opts.weightsDir);
  const found = findWeights(name, dir);
  if (!found) throw weightsMissing(name, dir);
  const spec = WEIGHTS[name];
  if (found.format === 'onnx') {
    const eg = loadOnnxEncoder(found.path, opts.cropSize);
    if (eg.dim !== spec.dim) {
      opts.log?.warn(
        `${name}: ${found.path} gives ${eg.dim}-d features, ${name} gives ${spec.dim}-d; is it the right model?`,
        { file: found.path },
      );
    }
    const { info: _info, ...rest } = eg;
    return { ...rest, source: { ...eg.source, encoder: name, format: 'onnx', weights: 'imagenet' } };
  }
  const bytes = readFileSync(found.path);
  const sd = parseSafetensors(bytes, found.path);
  // torchvision's ConvNeXt names differ from timm's (the builder's): rename
  if (name === 'convnext_tiny' && [...sd.tensors.keys()].some((k) => /(^|\.)features\.0\.0\.weight$/.test(k)))
    sd.tensors = torchvisionToTimm(sd.tensors);
  const { b, params, buffers, bnNodes } = builderGraph(name, opts.cropSize);
  const unused = applyStateDict(b.graph, sd, [...params, ...buffers], found.path);
  const graph = b.build();
  opts.log?.debug(`${name}: safetensors mapped onto the engine builder`, { file: found.path, unused: unused.length });
  return {
    graph,
    dim: spec.dim,
    params,
    bnNodes,
    source: {
      file: found.path,
      sha256: contentHash(bytes),
      encoder: name,
      format: 'safetensors',
      weights: 'imagenet',
      unused_tensors: unused,
    },
  };
}

/** What `qcbench weights check` reports per encoder. */
export interface WeightsCheck {
  name: ImageNetName;
  /** ok: present, loads, runs and gives the right width; wrong-dim: runs but another width; broken: does not load/run. */
  status: 'ok' | 'missing' | 'wrong-dim' | 'broken';
  file?: string;
  format?: 'onnx' | 'safetensors';
  expectedDim: number;
  dim?: number;
  message?: string;
  fix?: string;
}

/**
 * Checks an encoder's weights: present? loads (parsed, classifier cut, mapped onto the builder)? runs one forward pass
 * in onnxruntime on a `cropSize` input? gives the paper's feature width?
 */
export async function checkWeights(
  name: ImageNetName,
  o: { weightsDir?: string; cropSize?: number; threads?: number } = {},
): Promise<WeightsCheck> {
  const dir = weightsDir(o.weightsDir);
  const spec = WEIGHTS[name];
  const found = findWeights(name, dir);
  if (!found) {
    const e = weightsMissing(name, dir);
    return { name, status: 'missing', expectedDim: spec.dim, message: e.message, fix: e.context.fix };
  }
  const base = { name, file: found.path, format: found.format, expectedDim: spec.dim };
  const S = o.cropSize ?? 64;
  try {
    const eg = await loadImageNetEncoder(name, { cropSize: S, seed: 0, weightsDir: dir });
    const T = eg.inputSize ?? S;
    const { loadSession, ortF32 } = await import('../engine/runtime/session.js');
    const session = await loadSession(eg.graph, { intraOpNumThreads: o.threads ?? 1, noCache: true });
    const r = await session.run({ input: ortF32(new Float32Array(3 * T * T), [1, 3, T, T]) }, ['features']);
    await session.session.release();
    const got = r.features.dims[1];
    if (got !== spec.dim) {
      return {
        ...base,
        status: 'wrong-dim',
        dim: got,
        message: `gives ${got}-d features, ${name} gives ${spec.dim}`,
        fix: `replace ${found.path} with ${name} weights (qcbench weights fetch ${name})`,
      };
    }
    return { ...base, status: 'ok', dim: got };
  } catch (e) {
    const q = e instanceof QcbError ? e : undefined;
    return {
      ...base,
      status: 'broken',
      message: q ? `${q.code}: ${q.message}` : String(e),
      fix: q?.context.fix ?? `replace ${found.path} (qcbench weights fetch ${name})`,
    };
  }
}

function imagenet(name: ImageNetName, label: string, dim: number, description: string): Encoder {
  return {
    name,
    label,
    kind: 'tl',
    dim,
    weights: name,
    preprocess: IMAGENET_PREPROCESS,
    description,
    load: (o) => loadImageNetEncoder(name, o),
  };
}

/** The paper's transfer-learning encoders (Masud et al. 2022 §3.2): ImageNet weights, pooled features. */
export const IMAGENET_ENCODERS = {
  vgg16: imagenet('vgg16', 'VGG16', 512, 'ImageNet-pretrained VGG16 (Simonyan & Zisserman 2014), pooled conv features'),
  resnet18: imagenet('resnet18', 'ResNet18', 512, 'ImageNet-pretrained ResNet18 (He et al. 2016)'),
  convnext_tiny: imagenet('convnext_tiny', 'ConvNext', 768, 'ImageNet-pretrained ConvNeXt-Tiny (Liu et al. 2022)'),
} satisfies Record<ImageNetName, Encoder>;
