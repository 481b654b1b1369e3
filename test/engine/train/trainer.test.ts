import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { fromArray, full, GraphBuilder, randn, randu, zeros } from '../../../src/engine/ir/builder.js';
import type { Graph } from '../../../src/engine/ir/graph.js';
import { importOnnx } from '../../../src/engine/onnx/import.js';
import { loadSession, toOrt } from '../../../src/engine/runtime/session.js';
import { compileTrainStep } from '../../../src/engine/train/compile.js';
import { exportInference } from '../../../src/engine/train/export-inference.js';
import { Sgd } from '../../../src/engine/train/optim/index.js';
import { Trainer } from '../../../src/engine/train/trainer.js';

const fixtures = fileURLToPath(new URL('../../../../shared/fixtures/onnx/', import.meta.url));

/** conv → BN → relu → GAP → flatten → linear head; softmax cross-entropy with one-hot labels. */
function cnn(classes = 3): Graph {
  const b = new GraphBuilder('cnn');
  const x = b.input('x', 'float32', ['N', 2, 6, 6]);
  const yOneHot = b.input('y', 'float32', ['N', classes]);
  const c = b.conv(x, b.param('conv.weight', randn([4, 2, 3, 3], 0.4, 1)), b.param('conv.bias', zeros([4])), {
    pads: [1, 1, 1, 1],
  });
  const bn = b.batchNorm(
    c,
    b.param('bn.weight', full([4], 1)),
    b.param('bn.bias', zeros([4])),
    b.param('bn.running_mean', zeros([4])),
    b.param('bn.running_var', full([4], 1)),
  );
  const feat = b.flatten(b.globalAveragePool(b.relu(bn)));
  b.output(feat, 'features');
  const logits = b.gemm(
    'features',
    b.param('head.weight', randn([classes, 4], 0.3, 2)),
    b.param('head.bias', zeros([classes])),
    { transB: true },
  );
  b.output(logits, 'logits');
  const ce = b.neg(b.reduceMean(b.reduceSum(b.mul(b.logSoftmax('logits'), yOneHot), [1], false), undefined, false));
  b.output(ce, 'loss');
  return b.build();
}

const N = 8;
// learnable: class k = n mod 3 shifts channel 0 (k=0) or 1 (k=1) up, or both down (k=2)
const X = randu([N, 2, 6, 6], -1, 1, 5);
for (let n = 0; n < N; n++)
  for (let c = 0; c < 2; c++) {
    const k = n % 3;
    const shift = k === 2 ? -1 : k === c ? 1.5 : 0;
    for (let i = 0; i < 36; i++) (X.data as Float32Array)[(n * 2 + c) * 36 + i] += shift;
  }
const Y = fromArray(
  Array.from({ length: N * 3 }, (_, i) => (i % 3 === Math.floor(i / 3) % 3 ? 1 : 0)),
  [N, 3],
);

test('full training with BN in training mode: loss decreases and running stats follow the batch mean', async () => {
  const tr = await Trainer.create({
    graph: cnn(),
    loss: 'loss',
    optimizer: new Sgd({ momentum: 0.9 }),
    extraOutputs: ['logits'],
  });
  // training-mode BN becomes standard ops: no training-mode BatchNormalization, no private-domain node
  assert.ok(
    !tr.compiled.graph.nodes.some(
      (n) => n.domain !== '' || (n.opType === 'BatchNormalization' && n.attrs.training_mode),
    ),
    'BN lowered to standard ops',
  );
  assert.deepEqual(tr.compiled.params.map((p) => p.name).sort(), [
    'bn.bias',
    'bn.weight',
    'conv.bias',
    'conv.weight',
    'head.bias',
    'head.weight',
  ]);
  const first = await tr.step({ x: X, y: Y }, 0.1);
  assert.deepEqual([...first.outputs.logits.dims], [N, 3]);
  // running_mean after one step = 0.9·0 + 0.1·(batch mean of the conv output); conv output from the initial weights
  const probe = new GraphBuilder('probe');
  const px = probe.input('x', 'float32', ['N', 2, 6, 6]);
  const init = cnn().initializers;
  const pc = probe.conv(px, probe.param('w', init.get('conv.weight')!), probe.param('b', init.get('conv.bias')!), {
    pads: [1, 1, 1, 1],
  });
  probe.output(probe.reduceMean(pc, [0, 2, 3], false), 'mean');
  const s = await loadSession(probe.build(), { noCache: true });
  const mean = (await s.run({ x: toOrt(X) })).mean.data as Float32Array;
  const rm = tr.getParams().get('bn.running_mean')!.data as Float32Array;
  for (let c = 0; c < 4; c++)
    assert.ok(Math.abs(rm[c] - 0.1 * mean[c]) < 1e-5, `running_mean[${c}] ${rm[c]} vs ${0.1 * mean[c]}`);
  const rv = tr.getParams().get('bn.running_var')!.data as Float32Array;
  assert.ok(
    rv.every((v) => v > 0 && v !== 1),
    'running_var updated',
  );
  let last = first.loss;
  for (let i = 0; i < 30; i++) last = (await tr.step({ x: X, y: Y }, 0.1)).loss;
  assert.ok(last < first.loss * 0.7, `loss ${first.loss} → ${last}`);
});

test('linear probe: only the head trains, frozen weights stay initializers and BN stays in inference mode', async () => {
  const g = cnn();
  const c = compileTrainStep({
    graph: g,
    loss: 'loss',
    optimizer: new Sgd({ momentum: 0.9 }),
    trainable: ['head.weight', 'head.bias'],
  });
  assert.deepEqual(
    c.params.map((p) => p.name),
    ['head.weight', 'head.bias'],
  );
  assert.ok(c.graph.initializers.has('conv.weight'));
  assert.ok(c.graph.nodes.some((n) => n.opType === 'BatchNormalization'));
  assert.equal(c.state.filter((s) => s.name.startsWith('bn.')).length, 0);
  // no backward through the frozen encoder: no Conv gradient nodes
  assert.ok(!c.graph.nodes.some((n) => n.name.includes('Conv') && n.name.includes('grad')), 'no conv backward');
  const tr = await Trainer.create({
    graph: g,
    loss: 'loss',
    optimizer: new Sgd({ momentum: 0.9 }),
    trainable: ['head.weight', 'head.bias'],
  });
  const l0 = (await tr.step({ x: X, y: Y }, 0.5)).loss;
  let l = l0;
  for (let i = 0; i < 20; i++) l = (await tr.step({ x: X, y: Y }, 0.5)).loss;
  assert.ok(l < l0, `${l0} → ${l}`);
  const p = tr.getParams();
  assert.deepEqual(p.get('conv.weight')!.data, g.initializers.get('conv.weight')!.data);
  assert.notDeepEqual(p.get('head.weight')!.data, g.initializers.get('head.weight')!.data);
});

test('exportInference writes a standalone model with trained weights that onnxruntime runs', async () => {
  const tr = await Trainer.create({
    graph: cnn(),
    loss: 'loss',
    optimizer: new Sgd({ momentum: 0.9 }),
    extraOutputs: ['logits'],
  });
  for (let i = 0; i < 3; i++) await tr.step({ x: X, y: Y }, 0.05);
  const path = join(mkdtempSync(join(tmpdir(), 'qcb-export-')), 'model.onnx');
  const g = exportInference(tr, path, { outputs: ['features', 'logits'] });
  assert.deepEqual(
    g.inputs.map((i) => i.name),
    ['x'],
  );
  assert.ok(g.nodes.some((n) => n.opType === 'BatchNormalization' && !n.attrs.training_mode));
  const s = await ort.InferenceSession.create(path);
  const out = await s.run({ x: toOrt(X) });
  assert.deepEqual([...out.logits.dims], [N, 3]);
  // inference uses running stats: compare with the graph rebuilt from getParams()
  const ref = cnn();
  for (const [k, t] of tr.getParams()) if (ref.initializers.has(k)) ref.initializers.set(k, t);
  ref.outputs = [{ name: 'logits', dtype: 'float32' }];
  const rs = await loadSession(ref, { noCache: true });
  const want = (await rs.run({ x: toOrt(X), y: toOrt(Y) })).logits.data as Float32Array;
  const got = out.logits.data as Float32Array;
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5);
  // default outputs: everything but the loss
  const g2 = exportInference(tr, path);
  assert.deepEqual(g2.outputs.map((o) => o.name).sort(), ['features', 'logits']);
});

test('fine-tuning step on the imported VGG fixture (opset 13 → 17, folded Identity copies) runs and learns', async () => {
  const g = importOnnx(join(fixtures, 'vgg_small_tv.onnx'));
  const b = new GraphBuilder(g);
  const y = b.input('y', 'float32', ['batch', 128]);
  const d = b.sub('features', y);
  b.output(b.reduceMean(b.mul(d, d), undefined, false), 'loss');
  const tr = await Trainer.create({
    graph: b.build(),
    loss: 'loss',
    optimizer: new Sgd({ momentum: 0.9, weightDecay: 1e-4 }),
  });
  assert.equal(tr.compiled.params.length, g.initializers.size);
  const x = randu([2, 3, 64, 64], 0, 1, 9);
  const target = randu([2, 128], 0, 0.1, 10);
  const l0 = (await tr.step({ input: x, y: target }, 0.05)).loss;
  let l = l0;
  for (let i = 0; i < 5; i++) l = (await tr.step({ input: x, y: target }, 0.05)).loss;
  assert.ok(l < l0, `${l0} → ${l}`);
});

test('gradients through training-mode BatchNormalization (lowered to standard ops) match central finite differences', async () => {
  // plain SGD with lr = 1: p' = p − ∇L, so the step reveals the gradient; lr = 0 evaluates L at perturbed p.
  const tr = await Trainer.create({ graph: cnn(), loss: 'loss', optimizer: new Sgd() });
  const c = tr.compiled;
  const base: Record<string, ort.Tensor> = { x: toOrt(X), y: toOrt(Y) };
  for (const p of [...c.params, ...c.state]) base[p.input] = toOrt(p.init);
  const run = async (feeds: Record<string, ort.Tensor>, lr: number) =>
    tr.session.run({ ...feeds, [c.lr]: toOrt({ dtype: 'float32', dims: [], data: Float32Array.of(lr) }) });
  const out = await run(base, 1);
  for (const name of ['conv.weight', 'bn.weight', 'bn.bias', 'conv.bias']) {
    const p = c.params.find((q) => q.name === name)!;
    const p0 = p.init.data as Float32Array;
    const p1 = out[p.output].data as Float32Array;
    const grad = p0.map((v, i) => v - p1[i]);
    const scale = Math.max(...grad.map(Math.abs));
    for (const i of [0, 1, Math.floor(p0.length / 2), p0.length - 1]) {
      const eps = 1e-2;
      const lossAt = async (d: number) => {
        const data = p0.slice();
        data[i] += d;
        const r = await run({ ...base, [p.input]: toOrt({ dtype: 'float32', dims: p.init.dims, data }) }, 0);
        return (r[c.loss].data as Float32Array)[0];
      };
      const fd = ((await lossAt(eps)) - (await lossAt(-eps))) / (2 * eps);
      assert.ok(
        Math.abs(fd - grad[i]) <= 2e-2 * scale + 1e-4,
        `${name}[${i}]: autodiff ${grad[i]} vs finite difference ${fd}`,
      );
    }
  }
  // conv.bias has no effect before a training-mode BN (the batch mean removes it): its gradient is ~0
  const cb = c.params.find((q) => q.name === 'conv.bias')!;
  const cbNew = out[cb.output].data as Float32Array;
  assert.ok(cbNew.every((v, i) => Math.abs(v - (cb.init.data as Float32Array)[i]) < 1e-5));
});

test('Dropout is active in training steps (mask × 1/(1−p) in the gradient) and inactive in the exported model', async () => {
  const D = 2000;
  const b = new GraphBuilder('drop');
  const x = b.input('x', 'float32', [D]);
  const h = b.op('Dropout', [b.mul(x, b.param('w', full([D], 1))), b.scalar(0.25)], {}, 1)[0];
  b.output(h, 'out');
  b.output(b.reduceSum(h, undefined, false), 'loss');
  const g = b.build();
  const tr = await Trainer.create({ graph: g, loss: 'loss', optimizer: new Sgd() }, { seed: 7 });
  await tr.step({ x: full([D], 1) }, 1); // w' = w − dL/dw = 1 − mask/(1−0.25)
  const w = tr.getParams().get('w')!.data as Float32Array;
  const dropped = w.filter((v) => v === 1).length;
  const kept = w.filter((v) => Math.abs(v - (1 - 1 / 0.75)) < 1e-6).length;
  assert.equal(dropped + kept, D);
  assert.ok(dropped > D * 0.18 && dropped < D * 0.32, `dropped ${dropped} of ${D}`);
  const ig = (await import('../../../src/engine/train/export-inference.js')).inferenceGraph(tr, { outputs: ['out'] });
  const s = await loadSession(ig, { noCache: true });
  const out = (await s.run({ x: toOrt(full([D], 1)) })).out.data as Float32Array;
  assert.deepEqual(Array.from(out), Array.from(w)); // x = 1: out = w exactly, nothing dropped or rescaled
});
