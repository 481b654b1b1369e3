/**
 * Micro-benchmark of a convolution's three passes as onnxruntime models: forward Conv, dX (the ConvTranspose rule
 * emits) and several dW formulations, in GFLOP/s. This decides the Conv rule's formulation
 * (engine-measurements.md); `qcbench bench engine` or a developer can call it.
 *
 * Run: `node --import tsx -e "import('./src/bench/grad.ts').then(m => m.benchConvGrad().then(console.table))"`
 */
import { GraphBuilder, randn } from '../engine/ir/builder.js';
import { type Graph, attr } from '../engine/ir/graph.js';
import { inferShapes } from '../engine/ir/shapes.js';
import { loadSession, ortF32 } from '../engine/runtime/session.js';
import { type ConvGeometry, convInputGrad, convWeightGrad } from '../engine/grad/conv.js';
import type { GradEmitter } from '../engine/grad/types.js';
import { ints } from '../engine/grad/util.js';

/** Layer shape of the benchmark (default: the 3×3 layer of engine-measurements.md). */
export interface ConvBenchSpec {
  N?: number;
  C?: number;
  K?: number;
  H?: number;
  k?: number;
  stride?: number;
  /** Timed runs per formulation (the fastest is reported), default 5 after 1 warm-up. */
  runs?: number;
  threads?: number;
}

export interface ConvBenchRow {
  pass: string;
  formulation: string;
  ms: number;
  gflops: number;
}

function emitterFor(b: GraphBuilder): GradEmitter {
  return {
    info: (name) => {
      const v = b.graph.values.get(name);
      if (v) return v;
      inferShapes(b.graph);
      return b.graph.values.get(name) ?? { name, dtype: 'float32' };
    },
    op: (t, ins, a = {}, n = 1) => b.op(t, ins, a, n),
    constant: (t, hint) => b.constant(t, hint ?? 'c'),
  };
}

/** Times `graph` (inputs x, dy, w as needed) and returns the fastest run in ms (least disturbed by machine load). */
async function time(
  graph: Graph,
  feedsDims: Record<string, number[]>,
  runs: number,
  threads: number | undefined,
): Promise<number> {
  inferShapes(graph);
  const s = await loadSession(graph, { noCache: true, intraOpNumThreads: threads });
  const feeds = Object.fromEntries(
    Object.entries(feedsDims).map(([k, d]) => [k, ortF32(randn(d, 1, 3).data as Float32Array, d)]),
  );
  await s.run(feeds);
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    ts.push(performance.now() - t0);
  }
  await s.session.release();
  return Math.min(...ts);
}

/**
 * Benchmarks forward, dX and dW formulations of one Conv layer in onnxruntime (CPU). Figures depend on machine
 * load; compare ratios.
 */
export async function benchConvGrad(spec: ConvBenchSpec = {}): Promise<ConvBenchRow[]> {
  const { N = 64, C = 128, K = 128, H = 16, k = 3, stride = 1, runs = 5, threads } = spec;
  const pad = Math.floor(k / 2);
  const Ho = Math.floor((H + 2 * pad - k) / stride) + 1;
  const flops = 2 * N * K * C * k * k * Ho * Ho;
  const geo: ConvGeometry = {
    inSize: [H, H],
    outSize: [Ho, Ho],
    kernel: [k, k],
    strides: [stride, stride],
    dilations: [1, 1],
    padBegin: [pad, pad],
    padEnd: [pad, pad],
  };
  const xD = [N, C, H, H];
  const yD = [N, K, Ho, Ho];
  const wD = [K, C, k, k];
  const rows: ConvBenchRow[] = [];
  const add = (pass: string, formulation: string, ms: number) =>
    rows.push({ pass, formulation, ms: Math.round(ms * 10) / 10, gflops: Math.round(flops / ms / 1e6) });

  const graphWith = (inputs: [string, number[]][], body: (b: GraphBuilder, g: GradEmitter) => string): Graph => {
    const b = new GraphBuilder('bench');
    for (const [n, d] of inputs) b.input(n, 'float32', d);
    inferShapes(b.graph);
    const out = body(b, emitterFor(b));
    b.graph.outputs = [{ name: out, dtype: 'float32' }];
    return b.graph;
  };

  // forward
  let g = graphWith(
    [
      ['x', xD],
      ['w', wD],
    ],
    (b) => b.conv('x', 'w', undefined, { pads: [pad, pad, pad, pad], strides: [stride, stride] }),
  );
  add('forward', 'Conv', await time(g, { x: xD, w: wD }, runs, threads));
  // dX
  g = graphWith(
    [
      ['dy', yD],
      ['w', wD],
    ],
    (_b, e) => convInputGrad(e, 'dy', 'w', geo, 1),
  );
  add('dX', 'ConvTranspose(dY, W)', await time(g, { dy: yD, w: wD }, runs, threads));
  if (stride === 1) {
    g = graphWith(
      [
        ['dy', yD],
        ['w', wD],
      ],
      (b, e) => {
        const wt = b.op1('Transpose', ['w'], { perm: [1, 0, 2, 3] });
        const big = 1 << 30;
        const wf = b.op1('Slice', [wt, ints(e, [-1, -1]), ints(e, [-big, -big]), ints(e, [2, 3]), ints(e, [-1, -1])]);
        const p2 = k - 1 - pad;
        return b.conv('dy', wf, undefined, { pads: [p2, p2, p2, p2] });
      },
    );
    add('dX', 'Conv(dY, flipped Wᵀ) (stride 1 only)', await time(g, { dy: yD, w: wD }, runs, threads));
  }
  // dW: the rule's formulation
  g = graphWith(
    [
      ['x', xD],
      ['dy', yD],
    ],
    (_b, e) => convWeightGrad(e, 'x', 'dy', geo, 1, wD),
  );
  add(
    'dW',
    `rule (${Ho * Ho >= K ? 'one-hot depthwise im2col + per-image MatMul' : 'X transposed once, k² slices, one Gemm'})`,
    await time(g, { x: xD, dy: yD }, runs, threads),
  );
  // dW: X transposed once, k² strided slices, one Gemm (the rule's form for small output planes)
  g = graphWith(
    [
      ['x', xD],
      ['dy', yD],
    ],
    (b, e) => {
      const xt = b.op1('Transpose', [b.op1('Pad', ['x', ints(e, [0, 0, pad, pad, 0, 0, pad, pad])])], {
        perm: [1, 0, 2, 3],
      });
      const parts: string[] = [];
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const sl = b.op1('Slice', [
            xt,
            ints(e, [i, j]),
            ints(e, [i + (Ho - 1) * stride + 1, j + (Ho - 1) * stride + 1]),
            ints(e, [2, 3]),
            ints(e, [stride, stride]),
          ]);
          parts.push(b.op1('Unsqueeze', [sl, ints(e, [1])]));
        }
      }
      const cols = b.op1('Reshape', [b.op1('Concat', parts, { axis: 1 }), ints(e, [C * k * k, -1])]);
      const dyR = b.op1('Reshape', [b.op1('Transpose', ['dy'], { perm: [1, 0, 2, 3] }), ints(e, [K, -1])]);
      return b.op1('Reshape', [b.op1('Gemm', [dyR, cols], { transB: attr.int(1) }), ints(e, wD)]);
    },
  );
  add('dW', 'X transposed once, k² slices, one Gemm', await time(g, { x: xD, dy: yD }, runs, threads));
  // dW: per-slice Transpose+Reshape (the notes' variant)
  g = graphWith(
    [
      ['x', xD],
      ['dy', yD],
    ],
    (b, e) => {
      const xp = b.op1('Pad', ['x', ints(e, [0, 0, pad, pad, 0, 0, pad, pad])]);
      const parts: string[] = [];
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const sl = b.op1('Slice', [
            xp,
            ints(e, [i, j]),
            ints(e, [i + (Ho - 1) * stride + 1, j + (Ho - 1) * stride + 1]),
            ints(e, [2, 3]),
            ints(e, [stride, stride]),
          ]);
          const t = b.op1('Transpose', [sl], { perm: [1, 0, 2, 3] });
          parts.push(b.op1('Unsqueeze', [b.op1('Reshape', [t, ints(e, [C, -1])]), ints(e, [1])]));
        }
      }
      const cols = b.op1('Reshape', [b.op1('Concat', parts, { axis: 1 }), ints(e, [C * k * k, -1])]);
      const dyR = b.op1('Reshape', [b.op1('Transpose', ['dy'], { perm: [1, 0, 2, 3] }), ints(e, [K, -1])]);
      return b.op1('Reshape', [b.op1('Gemm', [dyR, cols], { transB: attr.int(1) }), ints(e, wD)]);
    },
  );
  add('dW', 'k² slices, each Transpose+Reshape, one Gemm', await time(g, { x: xD, dy: yD }, runs, threads));
  // dW: batched im2col per image, MatMul with dYᵀ, ReduceSum over N
  g = graphWith(
    [
      ['x', xD],
      ['dy', yD],
    ],
    (b, e) => {
      const xp = b.op1('Pad', ['x', ints(e, [0, 0, pad, pad, 0, 0, pad, pad])]);
      const parts: string[] = [];
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const sl = b.op1('Slice', [
            xp,
            ints(e, [i, j]),
            ints(e, [i + (Ho - 1) * stride + 1, j + (Ho - 1) * stride + 1]),
            ints(e, [2, 3]),
            ints(e, [stride, stride]),
          ]);
          parts.push(b.op1('Unsqueeze', [sl, ints(e, [2])]));
        }
      }
      const cols = b.op1('Reshape', [b.op1('Concat', parts, { axis: 2 }), ints(e, [N, C * k * k, Ho * Ho])]);
      const dyT = b.op1('Transpose', [b.op1('Reshape', ['dy', ints(e, [N, K, Ho * Ho])])], { perm: [0, 2, 1] });
      const per = b.op1('MatMul', [cols, dyT]); // N×(C·k²)×K
      const sum = b.op1('ReduceSum', [per, ints(e, [0])], { keepdims: 0 });
      return b.op1('Reshape', [b.op1('Transpose', [sum], { perm: [1, 0] }), ints(e, wD)]);
    },
  );
  add('dW', 'per-image im2col, batched MatMul, ReduceSum over N', await time(g, { x: xD, dy: yD }, runs, threads));
  // dW: im2col by a one-hot Conv (X as (N·C)×1×H×W, 1→k² channels), batched MatMul with dYᵀ, ReduceSum over N
  const oneHot = new Float32Array(k * k * k * k);
  for (let i = 0; i < k * k; i++) oneHot[i * k * k + i] = 1;
  for (const depthwise of [false, true]) {
    g = graphWith(
      [
        ['x', xD],
        ['dy', yD],
      ],
      (b, e) => {
        let cols: string;
        if (depthwise) {
          const wh = new Float32Array(C * k * k * k * k);
          for (let c = 0; c < C; c++) wh.set(oneHot, c * k * k * k * k);
          const w1 = b.constant({ dtype: 'float32', dims: [C * k * k, 1, k, k], data: wh }, 'onehot');
          cols = b.op1('Conv', ['x', w1], { group: C, pads: [pad, pad, pad, pad], strides: [stride, stride] }); // N×(C·k²)×Ho×Wo
        } else {
          const w1 = b.constant({ dtype: 'float32', dims: [k * k, 1, k, k], data: oneHot }, 'onehot');
          const x1 = b.op1('Reshape', ['x', ints(e, [-1, 1, H, H])]);
          cols = b.op1('Conv', [x1, w1], { pads: [pad, pad, pad, pad], strides: [stride, stride] }); // (N·C)×k²×Ho×Wo
        }
        const colsR = b.op1('Reshape', [cols, ints(e, [N, C * k * k, Ho * Ho])]);
        const dyT = b.op1('Transpose', [b.op1('Reshape', ['dy', ints(e, [N, K, Ho * Ho])])], { perm: [0, 2, 1] });
        const per = b.op1('MatMul', [colsR, dyT]);
        const sum = b.op1('ReduceSum', [per, ints(e, [0])], { keepdims: 0 });
        return b.op1('Reshape', [b.op1('Transpose', [sum], { perm: [1, 0] }), ints(e, wD)]);
      },
    );
    add(
      'dW',
      `im2col by one-hot ${depthwise ? 'depthwise ' : ''}Conv, batched MatMul, ReduceSum`,
      await time(g, { x: xD, dy: yD }, runs, threads),
    );
  }
  // dW: one-hot Conv im2col on X transposed to C×N×H×W, one Gemm
  g = graphWith(
    [
      ['x', xD],
      ['dy', yD],
    ],
    (b, e) => {
      const w1 = b.constant({ dtype: 'float32', dims: [k * k, 1, k, k], data: oneHot }, 'onehot');
      const xt = b.op1('Reshape', [b.op1('Transpose', ['x'], { perm: [1, 0, 2, 3] }), ints(e, [-1, 1, H, H])]);
      const cols = b.op1('Conv', [xt, w1], { pads: [pad, pad, pad, pad], strides: [stride, stride] }); // (C·N)×k²×Ho×Wo
      const colsT = b.op1('Reshape', [
        b.op1('Transpose', [b.op1('Reshape', [cols, ints(e, [C, N, k * k, Ho * Ho])])], { perm: [0, 2, 1, 3] }),
        ints(e, [C * k * k, -1]),
      ]);
      const dyR = b.op1('Reshape', [b.op1('Transpose', ['dy'], { perm: [1, 0, 2, 3] }), ints(e, [K, -1])]);
      return b.op1('Reshape', [b.op1('Gemm', [dyR, colsT], { transB: attr.int(1) }), ints(e, wD)]);
    },
  );
  add('dW', 'im2col by one-hot Conv on C×N×H×W, one Gemm', await time(g, { x: xD, dy: yD }, runs, threads));
  // dW: Conv over transposed tensors (the naive baseline)
  g = graphWith(
    [
      ['x', xD],
      ['dy', yD],
    ],
    (b) => {
      const xt = b.op1('Transpose', ['x'], { perm: [1, 0, 2, 3] });
      const dyt = b.op1('Transpose', ['dy'], { perm: [1, 0, 2, 3] });
      const c = b.op1('Conv', [xt, dyt], { pads: [pad, pad, pad, pad], dilations: [stride, stride] }); // C×K×k×k
      return b.op1('Transpose', [c], { perm: [1, 0, 2, 3] });
    },
  );
  add('dW', 'Conv over transposed tensors', await time(g, { x: xD, dy: yD }, runs, threads));
  return rows;
}

/**
 * Depthwise k×k conv (group = C = K) formulations in onnxruntime: the rule's dW (a grouped Conv over transposed
 * tensors: X as 1×(C·N)×H×W, dY as C×N×Ho×Wo filters) against k² Slice·Mul·ReduceSum.
 */
export async function benchDepthwiseGrad(spec: ConvBenchSpec = {}): Promise<ConvBenchRow[]> {
  const { N = 64, C = 96, H = 32, k = 7, runs = 5, threads } = spec;
  const pad = Math.floor(k / 2);
  const Ho = H;
  const flops = 2 * N * C * k * k * Ho * Ho;
  const geo: ConvGeometry = {
    inSize: [H, H],
    outSize: [Ho, Ho],
    kernel: [k, k],
    strides: [1, 1],
    dilations: [1, 1],
    padBegin: [pad, pad],
    padEnd: [pad, pad],
  };
  const xD = [N, C, H, H];
  const wD = [C, 1, k, k];
  const rows: ConvBenchRow[] = [];
  const add = (pass: string, formulation: string, ms: number) =>
    rows.push({ pass, formulation, ms: Math.round(ms * 10) / 10, gflops: Math.round((flops / ms / 1e6) * 10) / 10 });
  const build = (body: (b: GraphBuilder, e: GradEmitter) => string): Graph => {
    const b = new GraphBuilder('bench');
    b.input('x', 'float32', xD);
    b.input('dy', 'float32', xD);
    b.input('w', 'float32', wD);
    inferShapes(b.graph);
    const out = body(b, emitterFor(b));
    b.graph.outputs = [{ name: out, dtype: 'float32' }];
    return b.graph;
  };
  const feeds = { x: xD, dy: xD, w: wD };
  add(
    'forward',
    'depthwise Conv',
    await time(
      build((b) => b.conv('x', 'w', undefined, { pads: [pad, pad, pad, pad], group: C })),
      feeds,
      runs,
      threads,
    ),
  );
  add(
    'dX',
    'rule (depthwise Conv, flipped W)',
    await time(
      build((_b, e) => convInputGrad(e, 'dy', 'w', geo, C)),
      feeds,
      runs,
      threads,
    ),
  );
  add(
    'dW',
    'rule: grouped Conv over transposed tensors',
    await time(
      build((_b, e) => convWeightGrad(e, 'x', 'dy', geo, C, wD)),
      feeds,
      runs,
      threads,
    ),
  );
  add(
    'dW',
    'k² Slice·Mul·ReduceSum',
    await time(
      build((b, e) => {
        const xp = b.op1('Pad', ['x', ints(e, [0, 0, pad, pad, 0, 0, pad, pad])]);
        const parts: string[] = [];
        for (let i = 0; i < k; i++) {
          for (let j = 0; j < k; j++) {
            const sl = b.op1('Slice', [xp, ints(e, [i, j]), ints(e, [i + Ho, j + Ho]), ints(e, [2, 3])]);
            const red = b.op1('ReduceSum', [b.mul(sl, 'dy'), ints(e, [0, 2, 3])], { keepdims: 0 });
            parts.push(b.op1('Unsqueeze', [red, ints(e, [1])]));
          }
        }
        return b.op1('Reshape', [b.op1('Concat', parts, { axis: 1 }), ints(e, wD)]);
      }),
      feeds,
      runs,
      threads,
    ),
  );
  return rows;
}
