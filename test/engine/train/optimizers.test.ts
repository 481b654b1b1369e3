import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromArray, GraphBuilder, randn, randu } from '../../../src/engine/ir/builder.js';
import type { Graph } from '../../../src/engine/ir/graph.js';
import { AdamW, Lars, makeOptimizer, type Optimizer, Sgd } from '../../../src/engine/train/optim/index.js';
import { Trainer } from '../../../src/engine/train/trainer.js';
import { QcbError } from '../../../src/errors.js';

// Linear regression, loss = mean((xW + b − y)²): gradients are known in closed form, so every optimizer can be
// checked against a plain JS implementation of its PyTorch / solo-learn update rule.
const N = 4,
  I = 3,
  O = 2;
const X = randu([N, I], -1, 1, 11);
const Y = randu([N, O], -1, 1, 12);
const W0 = randn([I, O], 0.5, 13);
const B0 = randu([O], -0.1, 0.1, 14);

function model(): Graph {
  const b = new GraphBuilder('lin');
  const x = b.input('x', 'float32', ['N', I]);
  const y = b.input('y', 'float32', ['N', O]);
  const pred = b.add(b.matMul(x, b.param('w', W0)), b.param('b', B0));
  const d = b.sub(pred, y);
  b.output(b.reduceMean(b.mul(d, d), undefined, false), 'loss');
  return b.build();
}

function grads(w: Float64Array, bias: Float64Array): { gw: Float64Array; gb: Float64Array } {
  const x = X.data as Float32Array,
    y = Y.data as Float32Array;
  const gw = new Float64Array(I * O),
    gb = new Float64Array(O);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      let p = bias[o];
      for (let i = 0; i < I; i++) p += x[n * I + i] * w[i * O + o];
      const dp = (2 * (p - y[n * O + o])) / (N * O);
      gb[o] += dp;
      for (let i = 0; i < I; i++) gw[i * O + o] += x[n * I + i] * dp;
    }
  return { gw, gb };
}

type Ref = (
  p: Float64Array,
  g: Float64Array,
  st: Record<string, Float64Array>,
  lr: number,
  t: number,
  is1d: boolean,
) => void;

const norm = (a: Float64Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0));

function sgdRef(mu: number, wd: number, nesterov: boolean, damp = 0): Ref {
  return (p, g, st, lr) => {
    const buf = (st.buf ??= new Float64Array(p.length));
    for (let i = 0; i < p.length; i++) {
      const gi = g[i] + wd * p[i];
      buf[i] = mu * buf[i] + (1 - damp) * gi;
      p[i] -= lr * (nesterov ? gi + mu * buf[i] : mu ? buf[i] : gi);
    }
  };
}

function larsRef(mu: number, wd: number, eta: number, clip: boolean): Ref {
  return (p, g, st, lr, _t, is1d) => {
    let d = Float64Array.from(g);
    const pn = norm(p),
      gn = norm(g);
    if (!is1d && pn !== 0 && gn !== 0) {
      let trust = (eta * pn) / (gn + wd * pn + 1e-8);
      if (clip) trust = Math.min(trust / lr, 1);
      d = d.map((v, i) => (v + wd * p[i]) * trust);
    }
    const buf = (st.buf ??= new Float64Array(p.length));
    for (let i = 0; i < p.length; i++) {
      buf[i] = mu * buf[i] + d[i];
      p[i] -= lr * buf[i];
    }
  };
}

function adamwRef(b1: number, b2: number, eps: number, wd: number): Ref {
  return (p, g, st, lr, t) => {
    const m = (st.m ??= new Float64Array(p.length)),
      v = (st.v ??= new Float64Array(p.length));
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mh = m[i] / (1 - b1 ** t),
        vh = v[i] / (1 - b2 ** t);
      p[i] -= (lr * mh) / (Math.sqrt(vh) + eps);
    }
  };
}

async function check(opt: Optimizer, ref: Ref, lrs: number[]): Promise<void> {
  const tr = await Trainer.create({ graph: model(), loss: 'loss', optimizer: opt });
  const w = Float64Array.from(W0.data as Float32Array),
    b = Float64Array.from(B0.data as Float32Array);
  const sw = {},
    sb = {};
  for (let t = 1; t <= lrs.length; t++) {
    const { gw, gb } = grads(w, b);
    ref(w, gw, sw, lrs[t - 1], t, false);
    ref(b, gb, sb, lrs[t - 1], t, true);
    await tr.step({ x: X, y: Y }, lrs[t - 1]);
  }
  const p = tr.getParams();
  const scale = Math.max(...w.map(Math.abs), ...b.map(Math.abs));
  for (const [name, want] of [
    ['w', w],
    ['b', b],
  ] as const) {
    const got = p.get(name)!.data as Float32Array;
    for (let i = 0; i < want.length; i++)
      assert.ok(Math.abs(got[i] - want[i]) <= 2e-5 * scale, `${opt.kind} ${name}[${i}]: ${got[i]} vs ${want[i]}`);
  }
  // the step really moved the parameters
  assert.ok(Math.abs((p.get('w')!.data as Float32Array)[0] - (W0.data as Float32Array)[0]) > 1e-4);
}

const lrs = [0.1, 0.05, 0.08];
test('SGD plain matches torch.optim.SGD over 3 steps', () => check(new Sgd(), sgdRef(0, 0, false), lrs));
test('SGD momentum + weight decay matches torch.optim.SGD', () =>
  check(new Sgd({ momentum: 0.9, weightDecay: 1e-2 }), sgdRef(0.9, 1e-2, false), lrs));
test('SGD Nesterov with dampening matches torch.optim.SGD', () =>
  check(new Sgd({ momentum: 0.8, weightDecay: 5e-3, nesterov: true, dampening: 0 }), sgdRef(0.8, 5e-3, true), lrs));
test('LARS (solo-learn, bias excluded) matches the reference', () =>
  check(new Lars({ momentum: 0.9, weightDecay: 1e-4, eta: 0.02 }), larsRef(0.9, 1e-4, 0.02, false), [0.3, 0.3, 0.3]));
test('LARS with clip_lr matches the reference', () =>
  check(
    new Lars({ momentum: 0.9, weightDecay: 1e-4, eta: 0.02, clipLr: true }),
    larsRef(0.9, 1e-4, 0.02, true),
    [0.3, 0.2, 0.1],
  ));
test('AdamW matches torch.optim.AdamW (bias correction, decoupled decay)', () =>
  check(new AdamW({ weightDecay: 0.05 }), adamwRef(0.9, 0.999, 1e-8, 0.05), [1e-2, 1e-2, 5e-3]));

test('optimizer registry resolves names and suggests on a typo', () => {
  assert.equal(makeOptimizer('lars', { eta: 0.02 }).kind, 'lars');
  assert.throws(
    () => makeOptimizer('adamm'),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_UNKNOWN_NAME' && /adamw/.test(e.context.fix ?? ''),
  );
});

test('a NaN loss throws QCB_NAN_LOSS and leaves the parameters unchanged', async () => {
  const tr = await Trainer.create({ graph: model(), loss: 'loss', optimizer: new Sgd({ momentum: 0.9 }) });
  await tr.step({ x: X, y: Y }, 0.1);
  const before = tr.getParams().get('w')!.data.slice();
  const bad = fromArray(
    Array.from({ length: N * I }, (_, i) => (i === 0 ? Number.NaN : 0.5)),
    [N, I],
  );
  await assert.rejects(
    tr.step({ x: bad, y: Y }, 0.1),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_NAN_LOSS',
  );
  assert.deepEqual(tr.getParams().get('w')!.data, before);
  assert.equal(tr.steps, 1);
});

test('a feed of the wrong shape or dtype is QCB_FEED naming the input, before onnxruntime runs', async () => {
  const tr = await Trainer.create({ graph: model(), loss: 'loss', optimizer: new Sgd() });
  await assert.rejects(
    tr.step({ x: randu([N, I + 1]), y: Y }, 0.1),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FEED' && /'x'/.test(e.message),
  );
  await assert.rejects(
    tr.step({ x: X, y: randu([N + 1, O]) }, 0.1),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FEED' && /'N'/.test(e.message),
  );
  await assert.rejects(
    tr.step({ x: fromArray(new Array(N * I).fill(1), [N, I], 'float64'), y: Y }, 0.1),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FEED',
  );
});

test('pre-allocated double buffers and plain fetches give identical results', async () => {
  const a = await Trainer.create(
    { graph: model(), loss: 'loss', optimizer: new Sgd({ momentum: 0.9 }) },
    { preallocate: true },
  );
  const b = await Trainer.create(
    { graph: model(), loss: 'loss', optimizer: new Sgd({ momentum: 0.9 }) },
    { preallocate: false },
  );
  for (let i = 0; i < 4; i++) {
    const la = await a.step({ x: X, y: Y }, 0.05);
    const lb = await b.step({ x: X, y: Y }, 0.05);
    assert.equal(la.loss, lb.loss);
  }
  assert.deepEqual(a.getParams().get('w')!.data, b.getParams().get('w')!.data);
  assert.deepEqual(a.getState().get('w::momentum')!.data, b.getState().get('w::momentum')!.data);
});
