/**
 * The projector head of Masud et al. 2022 §3.2 ("a fully connected layers (FC layers) as projector … made of 2048
 * dimension FC layers"), laid out per method as solo-learn's `self.projector` (see each method's `projector`).
 *
 * Linear layers are initialised as PyTorch's `nn.Linear` (kaiming_uniform with a = √5, i.e. weight and bias
 * U(−1/√fan_in, 1/√fan_in)), weights stored out×in as PyTorch (`projector.0.weight`, …: solo-learn's names).
 * BatchNorm1d runs in training mode with statistics per view (solo-learn forwards each view separately); it keeps
 * no running statistics because the projector is discarded after pretraining ("only the ResNet18 network was used
 * for downstream tasks").
 */
import { full, type GraphBuilder, randu, zeros } from '../engine/ir/builder.js';
import { groupBatchNorm } from './ops.js';
import type { ProjectorLayer } from './types.js';
import { hashString } from '../util/random.js';

export interface ProjectorOptions {
  inDim: number;
  hiddenDim: number;
  outDim: number;
  /** Images per view (BN statistics are per view). */
  n: number;
  /** Number of views stacked in the input (2). */
  views: number;
  seed: number;
  prefix?: string;
}

/** Seed of one parameter from the run seed and its name (FNV-1a). */
function seedFor(seed: number, name: string): number {
  return hashString(name, (0x811c9dc5 ^ seed) >>> 0);
}

/**
 * Appends the projector to `x` (views·N × inDim) and returns its output (views·N × outDim) and parameters.
 */
export function buildProjector(
  b: GraphBuilder,
  x: string,
  layers: ProjectorLayer[],
  o: ProjectorOptions,
): { z: string; params: string[] } {
  const prefix = o.prefix ?? 'projector.';
  const params: string[] = [];
  let cur = x;
  let width = o.inDim;
  layers.forEach((layer, i) => {
    const p = `${prefix}${i}`;
    if (layer.kind === 'linear') {
      const out = layer.out === 'hidden' ? o.hiddenDim : o.outDim;
      const bound = 1 / Math.sqrt(width);
      const w = b.param(`${p}.weight`, randu([out, width], -bound, bound, seedFor(o.seed, `${p}.weight`)));
      const bias = b.param(`${p}.bias`, randu([out], -bound, bound, seedFor(o.seed, `${p}.bias`)));
      params.push(w, bias);
      cur = b.gemm(cur, w, bias, { transB: true });
      width = out;
    } else if (layer.kind === 'bn') {
      const g = b.param(`${p}.weight`, full([width], 1));
      const be = b.param(`${p}.bias`, zeros([width]));
      params.push(g, be);
      cur = groupBatchNorm(b, cur, o.views, o.n, width, 1e-5, g, be);
    } else {
      cur = b.relu(cur);
    }
  });
  return { z: cur, params };
}

/** Linear → ReLU → Linear (solo-learn SimCLR). */
export const MLP2: ProjectorLayer[] = [
  { kind: 'linear', out: 'hidden' },
  { kind: 'relu' },
  { kind: 'linear', out: 'output' },
];
/** Linear → BN → ReLU → Linear (solo-learn DeepClusterV2, SwAV). */
export const MLP2_BN: ProjectorLayer[] = [
  { kind: 'linear', out: 'hidden' },
  { kind: 'bn' },
  { kind: 'relu' },
  { kind: 'linear', out: 'output' },
];
/** Linear → BN → ReLU → Linear → BN → ReLU → Linear (solo-learn Barlow Twins, VICReg). */
export const MLP3_BN: ProjectorLayer[] = [
  { kind: 'linear', out: 'hidden' },
  { kind: 'bn' },
  { kind: 'relu' },
  { kind: 'linear', out: 'hidden' },
  { kind: 'bn' },
  { kind: 'relu' },
  { kind: 'linear', out: 'output' },
];
