/**
 * The engine's static int8 quantisation on small graphs: BatchNorm folding is exact, weights and activation
 * parameters follow their definitions, an op without an int8 path stays fp32 and is named, onnxruntime fuses the
 * QDQ groups into integer kernels, and the quantised outputs stay close to fp32.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, randn } from '../../../src/engine/ir/builder.js';
import type { Graph } from '../../../src/engine/ir/graph.js';
import { exportOnnx } from '../../../src/engine/onnx/export.js';
import {
  activationParams,
  foldBatchNorm,
  integerKernels,
  optimizedOpTypes,
  quantizeGraph,
  quantizeWeight,
} from '../../../src/engine/quantize/index.js';
import { cloneGraph } from '../../../src/engine/train/compile.js';
import { mulberry32 } from '../../../src/util/random.js';

const C = 16;
const S = 12;

/** Conv+BN+Relu → Conv+BN → Add(residual) → Relu → MaxPool → Tanh → Conv → GlobalAveragePool → Flatten → Gemm. */
function net(): Graph {
  const b = new GraphBuilder('qnet');
  const x = b.input('input', 'float32', ['N', 3, S, S]);
  const bn = (y: string, k: number, seed: number) =>
    b.batchNorm(
      y,
      b.param(`g${seed}`, randn([k], 0.2, seed)),
      b.param(`b${seed}`, randn([k], 0.1, seed + 1)),
      b.param(`m${seed}`, randn([k], 0.1, seed + 2)),
      b.param(`v${seed}`, {
        dtype: 'float32',
        dims: [k],
        data: Float32Array.from({ length: k }, (_, i) => 0.5 + i / k),
      }),
    );
  const c1 = b.relu(
    bn(b.conv(x, b.param('w1', randn([C, 3, 3, 3], 0.3, 1)), undefined, { pads: [1, 1, 1, 1] }), C, 10),
  );
  const c2 = bn(b.conv(c1, b.param('w2', randn([C, C, 3, 3], 0.1, 2)), undefined, { pads: [1, 1, 1, 1] }), C, 20);
  const r = b.relu(b.add(c1, c2));
  const p = b.maxPool(r, { kernel: [2, 2], strides: [2, 2] });
  const t = b.tanh(p);
  const c3 = b.conv(t, b.param('w3', randn([C, C, 3, 3], 0.1, 3)), b.param('b3', randn([C], 0.1, 4)), {
    pads: [1, 1, 1, 1],
  });
  const f = b.flatten(b.globalAveragePool(b.relu(c3)));
  b.output(b.gemm(f, b.param('wf', randn([4, C], 0.3, 5)), b.param('bf', randn([4], 0.1, 6)), { transB: true }), 'y');
  return b.build();
}

function batch(n: number, seed: number): Record<string, ort.Tensor> {
  const rnd = mulberry32(seed);
  const d = new Float32Array(n * 3 * S * S);
  for (let i = 0; i < d.length; i++) d[i] = rnd() * 4 - 2;
  return { input: new ort.Tensor('float32', d, [n, 3, S, S]) };
}

async function run(g: Graph, feed: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(exportOnnx(g), { intraOpNumThreads: 1 });
  const y = (await s.run(feed)).y.data as Float32Array;
  await s.release();
  return y;
}

test('foldBatchNorm: Conv + BatchNormalization as one Conv, same outputs', async () => {
  const g = net();
  const f = cloneGraph(g);
  assert.equal(foldBatchNorm(f), 2);
  assert.ok(!f.nodes.some((n) => n.opType === 'BatchNormalization'));
  assert.ok(!f.initializers.has('g10'), 'BN parameters dropped');
  const feed = batch(4, 1);
  const a = await run(g, feed);
  const b = await run(f, feed);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-4, `${a[i]} vs ${b[i]}`);
});

test('activation and weight parameters follow their definitions', () => {
  // a Relu's range: zero point at the type's minimum, so the quantisation clamp is the Relu
  const relu = activationParams({ lo: 0, hi: 2.55 }, 'uint8');
  assert.ok(Math.abs(relu.scale - 0.01) < 1e-12);
  assert.equal(relu.zeroPoint, 0);
  assert.equal(activationParams({ lo: 0, hi: 2.55 }, 'int8').zeroPoint, -128);
  const p = activationParams({ lo: -1, hi: 3 }, 'uint8');
  assert.ok(Math.abs(p.scale - 4 / 255) < 1e-12);
  assert.equal(p.zeroPoint, Math.round(255 / 4));
  // a range not containing 0 is widened to contain it
  assert.equal(activationParams({ lo: 1, hi: 2 }, 'uint8').zeroPoint, 0);
  const w = { dtype: 'float32' as const, dims: [2, 3], data: Float32Array.of(1, -0.5, 0.25, 0, 0.1, -0.2) };
  const q = quantizeWeight(w, 0);
  assert.deepEqual(Array.from(q.scales), [1 / 127, 0.2 / 127].map(Math.fround));
  assert.deepEqual(Array.from(q.q), [127, -64, 32, 0, 64, -127]);
  assert.ok(q.maxAbsError <= Math.max(...q.scales) / 2 + 1e-9);
});

test('quantizeGraph: integer kernels after onnxruntime optimisation, Tanh kept fp32 and named, outputs close', async () => {
  const g = net();
  const { graph, report } = await quantizeGraph(g, { calibration: [batch(8, 2), batch(8, 3)], threads: 1 });
  assert.equal(report.folded_batchnorm, 2);
  assert.equal(report.batches, 2);
  assert.equal(report.samples, 16);
  assert.deepEqual(report.int8_ops, {
    Conv: 3,
    Add: 1,
    MaxPool: 1,
    GlobalAveragePool: 1,
    Flatten: 1,
    Gemm: 1,
    Relu: 3,
  });
  assert.deepEqual(Object.keys(report.fp32_ops), ['Tanh']);
  assert.equal(report.fp32_ops.Tanh.count, 1);
  assert.equal(report.fp32_ops.Tanh.nodes.length, 1);
  assert.deepEqual(
    graph.outputs.map((o) => o.name),
    ['y'],
  );
  assert.ok(
    [...graph.initializers.values()].every((t) => t.dtype !== 'float32' || t.data.length <= C),
    'no fp32 weight matrices left (only scales and the like)',
  );
  const kernels = integerKernels(await optimizedOpTypes(exportOnnx(graph)));
  assert.equal(kernels['com.microsoft.QLinearConv'], 3, JSON.stringify(kernels));
  assert.equal(kernels['com.microsoft.QLinearAdd'], 1);
  assert.equal(kernels['com.microsoft.QGemm'], 1);
  const feed = batch(16, 4);
  const a = await run(g, feed);
  const b = await run(graph, feed);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += a[i] ** 2;
  }
  assert.ok(Math.sqrt(num / den) < 0.1, `relative error ${Math.sqrt(num / den)}`);
  // the include filter keeps nodes out without reporting them
  const part = await quantizeGraph(g, {
    calibration: [batch(4, 5)],
    include: (n) => n.opType !== 'Gemm',
    method: 'percentile',
  });
  assert.equal(part.report.int8_ops.Gemm, undefined);
  assert.equal(part.report.fp32_ops.Gemm, undefined);
  assert.equal(part.report.percentile, 99.99);
  await assert.rejects(quantizeGraph(g, { calibration: [] }), (e: Error & { code?: string }) => e.code === 'QCB_USAGE');
});
