/**
 * Small-plane convolutions with trained weights, lowered to one batch-wide GEMM for the training step.
 *
 * Why: onnxruntime's CPU Conv prepacks constant weights into its blocked NCHWc kernels, but a weight that is a graph
 * input (every trainable conv in a training step) takes the generic path, which runs one im2col + GEMM per image.
 * Where the output plane is small (ResNet18's layer3/4 at 128×128 crops, most layers at 64×64), those per-image
 * GEMMs are a few columns wide and run 5–15× below the prepacked speed (measured on this 2-core machine: a 512→512
 * 3×3 conv on 2×2 planes, N = 64: 3 GFLOP/s with W as input, ≈40 with W constant, ≈30 as one GEMM over the batch).
 *
 * The lowering, for a 2-D Conv with group 1, W K×C×kh×kw and output Ho×Wo:
 *   Xt = Transpose(X) C×N×H×W → Pad → kh·kw strided Slices C×N×Ho×Wo → Concat on a new axis 1 → C·kh·kw × N·Ho·Wo
 *   Y  = Transpose(Reshape(Reshape(W, K × C·kh·kw) · cols, K×N×Ho×Wo)) (+ B)
 * The order C-major then tap matches W's row-major layout, so the weight is only reshaped. Every op has a gradient
 * rule, so the backward pass (dW = dY·colsᵀ and dcols = Wᵀ·dY, both batch-wide GEMMs; col2im = Slice adjoints) comes
 * from the same autodiff. The inference export keeps the original Conv (constant weights, prepacked).
 */
import { GraphBuilder } from '../ir/builder.js';
import { attr, type Graph, type Node } from '../ir/graph.js';

/** Output planes (Ho·Wo) up to this size are lowered; above it the per-image GEMMs are wide enough. */
export const CONV_GEMM_MAX_PLANE = 16 * 16;

function ints(n: Node, k: string): number[] | undefined {
  const a = n.attrs[k];
  return a && a.type === 'ints' ? a.value : undefined;
}

/**
 * Rewrites, in place, each selected Conv node (2-D, group 1, static spatial sizes, no auto_pad other than NOTSET or
 * VALID) whose output plane is at most `maxPlane` into the batch-wide GEMM form above. Needs `graph.values`
 * (run inferShapes first). Returns the number of nodes rewritten.
 * @param dynamicWeight true for weight names that are graph inputs (trainable), the only case worth lowering
 */
export function lowerSmallConvs(
  graph: Graph,
  dynamicWeight: (name: string) => boolean,
  maxPlane = CONV_GEMM_MAX_PLANE,
): number {
  const old = graph.nodes;
  const b = new GraphBuilder(graph);
  graph.nodes = [];
  let count = 0;
  for (const n of old) {
    const plan = n.opType === 'Conv' && n.domain === '' && dynamicWeight(n.inputs[1]) ? planOf(graph, n, maxPlane) : null;
    if (!plan) {
      graph.nodes.push(n);
      continue;
    }
    count++;
    const { C, K, kh, kw, Ho, Wo, strides, dil, padB, padE } = plan;
    const [x, w, bias] = n.inputs;
    b.scope(`${n.name}:gemm`, () => {
      let xt = b.transpose(x, [1, 0, 2, 3]);
      if ([...padB, ...padE].some((p) => p !== 0))
        xt = b.op1('Pad', [xt, b.ints([0, 0, padB[0], padB[1], 0, 0, padE[0], padE[1]])]);
      const taps: string[] = [];
      for (let i = 0; i < kh; i++)
        for (let j = 0; j < kw; j++) {
          const s0 = [i * dil[0], j * dil[1]];
          const tap = b.op1('Slice', [
            xt,
            b.ints(s0),
            b.ints([s0[0] + strides[0] * (Ho - 1) + 1, s0[1] + strides[1] * (Wo - 1) + 1]),
            b.ints([2, 3]),
            b.ints(strides),
          ]);
          taps.push(b.op1('Unsqueeze', [tap, b.ints([1])]));
        }
      const stacked = taps.length === 1 ? taps[0] : b.concat(taps, 1);
      const cols = b.reshape(stacked, [C * kh * kw, -1]);
      const y = b.reshape(b.matMul(b.reshape(w, [K, C * kh * kw]), cols), [K, -1, Ho, Wo]);
      const out = bias ? b.transpose(y, [1, 0, 2, 3]) : y;
      // the last node writes the original output name so consumers are unchanged
      graph.nodes.push(
        bias
          ? {
              opType: 'Add',
              domain: '',
              name: b.fresh('conv_gemm_out_node'),
              inputs: [out, b.reshape(bias, [1, K, 1, 1])],
              outputs: [n.outputs[0]],
              attrs: {},
            }
          : {
              opType: 'Transpose',
              domain: '',
              name: b.fresh('conv_gemm_out_node'),
              inputs: [y],
              outputs: [n.outputs[0]],
              attrs: { perm: attr.ints([1, 0, 2, 3]) },
            },
      );
    });
  }
  return count;
}

interface Plan {
  C: number;
  K: number;
  kh: number;
  kw: number;
  Ho: number;
  Wo: number;
  strides: number[];
  dil: number[];
  padB: number[];
  padE: number[];
}

function planOf(graph: Graph, n: Node, maxPlane: number): Plan | null {
  const ws = graph.values.get(n.inputs[1])?.shape;
  const xs = graph.values.get(n.inputs[0])?.shape;
  const ys = graph.values.get(n.outputs[0])?.shape;
  if (!ws || !xs || !ys || ws.length !== 4 || xs.length !== 4 || ys.length !== 4) return null;
  const group = n.attrs.group?.type === 'int' ? n.attrs.group.value : 1;
  const autoPad = n.attrs.auto_pad?.type === 'string' ? n.attrs.auto_pad.value : 'NOTSET';
  if (group !== 1 || (autoPad !== 'NOTSET' && autoPad !== 'VALID')) return null;
  const [K, C, kh, kw] = ws;
  const [, , Ho, Wo] = ys;
  const [, , H, W] = xs;
  if ([K, C, kh, kw, Ho, Wo, H, W].some((d) => typeof d !== 'number')) return null;
  const nums = [K, C, kh, kw, Ho, Wo] as number[];
  if (nums[4] * nums[5] > maxPlane) return null;
  const pads = autoPad === 'VALID' ? [0, 0, 0, 0] : (ints(n, 'pads') ?? [0, 0, 0, 0]);
  return {
    K: nums[0],
    C: nums[1],
    kh: nums[2],
    kw: nums[3],
    Ho: nums[4],
    Wo: nums[5],
    strides: ints(n, 'strides') ?? [1, 1],
    dil: ints(n, 'dilations') ?? [1, 1],
    padB: pads.slice(0, 2),
    padE: pads.slice(2, 4),
  };
}
