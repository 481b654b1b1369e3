/**
 * The cp-quality measures as an ONNX graph (what a cp-quality QC model embeds) against the TypeScript measures
 * (src/metrics/image-quality.ts), crop by crop and measure by measure, in onnxruntime: the hand-made images of the
 * measures' own tests (constant, checkerboard, blurred edge, saturated patch, one level on one side of the pixel
 * pairs), noise and synthetic cells; at a crop
 * side that the spatial scale divides, one it does not (uneven tiles, a non-power-of-two transform), and one too
 * small for any ring or pixel pair. Each crop is run alone and in a batch: the graph must not mix crops.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { cpQualityGraph } from '../../src/encoders/cp-quality-graph.js';
import { cpQualityFeatures } from '../../src/encoders/cp-quality.js';
import { exportOnnx } from '../../src/engine/onnx/export.js';
import { IMAGE_QUALITY_MEASURES } from '../../src/metrics/image-quality.js';
import { mulberry32 } from '../../src/util/random.js';
import { synthCrops } from '../downstream/synth-crops.js';

const M = IMAGE_QUALITY_MEASURES.length;
const C = 3;

/** n crops of C×S×S bytes: the hand-made images first, then noise of several contrasts, then synthetic cells. */
function crops(S: number, scale: number): { data: Uint8Array; n: number; names: string[] } {
  const per = C * S * S;
  const images: [string, (y: number, x: number, c: number) => number][] = [
    ['constant', () => 77],
    ['zero', () => 0],
    ['checkerboard', (y, x) => ((x + y) % 2 ? 255 : 0)],
    ['blurred edge', (_y, x) => Math.round(255 / (1 + Math.exp(-(x - S / 2) / 3)))],
    [
      'saturated patch',
      (y, x, c) => (y > S / 3 && y < S / 2 && x > S / 4 && x < S / 2 ? 255 : 20 + c * 10 + ((x * 7 + y * 3) % 11)),
    ],
    ['two levels', (y) => (y < S / 2 ? 10 : 11)],
    // the pairs' left pixels hold one level, their right pixels two: σx = 0, so the correlation is 0 (not rounding noise)
    ['last columns brighter', (_y, x) => (x >= S - scale ? 200 : 50)],
  ];
  const rng = mulberry32(7);
  const noise = [1, 0.3, 0.05].map((a, k) => [`noise ×${a}`, () => Math.floor(rng() * 256 * a) + k] as const);
  const cells = synthCrops(4, S, 3).crops;
  const n = images.length + noise.length + cells.n;
  const data = new Uint8Array(n * per);
  const names: string[] = [];
  [...images, ...noise].forEach(([name, f], i) => {
    names.push(name);
    for (let c = 0; c < C; c++)
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) data[i * per + (c * S + y) * S + x] = f(y, x, c);
  });
  data.set(cells.data, names.length * per);
  for (let i = 0; i < cells.n; i++) names.push(`synthetic cell ${i}`);
  return { data, n, names };
}

async function graphFeatures(S: number, scale: number, data: Uint8Array, n: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(exportOnnx(cpQualityGraph(S, scale, C)));
  try {
    // the QC model's preprocessing for cp-quality: x/255 in float32
    const input = new ort.Tensor(
      'float32',
      Float32Array.from(data, (v) => v * (1 / 255)),
      [n, C, S, S],
    );
    return (await session.run({ input })).features.data as Float32Array;
  } finally {
    await session.release();
  }
}

for (const [S, scale] of [
  [64, 20],
  [40, 7],
  [16, 20],
] as const) {
  test(`${S}×${S} crops at scale ${scale}: the graph's measures are the TypeScript measures, crop by crop`, async () => {
    const { data, n, names } = crops(S, scale);
    const want = cpQualityFeatures({ data, n, channels: C, size: S }, scale);
    const batch = await graphFeatures(S, scale, data, n);
    assert.equal(batch.length, n * C * M);
    const per = C * S * S;
    for (let i = 0; i < n; i++) {
      const alone = await graphFeatures(S, scale, data.subarray(i * per, (i + 1) * per), 1);
      for (let j = 0; j < C * M; j++) {
        const w = want.data[i * C * M + j];
        const what = `${names[i]}, channel ${Math.floor(j / M)}, ${IMAGE_QUALITY_MEASURES[j % M]}`;
        for (const [got, how] of [
          [batch[i * C * M + j], 'in a batch'],
          [alone[j], 'alone'],
        ] as const) {
          assert.ok(
            Math.abs(got - w) <= 1e-5 * Math.max(1, Math.abs(w)),
            `${what} ${how}: graph ${got}, TypeScript ${w}`,
          );
        }
      }
    }
    // the undefined cases hold their 0s exactly (a constant crop's correlation, a checkerboard's slope)
    const at = (name: string, m: string) =>
      batch[names.indexOf(name) * C * M + IMAGE_QUALITY_MEASURES.indexOf(m as never)];
    assert.equal(at('constant', 'Correlation'), 0);
    assert.equal(at('last columns brighter', 'Correlation'), 0);
    assert.equal(at('constant', 'FocusScore'), 0);
    assert.equal(at('zero', 'LocalFocusScore'), 0);
    assert.equal(at('checkerboard', 'PowerLogLogSlope'), 0);
    if (S >= 24) assert.ok(at('blurred edge', 'PowerLogLogSlope') < 0);
    if (scale >= S) assert.equal(at('noise ×1', 'Correlation'), 0);
  });
}
