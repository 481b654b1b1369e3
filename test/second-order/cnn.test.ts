import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appendBackward } from '../../src/engine/grad/autodiff.js';
import { GraphBuilder, randn, randu, zeros } from '../../src/engine/ir/builder.js';
import { loadSession, toOrt } from '../../src/engine/runtime/session.js';
import { tfjsGradients } from '../../src/engine/tfjs/interpreter.js';
import { Sgd } from '../../src/engine/train/optim/index.js';
import { Trainer } from '../../src/engine/train/trainer.js';
import { buildSecondOrderCnn, secondOrderCnnGraph } from '../../src/second-order/cnn.js';
import { quadraticConv } from '../../src/second-order/quadratic.js';

test('second-order CNN: N×3×S×S → N×D features; first-order init equals its first-order twin exactly', async () => {
  const x = randu([2, 3, 16, 16], -1, 1, 3);
  const run = async (order: 1 | 2, init: 'random' | 'first-order') => {
    const { graph, result } = secondOrderCnnGraph({ order, init, seed: 5, cropSize: 16, convChannels: 4, features: 6 });
    assert.equal(result.dim, 6);
    const s = await loadSession(graph, { noCache: true, intraOpNumThreads: 1 });
    const f = (await s.run({ images: toOrt(x) })).features;
    await s.session.release();
    assert.deepEqual([...f.dims], [2, 6]);
    return Float32Array.from(f.data as Float32Array);
  };
  const twin = await run(1, 'random');
  const near = await run(2, 'first-order');
  const quad = await run(2, 'random');
  for (let i = 0; i < twin.length; i++)
    assert.ok(Math.abs(twin[i] - near[i]) < 1e-6, `feature ${i}: ${twin[i]} vs ${near[i]}`);
  assert.ok(
    quad.some((v, i) => Math.abs(v - twin[i]) > 1e-3),
    'random quadratic init differs from the twin',
  );
  assert.ok(twin.every(Number.isFinite) && quad.every(Number.isFinite));
});

test('quadratic conv: engine autodiff agrees with the TF.js reference gradients (conv_r ⊙ conv_g + conv_b(x²))', async () => {
  const b = new GraphBuilder('qconv');
  const x = b.input('x', 'float32', [2, 2, 6, 6]);
  const conv = quadraticConv(b, x, { name: 'q', inChannels: 2, outChannels: 3, kernel: 3, seed: 11, gain: 1 });
  // random bias values so every parameter matters
  const g0 = b.graph;
  g0.initializers.set('q.br', randn([3], 0.3, 1));
  g0.initializers.set('q.bg', randn([3], 0.3, 2));
  g0.initializers.set('q.c', randn([3], 0.3, 3));
  const r = b.param('r', randn([2, 3, 6, 6], 1, 4));
  b.output(b.reduceSum(b.mul(b.tanh(conv.output), r), undefined, false), 'loss');
  const g = b.build();
  const wrt = ['x', ...(Object.values(conv.params) as string[])];
  const feeds = { x: randu([2, 2, 6, 6], -1, 1, 9) };
  const ref = tfjsGradients(g, 'loss', wrt, feeds);
  const gm = appendBackward(g, 'loss', wrt);
  g.outputs = [
    { name: 'loss', dtype: 'float32' },
    ...wrt.map((w) => ({ name: gm.get(w)!, dtype: 'float32' as const })),
  ];
  const s = await loadSession(g, { noCache: true, intraOpNumThreads: 1 });
  const out = await s.run({ x: toOrt(feeds.x) });
  await s.session.release();
  for (const w of wrt) {
    const a = out[gm.get(w)!].data as Float32Array;
    const e = ref.grads[w].data as Float32Array;
    let m = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      m = Math.max(m, Math.abs(a[i] - e[i]));
      scale = Math.max(scale, Math.abs(e[i]));
    }
    assert.ok(scale > 1e-4, `${w}: reference gradient is not trivially zero`);
    assert.ok(m <= 1e-4 * Math.max(1, scale), `${w}: max |engine − tfjs| = ${m} (scale ${scale})`);
  }
});

test('second-order CNN + linear classifier trains end to end through the engine (loss falls)', async () => {
  // two classes of 8×8 images: bright centre vs bright border
  const N = 16;
  const X = zeros([N, 3, 8, 8]);
  const Y = zeros([N, 2]);
  const noise = randu([N * 3 * 64], -0.2, 0.2, 21).data as Float32Array;
  for (let n = 0; n < N; n++) {
    const k = n % 2;
    (Y.data as Float32Array)[n * 2 + k] = 1;
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < 8; i++)
        for (let j = 0; j < 8; j++) {
          const centre = i >= 2 && i < 6 && j >= 2 && j < 6;
          const idx = ((n * 3 + c) * 8 + i) * 8 + j;
          (X.data as Float32Array)[idx] = (centre === (k === 0) ? 1 : 0) + noise[idx];
        }
  }
  const b = new GraphBuilder('cls');
  const x = b.input('x', 'float32', ['N', 3, 8, 8]);
  const y = b.input('y', 'float32', ['N', 2]);
  const enc = buildSecondOrderCnn(b, x, {
    order: 2,
    seed: 2,
    cropSize: 8,
    convChannels: 4,
    kernel: 3,
    features: 8,
    activation: 'tanh',
    init: 'first-order',
  });
  const logits = b.gemm(enc.features, b.param('cls.w', randn([2, 8], 0.3, 5)), b.param('cls.b', zeros([2])), {
    transB: true,
  });
  b.output(b.neg(b.reduceMean(b.reduceSum(b.mul(b.logSoftmax(logits), y), [1], false), undefined, false)), 'loss');
  const tr = await Trainer.create(
    { graph: b.build(), loss: 'loss', optimizer: new Sgd({ momentum: 0.9 }) },
    { intraOpNumThreads: 1 },
  );
  assert.ok(
    tr.compiled.params.some((p) => p.name === 'so_cnn.conv.wg'),
    'quadratic conv weights are trained',
  );
  const first = (await tr.step({ x: X, y: Y }, 0.05)).loss;
  let last = first;
  for (let i = 0; i < 40; i++) last = (await tr.step({ x: X, y: Y }, 0.05)).loss;
  assert.ok(last < 0.5 * first, `loss ${first} → ${last}`);
  const wg = tr.getParams().get('so_cnn.conv.wg')!.data as Float32Array;
  assert.ok(
    wg.some((v) => v !== 0),
    'the quadratic factor moved away from its first-order start',
  );
});
