import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  augmentBatch,
  DEFAULT_AUGMENT,
  NO_AUGMENT,
  normalisation,
  reflect,
  sampleTransform,
  toAffine,
  twoViews,
  type ViewTransform,
  warpCrop,
} from '../../../src/data/augment/index.js';
import { Rng } from '../../../src/util/random.js';

const C = 3;
const S = 16;

function randomCrops(n: number, seed: number): Uint8Array {
  const r = new Rng(seed);
  const a = new Uint8Array(n * C * S * S);
  for (let i = 0; i < a.length; i++) a[i] = r.int(256);
  return a;
}

/** Straightforward per-pixel bilinear warp with reflect-101 borders, straight from the composed affine map. */
function referenceWarp(src: Uint8Array, t: ViewTransform, mean: number, std: number): Float32Array {
  const m = toAffine(t, S);
  const out = new Float32Array(C * S * S);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const sx = m.a * x + m.b * y + m.tx;
        const sy = m.c * x + m.d * y + m.ty;
        const x0 = Math.floor(sx + 1e-9);
        const y0 = Math.floor(sy + 1e-9);
        const fx = Math.max(0, sx - x0);
        const fy = Math.max(0, sy - y0);
        const at = (xx: number, yy: number) => src[c * S * S + reflect(yy, S) * S + reflect(xx, S)];
        const v =
          at(x0, y0) * (1 - fx) * (1 - fy) +
          at(x0 + 1, y0) * fx * (1 - fy) +
          at(x0, y0 + 1) * (1 - fx) * fy +
          at(x0 + 1, y0 + 1) * fx * fy;
        out[c * S * S + y * S + x] = (v / 255 - mean) / std;
      }
    }
  }
  return out;
}

const norm = normalisation({ ...DEFAULT_AUGMENT, mean: [0.5], std: [0.25] }, C);

test('the eight symmetries of the square are exact pixel permutations, all equally reachable', () => {
  const src = randomCrops(1, 1);
  const rng = new Rng(2);
  const seen = new Map<string, number>();
  for (let i = 0; i < 800; i++) {
    const t = sampleTransform(rng, S, { ...DEFAULT_AUGMENT, shiftScaleP: 0 });
    assert.equal(t.scale, 1);
    seen.set(`${t.a},${t.b},${t.c},${t.d}`, (seen.get(`${t.a},${t.b},${t.c},${t.d}`) ?? 0) + 1);
    if (i < 16) {
      const out = new Float32Array(C * S * S);
      warpCrop(src, 0, out, 0, C, S, t, norm);
      const ref = referenceWarp(src, t, 0.5, 0.25);
      for (let j = 0; j < out.length; j++)
        assert.ok(Math.abs(out[j] - ref[j]) < 1e-5, `symmetry ${JSON.stringify(t)} at ${j}`);
      // a permutation: same multiset of values
      const back = Array.from(out, (v) => Math.round((v * 0.25 + 0.5) * 255)).sort((a, b) => a - b);
      assert.deepEqual(
        back,
        Array.from(src).sort((a, b) => a - b),
      );
    }
  }
  assert.equal(seen.size, 8, 'rotation × flip × transpose gives the dihedral group');
  for (const [k, n] of seen) assert.ok(n > 60 && n < 140, `${k} drawn ${n} times of 800`);
});

test('known symmetries: a 90° rotation, a flip and a transpose move pixels where expected', () => {
  const src = new Uint8Array(C * S * S);
  src[0 * S + 3] = 200; // channel 0, (x=3, y=0)
  const find = (t: ViewTransform) => {
    const out = new Float32Array(C * S * S);
    warpCrop(src, 0, out, 0, C, 16, t, normalisation({ ...DEFAULT_AUGMENT, mean: [0], std: [1 / 255] }, C));
    const i = out.indexOf(200);
    return [i % S, Math.floor(i / S)];
  };
  const id = { a: 1, b: 0, c: 0, d: 1, scale: 1, dx: 0, dy: 0 };
  assert.deepEqual(find(id), [3, 0]);
  assert.deepEqual(find({ ...id, a: -1 }), [12, 0], 'horizontal flip');
  assert.deepEqual(find({ ...id, a: 0, b: 1, c: 1, d: 0 }), [0, 3], 'transpose');
  const rot = find({ ...id, a: 0, b: 1, c: -1, d: 0 });
  assert.deepEqual(rot, [15, 3], '90° rotation');
});

test('shift and scale: separable bilinear resampling equals the per-pixel reference, reflect-101 borders', () => {
  const src = randomCrops(1, 3);
  const rng = new Rng(4);
  for (let i = 0; i < 20; i++) {
    const t = sampleTransform(rng, S, { ...DEFAULT_AUGMENT, shiftScaleP: 1, shift: 0.2, scale: [0.7, 1.3] });
    assert.ok(t.scale !== 1);
    const out = new Float32Array(C * S * S);
    warpCrop(src, 0, out, 0, C, S, t, norm);
    const ref = referenceWarp(src, t, 0.5, 0.25);
    let max = 0;
    for (let j = 0; j < out.length; j++) max = Math.max(max, Math.abs(out[j] - ref[j]));
    assert.ok(max < 1e-3, `max error ${max} for ${JSON.stringify(t)}`);
  }
  assert.deepEqual(
    [-2, -1, 0, 15, 16, 17].map((i) => reflect(i, 16)),
    [2, 1, 0, 15, 14, 13],
  );
});

test('normalisation: per-channel mean/std; NO_AUGMENT leaves geometry alone; bad std/mean lengths refused', () => {
  const src = randomCrops(2, 5);
  const o = { ...NO_AUGMENT, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
  const out = augmentBatch(src, 2, C, S, new Rng(1), o);
  for (let i = 0; i < src.length; i++) {
    const c = Math.floor(i / (S * S)) % C;
    assert.ok(Math.abs(out[i] - (src[i] / 255 - o.mean[c]) / o.std[c]) < 1e-5);
  }
  assert.throws(
    () => augmentBatch(src, 2, C, S, new Rng(1), { ...o, std: [0.2, 0.2] }),
    /std has 2 values for 3 channels/,
  );
  assert.throws(() => augmentBatch(src, 2, C, S, new Rng(1), { ...o, std: [0] }), /positive/);
  assert.throws(() => augmentBatch(src.subarray(0, 10), 2, C, S, new Rng(1)), /needs/);
});

test('seeded: same seed same views, two views differ, other seed differs', () => {
  const src = randomCrops(8, 6);
  const [a1, a2] = twoViews(src, 8, C, S, new Rng(9));
  const [b1, b2] = twoViews(src, 8, C, S, new Rng(9));
  assert.deepEqual(a1, b1);
  assert.deepEqual(a2, b2);
  assert.notDeepEqual(a1, a2);
  const [c1] = twoViews(src, 8, C, S, new Rng(10));
  assert.notDeepEqual(a1, c1);
});
