import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appendBackward } from '../../../src/engine/grad/autodiff.js';
import { full, GraphBuilder, randn, randu, zeros } from '../../../src/engine/ir/builder.js';
import type { Dim, Graph, Tensor } from '../../../src/engine/ir/graph.js';
import { attr } from '../../../src/engine/ir/graph.js';
import { inferShapes, QCBENCH_DOMAIN } from '../../../src/engine/ir/shapes.js';
import { fromOrt, loadSession, toOrt } from '../../../src/engine/runtime/session.js';
import { runGraph } from '../../../src/engine/tfjs/interpreter.js';
import { expandBatchNormTrain, lowerBatchNormTraining } from '../../../src/engine/train/batchnorm.js';
import { Sgd } from '../../../src/engine/train/optim/index.js';
import { Trainer } from '../../../src/engine/train/trainer.js';

/**
 * Training-mode BN: the fused node (qcbench.BatchNormTrain, hand-written gradient) against the primitive lowering
 * (autodiff through ReduceMean/Sub/…/Add) and central finite differences.
 */

const PARAMS = ['x', 'conv.weight', 'conv.bias', 'bn.weight', 'bn.bias'];

interface Net {
  graph: Graph;
  loss: string;
  /** Running-stat update values (new running mean, new running var). */
  stats: string[];
  grads: Map<string, string>;
}

/**
 * x → conv → BN (training) → relu → loss = Σ relu·r (+ Σ of the BN's running-stat outputs · r₂ when `statsInLoss`),
 * every parameter a graph input; lowered (fused or primitive), differentiated, fused nodes expanded.
 */
function net(fused: boolean, batch: Dim, statsInLoss = false): Net {
  const b = new GraphBuilder('bn_net');
  const x = b.input('x', 'float32', [batch, 2, 5, 5]);
  const w = b.input('conv.weight', 'float32', [3, 2, 3, 3]);
  const cb = b.input('conv.bias', 'float32', [3]);
  const g = b.input('bn.weight', 'float32', [3]);
  const be = b.input('bn.bias', 'float32', [3]);
  const r = b.input('r', 'float32', [batch, 3, 5, 5]);
  const c = b.conv(x, w, cb, { pads: [1, 1, 1, 1] });
  const rm = b.param('bn.running_mean', randu([3], -0.2, 0.2, 31));
  const rv = b.param('bn.running_var', randu([3], 0.5, 1.5, 32));
  const outs = b.op(
    'BatchNormalization',
    [c, g, be, rm, rv],
    { epsilon: attr.float(1e-5), momentum: attr.float(0.9), training_mode: 1 },
    statsInLoss ? 3 : 1,
  );
  let loss = b.reduceSum(b.mul(b.relu(outs[0]), r), undefined, false);
  if (statsInLoss) {
    const r2 = b.constant(randn([3], 1, 33), 'r2');
    const r3 = b.constant(randn([3], 1, 34), 'r3');
    loss = b.add(
      loss,
      b.add(b.reduceSum(b.mul(outs[1], r2), undefined, false), b.reduceSum(b.mul(outs[2], r3), undefined, false)),
    );
  }
  b.output(loss, 'loss');
  const graph = b.build();
  inferShapes(graph);
  const updates = lowerBatchNormTraining(graph, () => true, { fused });
  assert.equal(updates.length, 1);
  assert.equal(
    graph.nodes.some((n) => n.domain === QCBENCH_DOMAIN),
    fused,
  );
  inferShapes(graph);
  const grads = appendBackward(graph, 'loss', PARAMS);
  assert.equal(expandBatchNormTrain(graph), fused ? 1 : 0);
  assert.ok(!graph.nodes.some((n) => n.domain !== ''), 'only standard ops after expansion');
  const stats = [updates[0].newMean, updates[0].newVar];
  graph.outputs = ['loss', ...stats, ...PARAMS.map((p) => grads.get(p) as string)].map((name) => ({
    name,
    dtype: 'float32',
  }));
  inferShapes(graph);
  return { graph, loss: 'loss', stats, grads };
}

const N = 4;
function feeds(seed: number): Record<string, Tensor> {
  return {
    // a channel offset so the batch mean is far from 0 (the statistics matter)
    x: randu([N, 2, 5, 5], -1, 2, seed),
    'conv.weight': randn([3, 2, 3, 3], 0.5, seed + 1),
    'conv.bias': randn([3], 0.5, seed + 2),
    'bn.weight': randu([3], 0.5, 1.5, seed + 3),
    'bn.bias': randn([3], 0.3, seed + 4),
    r: randn([N, 3, 5, 5], 1, seed + 5),
  };
}

async function runOrt(g: Graph, f: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const s = await loadSession(g, { noCache: true });
  const out = await s.run(Object.fromEntries(Object.entries(f).map(([k, v]) => [k, toOrt(v)])));
  const res = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, fromOrt(v)]));
  await s.session.release();
  return res;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max |a−b| / max |b| (NaN-propagating). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d;
  }
  return m / Math.max(maxAbs(b), 1e-6);
}

for (const [label, batch, statsInLoss] of [
  ['static batch', N, false],
  ['symbolic batch', 'N', false],
  ['running-stat outputs in the loss', N, true],
] as const) {
  test(`fused training-mode BN (${label}): gradients equal the primitive lowering and finite differences`, async () => {
    const fused = net(true, batch, statsInLoss);
    const prim = net(false, batch, statsInLoss);
    const f = feeds(3);
    const gf = await runOrt(fused.graph, f);
    const gp = await runOrt(prim.graph, f);
    // forward: same loss and running statistics
    const [lf, lp] = [gf.loss.data[0] as number, gp.loss.data[0] as number];
    assert.ok(Math.abs(lf - lp) <= 1e-5 * Math.abs(lp) + 1e-6, `loss ${lf} vs ${lp}`);
    for (let i = 0; i < 2; i++) {
      const a = gf[fused.stats[i]].data as Float32Array;
      const e = gp[prim.stats[i]].data as Float32Array;
      assert.deepEqual(Array.from(a), Array.from(e), `running ${i === 0 ? 'mean' : 'var'} identical`);
    }
    // gradients: the hand-written rule equals autodiff through the primitives to float32 rounding
    for (const p of PARAMS) {
      const a = gf[fused.grads.get(p) as string].data as Float32Array;
      const e = gp[prim.grads.get(p) as string].data as Float32Array;
      const vanishes = p === 'conv.bias' && !statsInLoss;
      assert.ok(maxAbs(e) > 1e-3 || vanishes, `${p}: gradient not trivially zero`);
      const err = vanishes ? maxAbs(a) : relErr(a, e);
      assert.ok(err < 5e-5, `${p}: fused vs primitive gradient, error ${err}`);
    }
    // conv.bias is removed by the batch mean: its gradient vanishes (up to rounding) unless the running mean counts
    if (!statsInLoss) assert.ok(maxAbs(gf[fused.grads.get('conv.bias') as string].data as Float32Array) < 1e-4);

    // the TF.js reference interpreter runs the expanded step graph and agrees with onnxruntime
    const tf = runGraph(
      fused.graph,
      f,
      PARAMS.map((p) => fused.grads.get(p) as string),
    );
    for (const p of PARAMS) {
      const name = fused.grads.get(p) as string;
      const err = relErr(tf[name].data as Float32Array, gf[name].data as Float32Array);
      assert.ok((p === 'conv.bias' && !statsInLoss) || err < 1e-4, `${p}: TF.js vs onnxruntime, error ${err}`);
    }

    // central finite differences of the (fused) loss
    const lossGraph = structuredClone(fused.graph);
    lossGraph.outputs = [{ name: 'loss', dtype: 'float32' }];
    const s = await loadSession(lossGraph, { noCache: true });
    const ortFeeds = Object.fromEntries(Object.entries(f).map(([k, v]) => [k, toOrt(v)]));
    const lossAt = async (p: string, i: number, d: number) => {
      const t = structuredClone(f[p]);
      (t.data as Float32Array)[i] += d;
      return ((await s.run({ ...ortFeeds, [p]: toOrt(t) })).loss.data as Float32Array)[0];
    };
    for (const p of PARAMS.filter((q) => q !== 'conv.bias' || statsInLoss)) {
      const grad = gf[fused.grads.get(p) as string].data as Float32Array;
      const scale = maxAbs(grad);
      const n = grad.length;
      for (const i of [0, 1, Math.floor(n / 3), Math.floor(n / 2), n - 1]) {
        const eps = 1e-3;
        const fd = ((await lossAt(p, i, eps)) - (await lossAt(p, i, -eps))) / (2 * eps);
        assert.ok(
          Math.abs(fd - grad[i]) <= 2e-2 * scale + 1e-4,
          `${p}[${i}]: fused gradient ${grad[i]} vs finite difference ${fd}`,
        );
      }
    }
    await s.session.release();
  });
}

test('BN on N×C features (Gemm → BN → relu): fused gradients equal the primitive lowering', async () => {
  const build = (fused: boolean) => {
    const b = new GraphBuilder('bn2d');
    const x = b.input('x', 'float32', ['N', 5]);
    const w = b.input('w', 'float32', [4, 5]);
    const g = b.input('g', 'float32', [4]);
    const be = b.input('be', 'float32', [4]);
    const r = b.input('r', 'float32', ['N', 4]);
    const h = b.gemm(x, w, undefined, { transB: true });
    const y = b.batchNorm(h, g, be, b.param('rm', zeros([4])), b.param('rv', full([4], 1)));
    b.graph.nodes[b.graph.nodes.length - 1].attrs.training_mode = attr.int(1);
    b.output(b.reduceSum(b.mul(b.relu(y), r), undefined, false), 'loss');
    const graph = b.build();
    inferShapes(graph);
    const up = lowerBatchNormTraining(graph, () => true, { fused });
    inferShapes(graph);
    const grads = appendBackward(graph, 'loss', ['x', 'w', 'g', 'be']);
    expandBatchNormTrain(graph);
    const names = ['x', 'w', 'g', 'be'].map((p) => grads.get(p) as string);
    graph.outputs = ['loss', up[0].newVar, ...names].map((name) => ({ name, dtype: 'float32' }));
    inferShapes(graph);
    return { graph, names, newVar: up[0].newVar };
  };
  const f: Record<string, Tensor> = {
    x: randn([6, 5], 1, 41),
    w: randn([4, 5], 0.5, 42),
    g: randu([4], 0.5, 1.5, 43),
    be: randn([4], 0.3, 44),
    r: randn([6, 4], 1, 45),
  };
  const a = build(true);
  const p = build(false);
  const ra = await runOrt(a.graph, f);
  const rp = await runOrt(p.graph, f);
  assert.deepEqual(Array.from(ra[a.newVar].data as Float32Array), Array.from(rp[p.newVar].data as Float32Array));
  a.names.forEach((n, i) => {
    const err = relErr(ra[n].data as Float32Array, rp[p.names[i]].data as Float32Array);
    assert.ok(err < 2e-5, `${n}: fused vs primitive, error ${err}`);
  });
  const tf = runGraph(a.graph, f, a.names);
  for (const n of a.names) assert.ok(relErr(tf[n].data as Float32Array, ra[n].data as Float32Array) < 1e-4);
});

test('compileTrainStep: fused BN (default) and bnFused: false take the same SGD step with the same running stats', async () => {
  const b = new GraphBuilder('cnn');
  const x = b.input('x', 'float32', ['N', 2, 6, 6]);
  const y = b.input('y', 'float32', ['N', 3]);
  const c = b.conv(x, b.param('conv.weight', randn([4, 2, 3, 3], 0.4, 1)), b.param('conv.bias', zeros([4])), {
    pads: [1, 1, 1, 1],
  });
  const bn = b.batchNorm(
    c,
    b.param('bn.weight', randu([4], 0.5, 1.5, 3)),
    b.param('bn.bias', randn([4], 0.2, 4)),
    b.param('bn.running_mean', zeros([4])),
    b.param('bn.running_var', full([4], 1)),
  );
  const feat = b.flatten(b.globalAveragePool(b.relu(bn)));
  const logits = b.gemm(feat, b.param('head.weight', randn([3, 4], 0.3, 2)), b.param('head.bias', zeros([3])), {
    transB: true,
  });
  b.output(b.neg(b.reduceMean(b.reduceSum(b.mul(b.logSoftmax(logits), y), [1], false), undefined, false)), 'loss');
  const graph = b.build();
  const X = randu([8, 2, 6, 6], -1, 1, 5);
  const Y = {
    dtype: 'float32',
    dims: [8, 3],
    data: Float32Array.from({ length: 24 }, (_, i) => (i % 4 === 0 ? 1 : 0)),
  };
  const step = async (bnFused: boolean | undefined) => {
    const tr = await Trainer.create({ graph, loss: 'loss', optimizer: new Sgd(), bnFused }, { noCache: true });
    const nodes = tr.compiled.graph.nodes;
    assert.ok(!nodes.some((n) => n.domain !== ''), 'standard ops only');
    assert.ok(!nodes.some((n) => n.opType === 'BatchNormalization' && n.attrs.training_mode), 'no training-mode BN');
    const loss = (await tr.step({ x: X, y: Y as Tensor }, 1)).loss;
    return { loss, params: tr.getParams(), nodes: nodes.length };
  };
  const fused = await step(undefined);
  const prim = await step(false);
  assert.ok(fused.nodes < prim.nodes, `fewer nodes fused (${fused.nodes}) than primitive (${prim.nodes})`);
  assert.ok(Math.abs(fused.loss - prim.loss) < 1e-6);
  for (const k of [
    'conv.weight',
    'conv.bias',
    'bn.weight',
    'bn.bias',
    'head.weight',
    'bn.running_mean',
    'bn.running_var',
  ]) {
    const t = prim.params.get(k) as Tensor;
    const a = fused.params.get(k)?.data as Float32Array;
    const e = t.data as Float32Array;
    if (k.startsWith('bn.running')) assert.deepEqual(Array.from(a), Array.from(e), `${k} identical`);
    else {
      // p' = p − ∇L (lr 1): compare the gradients
      const p0 = graph.initializers.get(k)?.data as Float32Array;
      const ga = a.map((v, i) => p0[i] - v);
      const ge = e.map((v, i) => p0[i] - v);
      const err = k === 'conv.bias' ? maxAbs(ga) : relErr(ga, ge);
      assert.ok(err < 1e-4, `${k}: fused vs primitive step, error ${err}`);
    }
  }
});
