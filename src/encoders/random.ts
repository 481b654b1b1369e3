/**
 * `random-resnet18`: the untrained control. A ResNet18 with torchvision's initialisation (kaiming normal fan_out,
 * BN weight 1 / bias 0, running statistics 0 / 1), seeded. None of the paper's tables has it; every pretrained
 * encoder, SSL included, must beat it for pretraining to have been worth anything.
 */
import { resnet18Graph } from './resnet18.js';
import { type Encoder, type EncoderGraph, type EncoderLoadOptions, IMAGENET_PREPROCESS } from './types.js';

/** The control's graph: input N×3×S×S → features N×512, weights drawn from `opts.seed`. */
export async function loadRandomResNet18(opts: EncoderLoadOptions): Promise<EncoderGraph> {
  const width = typeof opts.settings?.width === 'number' ? opts.settings.width : undefined;
  const { graph, result } = resnet18Graph({ seed: opts.seed, cropSize: opts.cropSize, width });
  const dim = 8 * (width ?? 64);
  return {
    graph,
    dim,
    params: result.params,
    bnNodes: result.bnNodes,
    source: {
      builder: 'resnet18',
      init: 'torchvision (kaiming_normal fan_out, BN 1/0)',
      seed: opts.seed,
      width: width ?? 64,
    },
  };
}

/** The floor every pretrained encoder must beat: ResNet18 with torchvision's initialisation, never trained. */
export const RANDOM_RESNET18: Encoder = {
  name: 'random-resnet18',
  label: 'Random ResNet18 (control)',
  kind: 'control',
  dim: 512,
  preprocess: IMAGENET_PREPROCESS,
  description: 'untrained ResNet18 with torchvision initialisation: the floor every pretrained encoder must beat',
  load: loadRandomResNet18,
};
