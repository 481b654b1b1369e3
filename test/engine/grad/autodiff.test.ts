import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appendBackward, supportedGradOps } from '../../../src/engine/grad/autodiff.js';
import { GRAD_RULES } from '../../../src/engine/grad/index.js';
import { GraphBuilder } from '../../../src/engine/ir/builder.js';
import { inferShapes } from '../../../src/engine/ir/shapes.js';
import { runGraph } from '../../../src/engine/tfjs/interpreter.js';
import { QcbError } from '../../../src/errors.js';
import { checkGrad, randTensor } from './_check.js';

test('fan-out: a value used three times accumulates its gradients with Sum', async () => {
  const r = await checkGrad({
    build: (b) => {
      const x = b.input('x', 'float32', ['N', 4]);
      return b.add(b.mul(x, x), b.relu(x));
    },
    wrt: ['x'],
    feeds: { x: randTensor([3, 4], 81) },
  });
  assert.ok(r.graph.nodes.some((n) => n.opType === 'Sum' && n.inputs.length === 3));
});

test('a small CNN (Conv-BN-Relu-MaxPool-Conv-GAP-Flatten-Gemm) with symbolic batch: all parameter gradients', async () => {
  const p = (name: string, dims: number[], seed: number, s = 0.4) => ({ name, t: randTensor(dims, seed, s) });
  const params = [
    p('w1', [4, 3, 3, 3], 1),
    p('s1', [4], 2),
    p('b1', [4], 3),
    p('w2', [6, 4, 3, 3], 4),
    p('c2', [6], 5),
    p('fc', [5, 6], 6),
    p('fb', [5], 7),
  ];
  const v = randTensor([4], 8);
  const varT = { ...v, data: (v.data as Float32Array).map((x) => Math.abs(x) + 0.5) };
  await checkGrad({
    build: (b) => {
      const P = Object.fromEntries(params.map((q) => [q.name, b.param(q.name, q.t)]));
      const x = b.input('x', 'float32', ['N', 3, 10, 10]);
      let h = b.conv(x, P.w1, undefined, { pads: [1, 1, 1, 1] });
      h = b.op(
        'BatchNormalization',
        [h, P.s1, P.b1, b.param('m1', randTensor([4], 9, 0.1)), b.param('v1', varT)],
        { training_mode: 1 },
        3,
      )[0];
      h = b.relu(h);
      h = b.maxPool(h, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
      h = b.conv(h, P.w2, P.c2, { strides: [2, 2], pads: [1, 1, 1, 1] });
      h = b.flatten(b.globalAveragePool(h));
      return b.gemm(h, P.fc, P.fb, { transB: true });
    },
    wrt: ['x', ...params.map((q) => q.name)],
    feeds: { x: randTensor([3, 3, 10, 10], 10) },
    tol: 5e-4,
    eps: 1e-3, // small: a perturbed BN scale moves a whole channel, and Relu/MaxPool switches break differences
    fdTol: 3e-2,
  });
});

test('only nodes between wrt and the loss are differentiated; an unrelated wrt gets zeros', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', [2, 3]);
  const c = b.input('c', 'float32', [2, 3]);
  const w = b.param('w', randTensor([2, 3], 1));
  const unused = b.param('unused', randTensor([3], 2));
  const constBranch = b.exp(c); // does not depend on wrt: no backward node for Exp
  const side = b.sigmoid(x); // does not reach the loss
  b.output(side);
  const loss = b.reduceSum(b.mul(b.mul(x, w), constBranch), undefined, false);
  inferShapes(b.graph);
  const nFwd = b.graph.nodes.length;
  const grads = appendBackward(b.graph, loss, ['w', unused]);
  const bwd = b.graph.nodes.slice(nFwd);
  assert.ok(
    !bwd.some((n) => n.name.startsWith('exp') || n.name.startsWith('sigmoid')),
    'no backward of Exp or Sigmoid',
  );
  assert.ok(!bwd.some((n) => n.opType === 'Exp' || n.opType === 'Sigmoid'));
  inferShapes(b.graph);
  const feeds = { x: randTensor([2, 3], 3), c: randTensor([2, 3], 4) };
  const out = runGraph(b.graph, feeds, [grads.get('w') as string, grads.get('unused') as string]);
  const gw = out[grads.get('w') as string].data as Float32Array;
  const xs = feeds.x.data as Float32Array;
  const cs = feeds.c.data as Float32Array;
  gw.forEach((g, i) => {
    assert.ok(Math.abs(g - xs[i] * Math.exp(cs[i])) < 1e-4 * Math.max(1, Math.abs(g)));
  });
  assert.deepEqual(Array.from(out[grads.get('unused') as string].data as Float32Array), [0, 0, 0]);
  assert.deepEqual(b.graph.values.get(grads.get('unused') as string)?.shape, [3]);
});

test('opts.seed supplies dL/dloss as a value (here 2.5)', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', [3]);
  const seed = b.input('seed', 'float32', []);
  const loss = b.reduceSum(b.mul(x, x), undefined, false);
  inferShapes(b.graph);
  const grads = appendBackward(b.graph, loss, ['x'], { seed });
  const xv = { dtype: 'float32' as const, dims: [3], data: new Float32Array([1, -2, 3]) };
  const out = runGraph(b.graph, { x: xv, seed: { dtype: 'float32', dims: [], data: new Float32Array([2.5]) } }, [
    grads.get('x') as string,
  ]);
  assert.deepEqual(Array.from(out[grads.get('x') as string].data as Float32Array), [5, -10, 15]);
});

test('an operator without a gradient rule throws QCB_ONNX_UNSUPPORTED_OP naming op, node, model file and supported ops', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', [3]);
  const y = b.op1('Sin', [x], {}, 'my_sine');
  const loss = b.reduceSum(y, undefined, false);
  inferShapes(b.graph);
  assert.throws(
    () => appendBackward(b.graph, loss, ['x'], { file: 'model.onnx' }),
    (e: unknown) => {
      assert.ok(e instanceof QcbError);
      assert.equal(e.code, 'QCB_ONNX_UNSUPPORTED_OP');
      assert.equal(e.context.file, 'model.onnx');
      assert.match(e.message, /Sin/);
      assert.equal(e.context.key, 'my_sine_node');
      assert.match(e.context.allowed ?? '', /Conv, ConvTranspose/);
      return true;
    },
  );
});

test('unknown loss or wrt names throw QCB_ONNX_GRAPH', () => {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'float32', [3]);
  const loss = b.reduceSum(x, undefined, false);
  inferShapes(b.graph);
  assert.throws(
    () => appendBackward(b.graph, 'nope', ['x']),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ONNX_GRAPH',
  );
  assert.throws(
    () => appendBackward(b.graph, loss, ['w']),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ONNX_GRAPH' && e.context.key === 'w',
  );
});

test('every op the engine supports has a rule or is declared gradient-free', () => {
  const required = [
    'Conv',
    'ConvTranspose',
    'MaxPool',
    'AveragePool',
    'GlobalAveragePool',
    'BatchNormalization',
    'LayerNormalization',
    'Relu',
    'LeakyRelu',
    'Sigmoid',
    'HardSigmoid',
    'HardSwish',
    'Tanh',
    'Erf',
    'Gelu',
    'Softmax',
    'LogSoftmax',
    'Add',
    'Sub',
    'Mul',
    'Div',
    'Pow',
    'Sqrt',
    'Exp',
    'Log',
    'Neg',
    'Abs',
    'Clip',
    'Min',
    'Max',
    'MatMul',
    'Gemm',
    'Transpose',
    'Reshape',
    'Flatten',
    'Squeeze',
    'Unsqueeze',
    'Concat',
    'Split',
    'Slice',
    'Gather',
    'Identity',
    'ReduceSum',
    'ReduceMean',
    'ReduceMax',
    'ReduceL2',
    'Where',
    'Cast',
    'Dropout',
  ];
  for (const op of required) assert.ok(op in GRAD_RULES, `${op} has a gradient rule`);
  for (const op of ['Shape', 'Equal', 'Less', 'ArgMax'])
    assert.ok(supportedGradOps().includes(op) && !(op in GRAD_RULES));
});

test('the gradient of a graph with Shape-driven Reshape (runtime shapes) and a constant-only branch', async () => {
  await checkGrad({
    build: (b) => {
      const x = b.input('x', 'float32', ['N', 2, 3]);
      const shp = b.op1('Shape', [x]);
      const n = b.op1('Gather', [shp, b.ints([0])]);
      const target = b.concat([n, b.ints([-1])], 0);
      return b.tanh(b.op1('Reshape', [x, target]));
    },
    wrt: ['x'],
    feeds: { x: randTensor([3, 2, 3], 82) },
  });
});
