/**
 * The pretrained encoder's export: the ResNet18 backbone alone (torchvision parameter names, BN in inference mode)
 * with the trained weights, as an ONNX model `input` N×3×S×S → `features` N×512 carrying qcbench metadata (kind
 * `ssl`, the preprocessing, the method and settings hash) that src/encoders/registry.ts reads back. An encoder whose
 * features are non-finite or collapsed is refused (a diverged pretraining is a failure, not an encoder).
 */
import { resnet18Graph } from '../../encoders/resnet18.js';
import type { Graph, Tensor } from '../../engine/ir/graph.js';
import { exportOnnx } from '../../engine/onnx/export.js';
import { loadSession, ortF32 } from '../../engine/runtime/session.js';
import { QcbError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { SSL_PREPROCESS } from './options.js';

/** The backbone (torchvision names) as a standalone inference graph with the given weights. */
export function backboneGraph(params: Map<string, Tensor>, seed: number): Graph {
  const { graph } = resnet18Graph({ seed, weights: params });
  for (const k of [...graph.initializers.keys()]) {
    const t = params.get(k);
    if (t) graph.initializers.set(k, t);
  }
  return graph;
}

/** One batch of preprocessed pretraining crops, n×3×S×S float32: what the encoder check runs the backbone on. */
export interface CheckBatch {
  data: Float32Array;
  n: number;
  size: number;
}

/**
 * Collapse threshold: an encoder has collapsed when every feature dimension's standard deviation across the check
 * batch is at most this fraction of the mean feature magnitude. float32 rounding alone gives ~1e-7 on identical
 * inputs, while distinct crops through a working (even untrained) ResNet18 spread by ~1e-1 of the magnitude; 1e-4
 * sits orders of magnitude from both. All-zero features (an all-zero encoder) count as collapsed.
 */
export const COLLAPSE_REL_STD = 1e-4;

/**
 * Why features of n crops (n×d, row-major) are unusable — a non-finite value, or every dimension constant across
 * the crops (see {@link COLLAPSE_REL_STD}) — or undefined when they are fine.
 */
export function featureProblem(f: Float32Array, n: number, d: number): string | undefined {
  for (let i = 0; i < f.length; i++)
    if (!Number.isFinite(f[i]))
      return `its features are non-finite (${f[i]} in dimension ${i % d} of crop ${Math.floor(i / d)})`;
  if (n < 2) return undefined;
  let absSum = 0;
  for (let i = 0; i < f.length; i++) absSum += Math.abs(f[i]);
  const meanAbs = absSum / f.length;
  let maxStd = 0;
  for (let j = 0; j < d; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += f[i * d + j];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (f[i * d + j] - m) ** 2;
    maxStd = Math.max(maxStd, Math.sqrt(v / n));
  }
  if (maxStd <= COLLAPSE_REL_STD * meanAbs)
    return `its features collapsed: every one of ${d} dimensions is constant across ${n} crops (largest std ${maxStd.toExponential(2)} ≤ ${COLLAPSE_REL_STD} × mean |feature| ${meanAbs.toExponential(2)})`;
  return undefined;
}

/**
 * Runs the backbone with `params` (the exported inference graph) on the check batch.
 * @returns why the encoder is unusable (non-finite or collapsed features), or undefined when it is fine
 */
export async function backboneProblem(
  params: Map<string, Tensor>,
  seed: number,
  batch: CheckBatch,
  threads?: number,
): Promise<string | undefined> {
  const sess = await loadSession(backboneGraph(params, seed), { intraOpNumThreads: threads, noCache: true });
  try {
    const { n, size } = batch;
    const out = await sess.run({ input: ortF32(batch.data, [n, 3, size, size]) }, ['features']);
    const f = out.features.data as Float32Array;
    return featureProblem(f, n, f.length / n);
  } finally {
    await sess.session.release();
  }
}

/**
 * Writes the backbone as `input` N×3×S×S → `features` N×512 ONNX with qcbench metadata, after checking its features
 * on `check` (one batch of the pretraining crops).
 * @throws QCB_DIVERGED, writing nothing, when the features are non-finite or collapsed
 */
export async function exportBackbone(
  path: string,
  params: Map<string, Tensor>,
  seed: number,
  metadata: Record<string, string>,
  check: CheckBatch,
  threads?: number,
): Promise<void> {
  const problem = await backboneProblem(params, seed, check, threads);
  if (problem) {
    throw new QcbError('QCB_DIVERGED', `refusing to export the encoder to ${path}: ${problem}`, {
      file: path,
      key: 'pretrain.lr',
      fix: 'the pretraining diverged or collapsed: lower the learning rate (`pretrain.lr` in a protocol, --lr of qcbench pretrain) and pretrain again',
    });
  }
  const g = backboneGraph(params, seed);
  writeFileAtomic(
    path,
    exportOnnx(g, {
      metadata: {
        'qcbench.kind': 'ssl',
        'qcbench.preprocess.mean': JSON.stringify(SSL_PREPROCESS.mean),
        'qcbench.preprocess.std': JSON.stringify(SSL_PREPROCESS.std),
        ...metadata,
      },
    }),
  );
}
