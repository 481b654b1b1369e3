import assert from 'node:assert/strict';
import { test } from 'node:test';
import { full, GraphBuilder, randn, randu, zeros } from '../../../src/engine/ir/builder.js';
import type { Graph } from '../../../src/engine/ir/graph.js';
import { nchwcBlockSize, rewriteNchwc } from '../../../src/engine/runtime/nchwc.js';
import { Sgd } from '../../../src/engine/train/optim/index.js';
import { Trainer } from '../../../src/engine/train/trainer.js';

/** Three convs (stride 1 and 2, one with bias and 16 → 32 channels) with BN in training mode and a squared-sum loss. */
function net(): Graph {
  const b = new GraphBuilder('nchwc_net');
  const x = b.input('x', 'float32', ['N', 16, 8, 8]);
  const c0 = b.relu(b.conv(x, b.param('c0.w', randn([16, 16, 3, 3], 0.2, 4)), undefined, { pads: [1, 1, 1, 1] }));
  const c1 = b.conv(c0, b.param('c1.w', randn([32, 16, 3, 3], 0.2, 1)), b.param('c1.b', randn([32], 0.1, 2)), {
    pads: [1, 1, 1, 1],
  });
  const bn = b.batchNorm(
    c1,
    b.param('bn.weight', full([32], 1)),
    b.param('bn.bias', zeros([32])),
    b.param('bn.running_mean', zeros([32])),
    b.param('bn.running_var', full([32], 1)),
  );
  const c2 = b.conv(b.relu(bn), b.param('c2.w', randn([32, 32, 3, 3], 0.2, 3)), undefined, {
    pads: [1, 1, 1, 1],
    strides: [2, 2],
  });
  b.output(b.reduceSum(b.mul(c2, c2), undefined, false), 'loss');
  return b.build();
}

async function twoSteps(nchwcMaxPlane: number) {
  const tr = await Trainer.create(
    { graph: net(), loss: 'loss', optimizer: new Sgd({ momentum: 0.9, weightDecay: 1e-4 }) },
    { noCache: true, nchwcMaxPlane },
  );
  const x = randu([4, 16, 8, 8], -1, 1, 7);
  const losses = [(await tr.step({ x }, 0.001)).loss, (await tr.step({ x }, 0.001)).loss];
  return { losses, params: tr.getParams(), compiled: tr.compiled.graph };
}

test('a training step through the NCHWc kernels equals the plain Conv step (forward and input-gradient convs)', async () => {
  const block = await nchwcBlockSize();
  const plain = await twoSteps(0);
  const blocked = await twoSteps(1 << 20);
  // which convs the rewrite takes: forward convs and the stride-1 input-gradient conv, all with 16/32 channels
  if (block) {
    const r = rewriteNchwc(blocked.compiled, block, 1 << 20);
    assert.equal(r.count, 4, 'three forward convs and the stride-1 input-gradient conv of c1');
    // the input-gradient conv's blocked weight comes from c1's weight itself, not from its transposed, flipped copy
    const fromW = r.graph.nodes.filter((n) => n.outputs.some((o) => /w_blocked_k\b/.test(o)));
    assert.equal(fromW.length, 1);
    assert.equal(fromW[0].inputs[0], 'c1.w');
  } else console.log('ℹ no NCHWc kernels on this CPU: both runs take the plain path');
  for (let i = 0; i < 2; i++)
    assert.ok(Math.abs(plain.losses[i] - blocked.losses[i]) <= 1e-5 * Math.abs(plain.losses[i]));
  for (const [k, t] of plain.params) {
    const a = t.data as Float32Array;
    const b = blocked.params.get(k)?.data as Float32Array;
    let err = 0;
    let mx = 1e-6;
    for (let i = 0; i < a.length; i++) {
      err = Math.max(err, Math.abs(a[i] - b[i]));
      mx = Math.max(mx, Math.abs(a[i]));
    }
    assert.ok(err <= 2e-5 * mx, `${k}: ${err} (max ${mx})`);
  }
});

test('the NCHWc rewrite takes only convs with computed weights, group 1, block-multiple channels, small planes', () => {
  const b = new GraphBuilder('sel');
  const x = b.input('x', 'float32', [2, 16, 8, 8]);
  const w = b.input('w', 'float32', [16, 16, 3, 3]);
  const dyn = b.conv(x, w, undefined, { pads: [1, 1, 1, 1] });
  const constant = b.conv(dyn, b.param('k', randn([16, 16, 1, 1], 0.1, 1)));
  const grouped = b.op1('Conv', [constant, b.input('wd', 'float32', [16, 1, 3, 3])], { group: 16, pads: [1, 1, 1, 1] });
  const odd = b.conv(grouped, b.input('w3', 'float32', [12, 16, 1, 1]));
  b.output(odd, 'y');
  const g = b.build();
  for (const block of [8, 16]) {
    const r = rewriteNchwc(g, block);
    assert.equal(r.count, 1, `block ${block}`);
    const ops = r.graph.nodes.map((n) => `${n.domain ? `${n.domain}.` : ''}${n.opType}`);
    assert.ok(ops.includes('com.microsoft.nchwc.ReorderInput') && ops.includes('com.microsoft.nchwc.ReorderOutput'));
    assert.equal(ops.filter((o) => o === 'Conv').length, 3, 'the constant, grouped and 12-channel convs stay');
  }
  assert.equal(rewriteNchwc(g, 16, 63).count, 0, 'a plane of 64 is over a limit of 63');
  assert.equal(g.nodes.filter((n) => n.domain).length, 0, 'the input graph is not modified');
});
