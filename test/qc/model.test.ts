import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { cropsToInput } from '../../src/encoders/features.js';
import { knnClassify } from '../../src/downstream/knn.js';
import { IMAGENET_PREPROCESS } from '../../src/encoders/types.js';
import { GraphBuilder } from '../../src/engine/ir/builder.js';
import { mulberry32 } from '../../src/util/random.js';
import type { Graph } from '../../src/engine/ir/graph.js';
import { exportOnnx } from '../../src/engine/onnx/export.js';
import { buildClassifierGraph, buildFeatureGraph, type ClassifierSpec } from '../../src/qc/model.js';

const S = 6;

/** A tiny real encoder: `input` N×3×S×S → flatten → `features` N×(3·S·S) (identity features expose the preprocessing). */
function flattenBody(): Graph {
  const b = new GraphBuilder('flat');
  const x = b.input('input', 'float32', ['N', 3, S, S]);
  b.output(b.flatten(x, 1), 'features');
  return b.build();
}

function randomCrops(n: number, C: number, seed: number): Uint8Array {
  const r = mulberry32(seed);
  return Uint8Array.from({ length: n * C * S * S }, () => Math.floor(r() * 256));
}

async function run(g: Graph, crops: Uint8Array, n: number, C: number, outs: string[]) {
  const s = await ort.InferenceSession.create(exportOnnx(g), { intraOpNumThreads: 1 });
  const r = await s.run({ crops: new ort.Tensor('uint8', crops, [n, C, S, S]) }, outs);
  await s.release();
  return r;
}

test('in-graph preprocessing (channel pick, /255, mean/std) equals cropsToInput', async () => {
  const C = 4;
  const n = 5;
  const crops = randomCrops(n, C, 1);
  const spec: ClassifierSpec = {
    body: flattenBody(),
    bodyOutput: 'features',
    channels: C,
    channelIndices: [2, 0, 3],
    cropSize: S,
    preprocess: IMAGENET_PREPROCESS,
  };
  const r = await run(buildFeatureGraph(spec), crops, n, C, ['features']);
  const got = r.features.data as Float32Array;
  // reference: pick the channels in JS, then the downstream module's normalisation
  const picked = new Uint8Array(n * 3 * S * S);
  for (let k = 0; k < n; k++)
    [2, 0, 3].forEach((c, j) => {
      picked.set(crops.subarray((k * C + c) * S * S, (k * C + c + 1) * S * S), (k * 3 + j) * S * S);
    });
  const ref = cropsToInput({ data: picked, n, channels: 3, size: S }, [0, 1, 2, 3, 4], IMAGENET_PREPROCESS);
  assert.equal(got.length, ref.length);
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[i] - ref[i]) < 1e-5, `${i}: ${got[i]} vs ${ref[i]}`);
  // a grey store is replicated to R, G, B
  const grey = await run(
    buildFeatureGraph({ ...spec, channels: 1, channelIndices: [0, 0, 0] }),
    crops.subarray(0, 2 * S * S),
    2,
    1,
    ['features'],
  );
  const g = grey.features.data as Float32Array;
  const plane = S * S;
  const v0 = crops[0] / 255;
  assert.ok(Math.abs(g[0] - (v0 - 0.485) / 0.229) < 1e-5);
  assert.ok(Math.abs(g[plane] - (v0 - 0.456) / 0.224) < 1e-5);
});

test('in-graph kNN vote equals knnClassify (k = 5, Euclidean) on the same features', async () => {
  const C = 3;
  const M = 40;
  const n = 25;
  const train = randomCrops(M, C, 2);
  const query = randomCrops(n, C, 3);
  const spec: ClassifierSpec = {
    body: flattenBody(),
    bodyOutput: 'features',
    channels: C,
    channelIndices: [0, 1, 2],
    cropSize: S,
    preprocess: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
  };
  const fg = buildFeatureGraph(spec);
  const bank = (await run(fg, train, M, C, ['features'])).features.data as Float32Array;
  const qf = (await run(fg, query, n, C, ['features'])).features.data as Float32Array;
  const D = bank.length / M;
  const r = mulberry32(9);
  const labels = Array.from({ length: M }, () => (r() < 0.4 ? 'abnormal' : 'normal'));
  for (const normalize of ['raw', 'l2'] as const) {
    const g = buildClassifierGraph(spec, {
      kind: 'knn',
      bank,
      rows: M,
      cols: D,
      labels: Float32Array.from(labels, (l) => (l === 'abnormal' ? 1 : 0)),
      k: 5,
      normalize,
    });
    const out = await run(g, query, n, C, ['abnormal_score', 'probabilities']);
    const score = out.abnormal_score.data as Float32Array;
    const ref = knnClassify(
      { data: bank, rows: M, cols: D },
      labels,
      { data: qf, rows: n, cols: D },
      { k: 5, normalize },
    );
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(score[i] - ref.score[i]) < 1e-6, `${normalize} row ${i}: ${score[i]} vs ${ref.score[i]}`);
      assert.equal(score[i] > 0.5 ? 'abnormal' : 'normal', ref.pred[i]);
      assert.ok(Math.abs((out.probabilities.data as Float32Array)[2 * i] - (1 - ref.score[i])) < 1e-6);
    }
  }
});

test('linear head: logits = features·Wᵀ + b, probabilities = softmax, abnormal_score = probabilities[:, 1]', async () => {
  const C = 3;
  const n = 4;
  const spec: ClassifierSpec = {
    body: flattenBody(),
    bodyOutput: 'features',
    channels: C,
    channelIndices: [0, 1, 2],
    cropSize: S,
    preprocess: IMAGENET_PREPROCESS,
    inputType: 'uint8',
  };
  const D = 3 * S * S;
  const r = mulberry32(4);
  const weight = Float32Array.from({ length: 2 * D }, () => (r() - 0.5) * 0.05);
  const bias = Float32Array.of(0.1, -0.2);
  const crops = randomCrops(n, C, 5);
  const g = buildClassifierGraph(spec, { kind: 'linear', weight, bias });
  assert.deepEqual(
    g.outputs.map((o) => o.name),
    ['abnormal_score', 'probabilities', 'logits'],
  );
  assert.equal(g.inputs[0].name, 'crops');
  assert.equal(g.inputs[0].dtype, 'uint8');
  const out = await run(g, crops, n, C, ['abnormal_score', 'probabilities', 'logits']);
  const f = (await run(buildFeatureGraph(spec), crops, n, C, ['features'])).features.data as Float32Array;
  const lg = out.logits.data as Float32Array;
  const sc = out.abnormal_score.data as Float32Array;
  for (let i = 0; i < n; i++) {
    const l = [0, 1].map((k) => {
      let a = bias[k];
      for (let j = 0; j < D; j++) a += weight[k * D + j] * f[i * D + j];
      return a;
    });
    assert.ok(Math.abs(lg[2 * i] - l[0]) < 1e-4 && Math.abs(lg[2 * i + 1] - l[1]) < 1e-4);
    const p1 = 1 / (1 + Math.exp(l[0] - l[1]));
    assert.ok(Math.abs(sc[i] - p1) < 1e-5, `${sc[i]} vs ${p1}`);
  }
});

test('a channel selection outside the crops is a QcbError', () => {
  assert.throws(
    () =>
      buildFeatureGraph({
        body: flattenBody(),
        bodyOutput: 'features',
        channels: 2,
        channelIndices: [0, 1, 2],
        cropSize: S,
        preprocess: IMAGENET_PREPROCESS,
      }),
    /channel selection/,
  );
});
