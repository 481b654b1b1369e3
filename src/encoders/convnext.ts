/**
 * ConvNeXt built by the engine (Liu et al. 2022, "A ConvNet for the 2020s"; timm `convnext.py`, torchvision
 * `convnext.py`), the pooled features of the paper's "ConvNext" row: ConvNeXt-Tiny, depths 3-3-9-3, widths
 * 96-192-384-768 → N×768.
 *
 * Architecture: stem conv 4×4/4 + LayerNorm2d → 4 stages (stage i > 0 starts with LayerNorm2d + conv 2×2/2), each
 * block: depthwise conv 7×7 → (channels last) LayerNorm → Linear C→4C → GELU (erf) → Linear 4C→C → ×γ (layer
 * scale) → + residual. Head without classifier: global average pool → LayerNorm2d → flatten. All LayerNorms ε 1e-6.
 * LayerNorm2d is a Transpose to channels-last, LayerNormalization over C, and back.
 *
 * Parameter names are timm's (`stem.0.weight`, `stages.1.downsample.1.weight`, `stages.2.blocks.4.mlp.fc1.weight`,
 * `…gamma`, `head.norm.weight`); `torchvisionToTimm` renames a torchvision state dict onto them. Initialisation
 * (only for training from scratch; pretrained weights replace it): weights N(0, 0.02²) (timm: truncated normal),
 * biases 0, LayerNorm 1/0, γ 1e-6. Seeded.
 */
import { full, type GraphBuilder, randn, zeros } from '../engine/ir/builder.js';
import type { Tensor } from '../engine/ir/graph.js';
import { hashString } from '../util/random.js';

export interface ConvNextConfig {
  depths: number[];
  dims: number[];
}

/** ConvNeXt-Tiny (paper §2.1). */
export const CONVNEXT_TINY: ConvNextConfig = { depths: [3, 3, 9, 3], dims: [96, 192, 384, 768] };

export interface ConvNextOptions {
  seed: number;
  config?: ConvNextConfig;
  /** Layer-scale initial value (timm `ls_init_value`, default 1e-6). */
  layerScaleInit?: number;
}

/**
 * Appends a ConvNeXt (no classifier) to `b`.
 * @param input N×3×H×W float32 (H, W multiples of 32 keep every stage's size exact)
 * @returns N×dims[3] pooled, normalised features and the parameter names (timm state_dict order)
 */
export function buildConvNext(
  b: GraphBuilder,
  input: string,
  opts: ConvNextOptions,
): { features: string; params: string[]; bnNodes: string[] } {
  const cfg = opts.config ?? CONVNEXT_TINY;
  const params: string[] = [];
  const p = (name: string, t: Tensor) => {
    params.push(b.param(name, t));
    return name;
  };
  const w = (name: string, dims: number[]) => p(name, randn(dims, 0.02, hashString(`${opts.seed}:${name}`)));
  const ln = (x: string, name: string, c: number) =>
    b.layerNorm(x, p(`${name}.weight`, full([c], 1)), p(`${name}.bias`, zeros([c])), -1, 1e-6);
  /** LayerNorm over channels of an N×C×H×W map. */
  const ln2d = (x: string, name: string, c: number) =>
    b.transpose(ln(b.transpose(x, [0, 2, 3, 1]), name, c), [0, 3, 1, 2]);
  /** Linear on the last axis: x·Wᵀ + b (W out×in, as torch). */
  const linear = (x: string, name: string, inF: number, outF: number) =>
    b.add(b.matMul(x, b.transpose(w(`${name}.weight`, [outF, inF]), [1, 0])), p(`${name}.bias`, zeros([outF])));
  const gelu = (x: string) =>
    b.mul(b.mul(x, b.scalar(0.5)), b.add(b.op1('Erf', [b.div(x, b.scalar(Math.SQRT2))]), b.scalar(1)));

  const d0 = cfg.dims[0];
  let x = b.conv(input, w('stem.0.weight', [d0, 3, 4, 4]), p('stem.0.bias', zeros([d0])), { strides: [4, 4] });
  x = ln2d(x, 'stem.1', d0);
  let cin = d0;
  cfg.depths.forEach((depth, s) => {
    const c = cfg.dims[s];
    if (s > 0) {
      x = ln2d(x, `stages.${s}.downsample.0`, cin);
      x = b.conv(
        x,
        w(`stages.${s}.downsample.1.weight`, [c, cin, 2, 2]),
        p(`stages.${s}.downsample.1.bias`, zeros([c])),
        { strides: [2, 2] },
      );
    }
    for (let k = 0; k < depth; k++) {
      const m = `stages.${s}.blocks.${k}`;
      const shortcut = x;
      let y = b.conv(x, w(`${m}.conv_dw.weight`, [c, 1, 7, 7]), p(`${m}.conv_dw.bias`, zeros([c])), {
        pads: [3, 3, 3, 3],
        group: c,
      });
      y = b.transpose(y, [0, 2, 3, 1]);
      y = ln(y, `${m}.norm`, c);
      y = gelu(linear(y, `${m}.mlp.fc1`, c, 4 * c));
      y = linear(y, `${m}.mlp.fc2`, 4 * c, c);
      y = b.mul(y, p(`${m}.gamma`, full([c], opts.layerScaleInit ?? 1e-6)));
      x = b.add(b.transpose(y, [0, 3, 1, 2]), shortcut);
    }
    cin = c;
  });
  const pooled = ln2d(b.globalAveragePool(x), 'head.norm', cin);
  return { features: b.flatten(pooled, 1), params, bnNodes: [] };
}

/**
 * Renames a torchvision ConvNeXt state dict (`features.*`, `classifier.*`, `layer_scale` C×1×1) to timm's names
 * (`stem.*`, `stages.*`, `head.*`, `gamma` C), the names `buildConvNext` uses. Keys it does not know are kept.
 */
export function torchvisionToTimm(sd: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of sd) {
    let m: RegExpMatchArray | null;
    let name = k;
    let tensor = t;
    if ((m = k.match(/^features\.0\.([01])\.(weight|bias)$/))) name = `stem.${m[1]}.${m[2]}`;
    else if ((m = k.match(/^features\.(\d+)\.(\d+)\.layer_scale$/)) && Number(m[1]) % 2 === 1) {
      name = `stages.${(Number(m[1]) - 1) / 2}.blocks.${m[2]}.gamma`;
      tensor = { ...t, dims: [t.dims[0]] };
    } else if ((m = k.match(/^features\.(\d+)\.(\d+)\.block\.(\d+)\.(weight|bias)$/)) && Number(m[1]) % 2 === 1) {
      const sub = { '0': 'conv_dw', '2': 'norm', '3': 'mlp.fc1', '5': 'mlp.fc2' }[m[3]];
      if (sub) name = `stages.${(Number(m[1]) - 1) / 2}.blocks.${m[2]}.${sub}.${m[4]}`;
    } else if ((m = k.match(/^features\.(\d+)\.([01])\.(weight|bias)$/)) && Number(m[1]) % 2 === 0) {
      name = `stages.${Number(m[1]) / 2}.downsample.${m[2]}.${m[3]}`;
    } else if ((m = k.match(/^classifier\.0\.(weight|bias)$/))) name = `head.norm.${m[1]}`;
    else if ((m = k.match(/^classifier\.2\.(weight|bias)$/))) name = `head.fc.${m[1]}`;
    out.set(name, tensor);
  }
  return out;
}
