/**
 * VGG16 built by the engine: torchvision's `vgg16` convolutional part (Simonyan & Zisserman 2014, configuration D;
 * torchvision/models/vgg.py), with the paper's pooled features: global average pool of the last conv block → N×512
 * (the 4096-d MLP classifier is not part of the encoder).
 *
 * `features.<i>` indices are torchvision's (and timm's `vgg16.tv_in1k`): each conv is followed by a ReLU, each `M`
 * is a 2×2/2 max pool, so the convs sit at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28. Initialisation as
 * torchvision: kaiming_normal_(fan_out, relu), bias 0, seeded.
 */
import { type GraphBuilder, randn, zeros } from '../engine/ir/builder.js';
import { hashString } from '../util/random.js';

/** Configuration D: channels, or 'M' for a max pool. */
export const VGG16_CFG = [
  64,
  64,
  'M',
  128,
  128,
  'M',
  256,
  256,
  256,
  'M',
  512,
  512,
  512,
  'M',
  512,
  512,
  512,
  'M',
] as const;

export interface Vgg16Options {
  seed: number;
  prefix?: string;
  /** Divides every width (tests build a narrow VGG16); default 1. */
  widthDivisor?: number;
  /** Layer list (channels or 'M'); default configuration D (VGG16). */
  cfg?: readonly (number | 'M')[];
}

/**
 * Appends VGG16's conv part and a global average pool to `b`.
 * @param input N×3×H×W float32 value
 * @returns N×512 features (N×last width for another `cfg`) and the trainable parameters (`features.<i>.weight|bias`, torchvision order)
 */
export function buildVgg16(
  b: GraphBuilder,
  input: string,
  opts: Vgg16Options,
): { features: string; params: string[]; bnNodes: string[] } {
  const prefix = opts.prefix ?? '';
  const div = opts.widthDivisor ?? 1;
  const params: string[] = [];
  let x = input;
  let cin = 3;
  let idx = 0;
  for (const c of opts.cfg ?? VGG16_CFG) {
    if (c === 'M') {
      x = b.op1('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] }, `${prefix}features.${idx}`);
      idx += 1;
      continue;
    }
    const cout = Math.max(1, Math.round(c / div));
    const wn = `${prefix}features.${idx}.weight`;
    const bn = `${prefix}features.${idx}.bias`;
    params.push(b.param(wn, randn([cout, cin, 3, 3], Math.sqrt(2 / (cout * 9)), hashString(`${opts.seed}:${wn}`))));
    params.push(b.param(bn, zeros([cout])));
    x = b.op1('Conv', [x, wn, bn], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, `${prefix}features.${idx}`);
    x = b.op1('Relu', [x], {}, `${prefix}features.${idx + 1}`);
    idx += 2;
    cin = cout;
  }
  const pooled = b.op1('GlobalAveragePool', [x], {}, `${prefix}avgpool`);
  const features = b.op1('Flatten', [pooled], { axis: 1 }, `${prefix}pooled`);
  return { features, params, bnNodes: [] };
}
