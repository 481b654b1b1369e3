import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder, randn, randu, zeros } from '../../../src/engine/ir/builder.js';
import type { Graph } from '../../../src/engine/ir/graph.js';
import { compileTrainStep } from '../../../src/engine/train/compile.js';
import { lowerSmallConvs } from '../../../src/engine/train/conv-gemm.js';
import { Sgd } from '../../../src/engine/train/optim/index.js';
import { Trainer } from '../../../src/engine/train/trainer.js';
import { inferShapes } from '../../../src/engine/ir/shapes.js';

/**
 * Convs of every geometry the lowering handles (stride 2, asymmetric pads, dilation, 1×1 stride-2 shortcut, bias and
 * no bias, VALID) feeding a squared-sum loss: one SGD step must give the same loss and parameters with and without
 * the batch-wide GEMM lowering.
 */
function net(): Graph {
  const b = new GraphBuilder('convs');
  const x = b.input('x', 'float32', ['N', 3, 9, 9]);
  const c1 = b.relu(
    b.conv(x, b.param('c1.w', randn([5, 3, 3, 3], 0.3, 1)), b.param('c1.b', randn([5], 0.1, 2)), {
      pads: [1, 0, 2, 1],
      strides: [2, 2],
    }),
  );
  const c2 = b.conv(c1, b.param('c2.w', randn([4, 5, 3, 3], 0.3, 3)), undefined, {
    pads: [2, 2, 2, 2],
    dilations: [2, 2],
  });
  const sc = b.conv(c1, b.param('sc.w', randn([4, 5, 1, 1], 0.3, 4)), undefined, { strides: [1, 1] });
  const c3 = b.op1('Conv', [b.add(c2, sc), b.param('c3.w', randn([2, 4, 2, 3], 0.3, 5)), b.param('c3.b', zeros([2]))], {
    auto_pad: 'VALID',
    strides: [2, 1],
  });
  b.output(b.reduceSum(b.mul(c3, c3), undefined, false), 'loss');
  return b.build();
}

async function oneStep(maxPlane: number) {
  const tr = await Trainer.create(
    { graph: net(), loss: 'loss', optimizer: new Sgd({ momentum: 0.9 }), convGemmMaxPlane: maxPlane },
    { noCache: true },
  );
  const x = randu([4, 3, 9, 9], -1, 1, 9);
  const r1 = await tr.step({ x }, 0.01);
  const r2 = await tr.step({ x }, 0.01);
  return { losses: [r1.loss, r2.loss], params: tr.getParams(), graph: tr.compiled.graph };
}

test('small-plane convs lowered to one GEMM give the same loss and SGD updates as Conv', async () => {
  const plain = await oneStep(0);
  const lowered = await oneStep(1 << 20);
  assert.ok(!plain.graph.nodes.some((n) => n.name.includes(':gemm/')), 'maxPlane 0 turns the lowering off');
  assert.equal(lowered.graph.nodes.filter((n) => n.opType === 'Conv' && !n.name.includes('grad')).length, 0);
  for (let i = 0; i < 2; i++)
    assert.ok(
      Math.abs(plain.losses[i] - lowered.losses[i]) <= 1e-5 * Math.abs(plain.losses[i]),
      `${plain.losses[i]} vs ${lowered.losses[i]}`,
    );
  for (const [k, t] of plain.params) {
    const a = t.data as Float32Array;
    const b = lowered.params.get(k)?.data as Float32Array;
    let err = 0;
    let mx = 0;
    for (let i = 0; i < a.length; i++) {
      err = Math.max(err, Math.abs(a[i] - b[i]));
      mx = Math.max(mx, Math.abs(a[i]));
    }
    assert.ok(err <= 1e-5 * Math.max(mx, 1e-3), `${k}: max abs difference ${err}`);
  }
});

test('the lowering leaves constant-weight, grouped and large-plane convs as Conv', () => {
  const b = new GraphBuilder('keep');
  const x = b.input('x', 'float32', [2, 4, 20, 20]);
  const big = b.conv(x, b.param('big.w', randn([4, 4, 3, 3], 0.3, 1)), undefined, { pads: [1, 1, 1, 1] });
  const dw = b.op1('Conv', [big, b.param('dw.w', randn([4, 1, 3, 3], 0.3, 2))], { group: 4, strides: [4, 4] });
  const frozen = b.conv(dw, b.param('frozen.w', randn([4, 4, 1, 1], 0.3, 3)));
  b.output(frozen, 'y');
  const g = b.build();
  const n = lowerSmallConvs(g, (w) => w !== 'frozen.w', 16 * 16);
  assert.equal(n, 0);
  inferShapes(g);
  assert.deepEqual(
    g.nodes.filter((k) => k.opType === 'Conv').map((k) => k.inputs[1]),
    ['big.w', 'dw.w', 'frozen.w'],
  );
  // the same big conv is lowered once its plane is under the limit
  assert.equal(lowerSmallConvs(g, (w) => w === 'big.w', 400), 1);
});

test('compileTrainStep keeps the exported forward graph as Conv (prepacked weights at inference)', () => {
  const c = compileTrainStep({ graph: net(), loss: 'loss', optimizer: new Sgd({}) });
  assert.equal(c.forward.nodes.filter((n) => n.opType === 'Conv').length, 4);
  assert.ok(c.graph.nodes.some((n) => n.name.includes(':gemm/')));
});
