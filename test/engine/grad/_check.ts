/**
 * Shared gradient check for the rule tests: builds forward → loss = ReduceSum(out · r), appends our backward pass,
 * runs it in the TF.js interpreter and compares against (a) TF.js's own gradients of the interpreted forward graph,
 * (b) central finite differences of the interpreted loss, and (c) onnxruntime running the same backward graph.
 */
import assert from 'node:assert/strict';
import { appendBackward } from '../../../src/engine/grad/autodiff.js';
import { GraphBuilder } from '../../../src/engine/ir/builder.js';
import { mulberry32 } from '../../../src/util/random.js';
import type { Graph, Tensor } from '../../../src/engine/ir/graph.js';
import { inferShapes } from '../../../src/engine/ir/shapes.js';
import { fromOrt, loadSession, toOrt } from '../../../src/engine/runtime/session.js';
import { runGraph, tfjsGradients } from '../../../src/engine/tfjs/interpreter.js';

/** Seeded normal float32 tensor. */
export function randTensor(dims: number[], seed: number, scale = 1): Tensor {
  const rnd = mulberry32(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rnd(), 1e-12);
    data[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd()) * scale;
  }
  return { dtype: 'float32', dims, data };
}

/** int64 tensor. */
export function int64(values: number[], dims = [values.length]): Tensor {
  return { dtype: 'int64', dims, data: BigInt64Array.from(values.map(BigInt)) };
}

export interface GradCase {
  /** Builds the forward graph with `b.input`/`b.param`; returns the output value to differentiate. */
  build(b: GraphBuilder): string;
  /** Values to differentiate (inputs or params). */
  wrt: string[];
  /** Feeds for the graph inputs (concrete shapes, also when declared symbolic). */
  feeds: Record<string, Tensor>;
  /** Relative tolerance against TF.js (max |diff| / max |ref|), default 1e-4. */
  tol?: number;
  /** Relative tolerance against finite differences, default 2e-2; 0 skips the finite-difference check. */
  fdTol?: number;
  /** Finite-difference step (default 1e-2) and number of probed coordinates per wrt (default 5). */
  eps?: number;
  fdCount?: number;
  /** Also run the backward graph in onnxruntime (default true). */
  ort?: boolean;
  /** Compare against TF.js autodiff (default true; off where TF.js lacks a gradient). */
  tfjs?: boolean;
  seed?: number;
  /** Accept a fresh symbol from shape inference where a gradient's symbolic dim is not tracked (Split sizes). */
  looseShapes?: boolean;
  /** Default-domain opset of the test graph (default 17; 20 for Gelu). */
  opset?: number;
}

export interface GradResult {
  graph: Graph;
  grads: Record<string, Tensor>;
  errTf: number;
  errFd: number;
  errOrt: number;
}

function maxRel(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(got.length, ref.length, 'gradient sizes differ');
  let m = 0;
  let scale = 1e-6;
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i]));
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= m)) m = d; // NaN-propagating
  }
  return m / scale;
}

/** Runs the full check and asserts all tolerances; returns the errors for further assertions. */
export async function checkGrad(c: GradCase): Promise<GradResult> {
  const b = new GraphBuilder('gradcheck', c.opset ?? 17);
  const out = c.build(b);
  inferShapes(b.graph);
  const outInfo = b.graph.values.get(out);
  assert.ok(outInfo?.shape, 'output shape inferred');
  // concrete output shape from a forward run
  const fwdOut = runGraph(b.graph, c.feeds, [out])[out];
  const r = b.input('r', 'float32', outInfo.shape);
  const feeds: Record<string, Tensor> = { ...c.feeds, r: randTensor(fwdOut.dims, (c.seed ?? 7) + 1000) };
  const prod = b.mul(out, r);
  const loss = b.op1('ReduceSum', [prod], { keepdims: 0 }, 'loss');
  b.graph.outputs = [{ name: loss, dtype: 'float32' }];
  inferShapes(b.graph);
  const forward = structuredClone(b.graph);

  const graph = b.graph;
  const gmap = appendBackward(graph, loss, c.wrt);
  inferShapes(graph); // the backward graph must be shape-consistent
  for (const w of c.wrt) {
    const gi = graph.values.get(gmap.get(w) as string);
    const wi = graph.values.get(w);
    if (c.looseShapes) assert.equal(gi?.shape?.length, wi?.shape?.length, `gradient of ${w} has the parameter's rank`);
    else assert.deepEqual(gi?.shape, wi?.shape, `gradient of ${w} has the parameter's shape`);
  }
  const gradNames = c.wrt.map((w) => gmap.get(w) as string);
  const oursRaw = runGraph(graph, feeds, gradNames);
  const grads: Record<string, Tensor> = {};
  c.wrt.forEach((w, i) => {
    grads[w] = oursRaw[gradNames[i]];
  });

  let errTf = 0;
  if (c.tfjs !== false) {
    const ref = tfjsGradients(forward, loss, c.wrt, feeds);
    for (const w of c.wrt) {
      const e = maxRel(grads[w].data as Float32Array, ref.grads[w].data as Float32Array);
      errTf = Math.max(errTf, e);
      assert.ok(e <= (c.tol ?? 1e-4), `${w}: rel. error vs TF.js ${e}`);
    }
  }

  let errFd = 0;
  const fdTol = c.fdTol ?? 2e-2;
  if (fdTol > 0) {
    const eps = c.eps ?? 1e-2;
    const rnd = mulberry32((c.seed ?? 7) + 99);
    const lossAt = (w: string, t: Tensor) =>
      (runGraph(forward, { ...feeds, [w]: t }, [loss])[loss].data as Float32Array)[0];
    for (const w of c.wrt) {
      const base = (feeds[w] ?? forward.initializers.get(w)) as Tensor;
      const g = grads[w].data as Float32Array;
      let gmax = 1e-6;
      for (const v of g) gmax = Math.max(gmax, Math.abs(v));
      const n = base.data.length;
      for (let k = 0; k < Math.min(c.fdCount ?? 5, n); k++) {
        const i = Math.floor(rnd() * n);
        const plus = structuredClone(base);
        const minus = structuredClone(base);
        (plus.data as Float32Array)[i] += eps;
        (minus.data as Float32Array)[i] -= eps;
        const fd = (lossAt(w, plus) - lossAt(w, minus)) / (2 * eps);
        const e = Math.abs(fd - g[i]) / gmax;
        errFd = Math.max(errFd, e);
        assert.ok(e <= fdTol, `${w}[${i}]: finite difference ${fd} vs gradient ${g[i]} (rel. ${e})`);
      }
    }
  }

  let errOrt = 0;
  if (c.ort !== false) {
    const og = structuredClone(graph);
    og.outputs = gradNames.map((n) => ({ name: n, dtype: 'float32' }));
    const s = await loadSession(og, { intraOpNumThreads: 1, noCache: true });
    const ortFeeds = Object.fromEntries(og.inputs.map((i) => [i.name, toOrt(feeds[i.name])]));
    const res = await s.run(ortFeeds);
    c.wrt.forEach((w, i) => {
      const t = fromOrt(res[gradNames[i]]);
      const e = maxRel(t.data as Float32Array, grads[w].data as Float32Array);
      errOrt = Math.max(errOrt, e);
      assert.ok(e <= (c.tol ?? 1e-4), `${w}: onnxruntime vs interpreter rel. error ${e}`);
    });
    await s.session.release();
  }
  return { graph, grads, errTf, errFd, errOrt };
}
