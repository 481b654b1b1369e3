import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GraphBuilder, randn, zeros } from '../../../src/engine/ir/builder.js';
import { inferShapes, reshapeTarget, SUPPORTED_OPS } from '../../../src/engine/ir/shapes.js';
import { importOnnx } from '../../../src/engine/onnx/import.js';
import { QcbError } from '../../../src/errors.js';

const fixtures = fileURLToPath(new URL('../../../../shared/fixtures/onnx/', import.meta.url));

for (const [name, d] of [
  ['resnet18_tv', 512],
  ['vgg_small_tv', 128],
  ['convnext_small_tv', 192],
] as const) {
  test(`${name}: features are batch×${d} and every node output has a shape`, () => {
    const g = importOnnx(join(fixtures, `${name}.onnx`));
    assert.deepEqual(g.values.get('features')?.shape, ['batch', d]);
    for (const n of g.nodes) for (const o of n.outputs) assert.ok(g.values.get(o)?.shape, `${o} has no shape`);
  });
}

test('resnet18 intermediate shapes follow conv/pool arithmetic at 64×64', () => {
  const g = importOnnx(join(fixtures, 'resnet18_tv.onnx'));
  assert.deepEqual(g.values.get('/conv1/Conv_output_0')?.shape, ['batch', 64, 32, 32]);
  assert.deepEqual(g.values.get('/maxpool/MaxPool_output_0')?.shape, ['batch', 64, 16, 16]);
});

test('Shape → Gather → Concat → Reshape resolves statically with a symbolic batch', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', ['N', 4, 3, 3]);
  const s = b.op1('Shape', [x]);
  const n = b.op1('Gather', [s, b.constant({ dtype: 'int64', dims: [1], data: BigInt64Array.from([0n]) })], {
    axis: 0,
  });
  const tgt = b.concat([n, b.ints([-1])], 0);
  const y = b.op1('Reshape', [x, tgt]);
  const e = b.op1('Expand', [b.scalar(1), b.op1('Shape', [y])]);
  b.output(e);
  const g = b.build();
  assert.deepEqual(g.values.get(y)?.shape, ['N', 36]);
  assert.deepEqual(g.values.get(e)?.shape, ['N', 36]);
});

test('Conv with groups, strides, asymmetric pads, dilation and auto_pad; ConvTranspose inverts a strided conv', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', [2, 8, 15, 15]);
  const w = b.param('w', randn([8, 1, 3, 3]));
  const dw = b.conv(x, w, undefined, { group: 8, strides: [2, 2], pads: [0, 1, 1, 0] });
  const dil = b.conv(x, b.param('w2', randn([4, 8, 3, 3])), undefined, { dilations: [2, 2] });
  const same = b.conv(x, b.param('w3', randn([4, 8, 3, 3])), undefined, { autoPad: 'SAME_UPPER', strides: [2, 2] });
  const ct = b.op1('ConvTranspose', [dw, b.param('wt', randn([8, 8, 3, 3]))], {
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    output_padding: [0, 0],
  });
  const mp = b.op('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }, 2);
  b.output(dw);
  b.output(dil);
  b.output(same);
  b.output(ct);
  b.output(mp[0]);
  const g = b.build();
  assert.deepEqual(g.values.get(dw)?.shape, [2, 8, 7, 7]);
  assert.deepEqual(g.values.get(dil)?.shape, [2, 4, 11, 11]);
  assert.deepEqual(g.values.get(same)?.shape, [2, 4, 8, 8]);
  assert.deepEqual(g.values.get(ct)?.shape, [2, 8, 13, 13]);
  assert.deepEqual(g.values.get(mp[0])?.shape, [2, 8, 8, 8]);
  assert.equal(g.values.get(mp[1])?.dtype, 'int64');
});

test('reductions, MatMul broadcasting, Gemm, Slice, Split, Transpose, Squeeze/Unsqueeze, Pad, Where, BN training', () => {
  const b = new GraphBuilder('t', 17);
  const x = b.input('x', 'float32', ['N', 6, 4]);
  const r = b.reduceSum(x, [1], false);
  const rm = b.reduceMean(x, [-1]);
  const mm = b.matMul(x, b.param('m', zeros([4, 5])));
  const gm = b.gemm(b.input('a', 'float32', [3, 4]), b.param('bw', zeros([7, 4])), undefined, { transB: true });
  const sl = b.op1('Slice', [x, b.ints([1]), b.ints([-1]), b.ints([1]), b.ints([2])]);
  const sp = b.op('Split', [x, b.ints([2, 4])], { axis: 1 }, 2);
  const tr = b.transpose(x, [2, 0, 1]);
  const un = b.op1('Unsqueeze', [x, b.ints([0, -1])]);
  const sq = b.op1('Squeeze', [un, b.ints([0])]);
  const pd = b.op1('Pad', [x, b.ints([0, 1, 2, 0, 1, 2])]);
  const wh = b.op1('Where', [b.op1('Greater', [x, b.scalar(0)]), x, b.scalar(0)]);
  const img = b.input('img', 'float32', ['N', 3, 5, 5]);
  const bn = b.op(
    'BatchNormalization',
    [img, b.param('s', zeros([3])), b.param('bb', zeros([3])), b.param('rm', zeros([3])), b.param('rv', zeros([3]))],
    { training_mode: 1 },
    3,
  );
  for (const v of [r, rm, mm, gm, sl, sp[0], sp[1], tr, sq, pd, wh, ...bn]) b.output(v);
  const g = b.build();
  const s = (v: string) => g.values.get(v)?.shape;
  assert.deepEqual(s(r), ['N', 4]);
  assert.deepEqual(s(rm), ['N', 6, 1]);
  assert.deepEqual(s(mm), ['N', 6, 5]);
  assert.deepEqual(s(gm), [3, 7]);
  assert.deepEqual(s(sl), ['N', 2, 4]); // axis 1, [1, 5) step 2
  assert.deepEqual(
    [s(sp[0]), s(sp[1])],
    [
      ['N', 2, 4],
      ['N', 4, 4],
    ],
  );
  assert.deepEqual(s(tr), [4, 'N', 6]);
  assert.deepEqual(s(sq), ['N', 6, 4, 1]);
  assert.deepEqual(s(pd), ['N', 8, 8]);
  assert.deepEqual(s(wh), ['N', 6, 4]);
  assert.equal(g.values.get(b.graph.nodes.find((n) => n.opType === 'Greater')!.outputs[0])?.dtype, 'bool');
  assert.deepEqual([s(bn[0]), s(bn[1]), s(bn[2])], [['N', 3, 5, 5], [3], [3]]);
});

test('Reshape with -1 keeps symbols and rejects a wrong element count', () => {
  assert.deepEqual(reshapeTarget(['N', 512, 1, 1], [0, -1], false, 'r'), ['N', 512]);
  assert.deepEqual(reshapeTarget(['N', 6], [-1, 3], false, 'r'), ['N*2', 3]);
  assert.deepEqual(reshapeTarget([2, 6], [4, -1], false, 'r'), [4, 3]);
  assert.throws(
    () => reshapeTarget([2, 5], [4, -1], false, 'r'),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ONNX_GRAPH',
  );
});

test('unknown operator throws QCB_ONNX_UNSUPPORTED_OP naming op, node and the supported list', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', [1, 2]);
  b.output(b.op1('FancyOp', [x], {}, 'fancy'));
  try {
    b.build();
    assert.fail('no error');
  } catch (e) {
    assert.ok(e instanceof QcbError);
    assert.equal(e.code, 'QCB_ONNX_UNSUPPORTED_OP');
    assert.match(e.message, /FancyOp/);
    assert.match(e.message, /fancy_node/);
    assert.match(e.context.allowed ?? '', /Conv, ConvTranspose/);
  }
  assert.ok(SUPPORTED_OPS.includes('ScatterElements') && SUPPORTED_OPS.includes('TopK'));
});

test('a node reading an undefined value and a broadcast mismatch give QCB_ONNX_GRAPH', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', [2, 3]);
  b.output(b.add(x, 'nowhere'));
  assert.throws(
    () => b.build(),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ONNX_GRAPH' && /nowhere/.test(e.message),
  );
  const c = new GraphBuilder('t');
  const y = c.input('y', 'float32', [2, 3]);
  c.output(c.add(y, c.param('z', zeros([4]))));
  assert.throws(
    () => inferShapes(c.graph),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ONNX_GRAPH',
  );
});
