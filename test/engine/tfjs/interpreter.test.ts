import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GraphBuilder } from '../../../src/engine/ir/builder.js';
import type { Dim, Tensor } from '../../../src/engine/ir/graph.js';
import { attr } from '../../../src/engine/ir/graph.js';
import { inferShapes } from '../../../src/engine/ir/shapes.js';
import { fromOrt, loadSession, toOrt } from '../../../src/engine/runtime/session.js';
import { initTfjsEngine, runGraph, TFJS_OPS, tfjsGradients } from '../../../src/engine/tfjs/interpreter.js';
import { QcbError } from '../../../src/errors.js';
import { randTensor } from '../grad/_check.js';

type AttrMap = Record<string, number | number[] | string | ReturnType<typeof attr.int>>;

/** Runs one op in the interpreter and in onnxruntime and returns the max abs difference per output. */
async function agree(
  op: string,
  inputs: { shape: Dim[]; t: Tensor; param?: boolean }[],
  attrs: AttrMap = {},
  nOut = 1,
  opset = 17,
) {
  const b = new GraphBuilder('t', opset);
  const names = inputs.map((inp, i) =>
    inp.param ? b.param(`p${i}`, inp.t) : b.input(`x${i}`, inp.t.dtype, inp.shape),
  );
  const outs = b.op(op, names, attrs, nOut);
  b.graph.outputs = outs.map((o) => ({ name: o, dtype: 'float32' }));
  inferShapes(b.graph);
  const feeds: Record<string, Tensor> = {};
  inputs.forEach((inp, i) => {
    if (!inp.param) feeds[`x${i}`] = inp.t;
  });
  const ours = runGraph(b.graph, feeds);
  const s = await loadSession(b.graph, { intraOpNumThreads: 1, noCache: true });
  const ref = await s.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrt(v)])));
  await s.session.release();
  return outs.map((o) => {
    const a = ours[o];
    const r = fromOrt(ref[o]);
    assert.deepEqual(a.dims, r.dims, `${op} output ${o} shape`);
    let m = 0;
    for (let i = 0; i < r.data.length; i++) m = Math.max(m, Math.abs(Number(a.data[i]) - Number(r.data[i])));
    return m;
  });
}

const X = (dims: number[], seed = 1) => ({ shape: dims as Dim[], t: randTensor(dims, seed) });
const P = (dims: number[], seed = 2) => ({ shape: dims as Dim[], t: randTensor(dims, seed), param: true });

test('Conv and ConvTranspose agree with onnxruntime (groups, strides, dilations, pads, output_padding, auto_pad)', async () => {
  const cases: [string, ReturnType<typeof X>[], AttrMap][] = [
    [
      'Conv',
      [X([2, 4, 7, 6]), P([6, 2, 3, 3]), P([6], 3)],
      { group: 2, strides: [2, 1], pads: [1, 0, 2, 1], dilations: [1, 2] },
    ],
    ['Conv', [X([1, 3, 7, 7]), P([3, 1, 3, 3])], { group: 3, auto_pad: 'SAME_UPPER', strides: [2, 2] }],
    ['Conv', [X([1, 3, 7, 7]), P([2, 3, 4, 4])], { auto_pad: 'SAME_LOWER', strides: [2, 2] }],
    [
      'ConvTranspose',
      [X([1, 4, 3, 4]), P([4, 3, 3, 3]), P([6], 4)],
      { group: 2, strides: [2, 2], pads: [1, 0, 1, 1], output_padding: [1, 0] },
    ],
    ['ConvTranspose', [X([1, 2, 4, 4]), P([2, 3, 2, 3])], { dilations: [2, 1], strides: [1, 3] }],
  ];
  for (const [op, ins, a] of cases) {
    const [e] = await agree(op, ins, a);
    assert.ok(e < 1e-4, `${op} ${JSON.stringify(a)}: ${e}`);
  }
});

test('MaxPool and AveragePool agree with onnxruntime (ceil_mode, count_include_pad, dilations, indices convention)', async () => {
  const cases: [string, AttrMap, number][] = [
    ['MaxPool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 2],
    ['MaxPool', { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }, 2],
    ['MaxPool', { kernel_shape: [2, 2], dilations: [2, 2], pads: [0, 1, 1, 0] }, 2],
    ['AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 0, 1, 2] }, 1],
    ['AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1 }, 1],
    ['AveragePool', { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }, 1],
    [
      'AveragePool',
      { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 1 },
      1,
    ],
  ];
  for (const [op, a, n] of cases) {
    const errs = await agree(op, [X([2, 3, 7, 7])], a, n);
    for (const e of errs) assert.ok(e < 1e-5, `${op} ${JSON.stringify(a)}: ${e}`);
  }
});

test('normalisation, activations, shapes and reductions agree with onnxruntime', async () => {
  const pos = (dims: number[]) => ({
    shape: dims as Dim[],
    t: { ...randTensor(dims, 5), data: (randTensor(dims, 5).data as Float32Array).map((v) => Math.abs(v) + 0.5) },
    param: true,
  });
  const checks: [string, ReturnType<typeof X>[], AttrMap, number?][] = [
    ['BatchNormalization', [X([2, 3, 4, 4]), P([3], 6), P([3], 7), P([3], 8), pos([3])], { epsilon: attr.float(1e-3) }],
    ['LayerNormalization', [X([2, 3, 8]), P([8], 9), P([8], 10)], { axis: -1 }],
    ['Softmax', [X([2, 3, 4])], { axis: 1 }],
    ['LogSoftmax', [X([2, 3, 4])], {}],
    ['HardSwish', [X([2, 3, 4])], {}],
    ['HardSigmoid', [X([2, 3, 4])], { alpha: attr.float(0.3) }],
    ['Erf', [X([2, 3, 4])], {}],
    ['ReduceL2', [X([2, 3, 4])], { axes: [1], keepdims: 0 }],
    ['ReduceLogSumExp', [X([2, 3, 4])], { axes: [0, 2], keepdims: 1 }],
    ['Flatten', [X([2, 3, 4])], { axis: 2 }],
  ];
  for (const [op, ins, a] of checks) {
    const errs = await agree(op, ins, a);
    for (const e of errs) assert.ok(e < 1e-4, `${op}: ${e}`);
  }
  // BatchNormalization in training mode: output and running statistics
  const errs = await agree(
    'BatchNormalization',
    [X([4, 3, 3, 3]), P([3], 6), P([3], 7), P([3], 8), pos([3])],
    { training_mode: 1, momentum: attr.float(0.8) },
    3,
  );
  assert.ok(errs[0] < 1e-4, `BN training output ${errs[0]}`);
  assert.ok(errs[1] < 1e-5 && errs[2] < 1e-5, `BN running mean/var (momentum, population variance) ${errs}`);
});

test('runGraph returns int64 for Shape and honours Slice with negative steps, Gather with negative indices', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', ['N', 5]);
  const shp = b.op1('Shape', [x]);
  const sl = b.op1('Slice', [x, b.ints([-1]), b.ints([-100]), b.ints([1]), b.ints([-2])]);
  const ga = b.op1('Gather', [x, b.ints([-1, 0])], { axis: 1 });
  inferShapes(b.graph);
  const xv: Tensor = { dtype: 'float32', dims: [2, 5], data: new Float32Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) };
  const out = runGraph(b.graph, { x: xv }, [shp, sl, ga]);
  assert.equal(out[shp].dtype, 'int64');
  assert.deepEqual(Array.from(out[shp].data as BigInt64Array, Number), [2, 5]);
  assert.deepEqual(Array.from(out[sl].data as Float32Array), [4, 2, 0, 9, 7, 5]);
  assert.deepEqual(Array.from(out[ga].data as Float32Array), [4, 0, 9, 5]);
});

test('tfjsGradients: TF.js autodiff through the interpreted graph (d/dx Σ x²·w = 2x·w, d/dw = x²)', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', [3]);
  const w = b.param('w', { dtype: 'float32', dims: [3], data: new Float32Array([1, 2, 3]) });
  const loss = b.reduceSum(b.mul(b.mul(x, x), w), undefined, false);
  inferShapes(b.graph);
  const r = tfjsGradients(b.graph, loss, ['x', 'w'], {
    x: { dtype: 'float32', dims: [3], data: new Float32Array([1, -1, 2]) },
  });
  assert.equal(r.loss, 1 + 2 + 12);
  assert.deepEqual(Array.from(r.grads.x.data as Float32Array), [2, -4, 12]);
  assert.deepEqual(Array.from(r.grads.w.data as Float32Array), [1, 1, 4]);
});

test('an op the interpreter lacks throws QCB_ONNX_UNSUPPORTED_OP listing what it runs', () => {
  const b = new GraphBuilder('t');
  const y = b.op1('Sin', [b.input('x', 'float32', [2])]);
  b.graph.outputs = [{ name: y, dtype: 'float32' }];
  assert.throws(
    () => runGraph(b.graph, { x: { dtype: 'float32', dims: [2], data: new Float32Array(2) } }),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_ONNX_UNSUPPORTED_OP' &&
      /Sin/.test(e.message) &&
      (e.context.allowed ?? '').includes('Conv'),
  );
  assert.ok(TFJS_OPS.includes('ScatterElements') && TFJS_OPS.includes('ConvTranspose'));
});

test('initTfjsEngine falls back to the pure-JS CPU backend when tfjs-node is not installed', async () => {
  const backend = await initTfjsEngine();
  assert.ok(backend === 'cpu' || backend === 'tensorflow');
  const b = new GraphBuilder('t');
  const y = b.relu(b.input('x', 'float32', [3]));
  b.graph.outputs = [{ name: y, dtype: 'float32' }];
  const out = runGraph(b.graph, { x: { dtype: 'float32', dims: [3], data: new Float32Array([-1, 0, 2]) } });
  assert.deepEqual(Array.from(out[y].data as Float32Array), [0, 0, 2]);
});

test('TopK agrees with onnxruntime (largest and smallest, middle and last axis, values and indices)', async () => {
  for (const [axis, largest] of [
    [1, 1],
    [-1, 1],
    [1, 0],
  ]) {
    const b = new GraphBuilder('topk');
    const x = b.input('x', 'float32', [2, 5, 3]);
    const [v, i] = b.op('TopK', [x, b.ints([2])], { axis, largest }, 2);
    b.graph.outputs = [
      { name: v, dtype: 'float32' },
      { name: i, dtype: 'int64' },
    ];
    inferShapes(b.graph);
    const feeds = { x: randTensor([2, 5, 3], 31) };
    const ours = runGraph(b.graph, feeds);
    const s = await loadSession(b.graph, { intraOpNumThreads: 1, noCache: true });
    const ref = await s.run({ x: toOrt(feeds.x) });
    await s.session.release();
    for (const o of [v, i]) {
      const r = fromOrt(ref[o]);
      assert.deepEqual(ours[o].dims, r.dims, `axis ${axis}: ${o} shape`);
      assert.deepEqual(Array.from(ours[o].data, Number), Array.from(r.data, Number), `axis ${axis} largest ${largest}`);
    }
  }
});
