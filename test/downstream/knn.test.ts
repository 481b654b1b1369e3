import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import KNN from 'ml-knn';
import sharp from 'sharp';
import { KD_TREE_MAX_DIM, knnClassify } from '../../src/downstream/knn.js';
import { mulberry32 } from '../../src/util/random.js';
import { accuracy, weightedRocAuc } from '../../src/metrics/classification.js';

const fixtures = new URL('../../../shared/fixtures/bbbc/bbbc006/', import.meta.url);

/** Reads a 16-bit single-channel TIFF exactly (sharp needs grey16 + ushort). */
async function readGrey16(name: string): Promise<{ data: Uint16Array; width: number; height: number }> {
  const { data, info } = await sharp(fileURLToPath(new URL(name, fixtures)), { failOn: 'none' })
    .toColourspace('grey16')
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
  return {
    data: new Uint16Array(data.buffer, data.byteOffset, data.length / 2),
    width: info.width,
    height: info.height,
  };
}

/** Simple focus/texture features of 48×48 tiles that contain nuclei (a stand-in for an encoder's features). */
function tileFeatures(img: { data: Uint16Array; width: number; height: number }): number[][] {
  const T = 48;
  const out: number[][] = [];
  for (let y0 = 0; y0 + T <= img.height; y0 += T) {
    for (let x0 = 0; x0 + T <= img.width; x0 += T) {
      let s = 0;
      let ss = 0;
      let grad = 0;
      let lap = 0;
      for (let y = y0 + 1; y < y0 + T - 1; y++) {
        for (let x = x0 + 1; x < x0 + T - 1; x++) {
          const v = img.data[y * img.width + x];
          s += v;
          ss += v * v;
          grad += Math.abs(v - img.data[y * img.width + x + 1]) + Math.abs(v - img.data[(y + 1) * img.width + x]);
          const l =
            4 * v -
            img.data[y * img.width + x - 1] -
            img.data[y * img.width + x + 1] -
            img.data[(y - 1) * img.width + x] -
            img.data[(y + 1) * img.width + x];
          lap += l * l;
        }
      }
      const n = (T - 2) * (T - 2);
      const mean = s / n;
      const sd = Math.sqrt(Math.max(ss / n - mean * mean, 1e-9));
      // scale-free focus measures: gradient and Laplacian energy relative to the tile's contrast
      out.push([(grad / n / sd) * 10, Math.log(Math.sqrt(lap / n) / sd + 1e-9) * 10, Math.log(sd + 1)]);
    }
  }
  return out;
}

test('kNN separates real in-focus from out-of-focus BBBC006 tiles (k = 5)', async () => {
  const blurred = tileFeatures(
    await readGrey16('00_mcf-z-stacks-03212011_k06_s2_w12667264a-6432-4f7e-bf58-625a1319a1c9.tif'),
  );
  const sharpTiles = tileFeatures(await readGrey16('BBBC006_z_aligned__a01__s1__w1_10.png'));
  assert.equal(blurred.length, sharpTiles.length);
  const rows = [...blurred.map((f) => ({ f, y: 'abnormal' })), ...sharpTiles.map((f) => ({ f, y: 'normal' }))];
  const train = rows.filter((_, i) => i % 2 === 0);
  const test_ = rows.filter((_, i) => i % 2 === 1);
  const r = knnClassify(
    train.map((t) => t.f),
    train.map((t) => t.y),
    test_.map((t) => t.f),
  );
  const yTrue = test_.map((t) => t.y);
  const acc = accuracy(yTrue, r.pred);
  const auc = weightedRocAuc(yTrue, r.score, ['normal', 'abnormal']);
  // measured 91.4 / 95.7: empty background tiles look alike in both images and cap the accuracy
  assert.ok(acc >= 85, `accuracy ${acc}`);
  assert.ok(auc >= 90, `auc ${auc}`);
  assert.equal(r.k, 5);
  assert.equal(r.positiveClass, 'abnormal');
  // uniform votes of 5 neighbours: every score is a multiple of 1/5
  assert.ok(r.score.every((s) => s >= 0 && s <= 1 && Math.abs(s * 5 - Math.round(s * 5)) < 1e-9));
});

test('kNN is at chance on real tiles with labels unrelated to the image', async () => {
  const tiles = tileFeatures(await readGrey16('BBBC006_z_aligned__a01__s1__w1_10.png'));
  const rng = mulberry32(11);
  const y = tiles.map(() => (rng() < 0.5 ? 'abnormal' : 'normal'));
  const idx = tiles.map((_, i) => i);
  const tr = idx.filter((i) => i % 2 === 0);
  const te = idx.filter((i) => i % 2 === 1);
  const r = knnClassify(
    tr.map((i) => tiles[i]),
    tr.map((i) => y[i]),
    te.map((i) => tiles[i]),
  );
  const acc = accuracy(
    te.map((i) => y[i]),
    r.pred,
  );
  const auc = weightedRocAuc(
    te.map((i) => y[i]),
    r.score,
    ['normal', 'abnormal'],
  );
  assert.ok(acc > 30 && acc < 70, `accuracy ${acc}`);
  assert.ok(auc > 30 && auc < 70, `auc ${auc}`);
});

test('neighbours equal a brute-force search and the vote equals ml-knn predict (k-d tree and scan paths)', () => {
  const rng = mulberry32(2);
  const gauss = () => Math.sqrt(-2 * Math.log(rng() + 1e-12)) * Math.cos(2 * Math.PI * rng());
  // 16-d uses ml-knn's k-d tree, 64-d the exact scan (KD_TREE_MAX_DIM = 16)
  for (const D of [KD_TREE_MAX_DIM, 64]) {
    const mk = (n: number, shift: number) =>
      Array.from({ length: n }, () => Array.from({ length: D }, () => gauss() + shift));
    const trainX = [...mk(40, 0), ...mk(40, 0.6)];
    const trainY = trainX.map((_, i) => (i < 40 ? 'normal' : 'abnormal'));
    const testX = [...mk(25, 0), ...mk(25, 0.6)];
    const r = knnClassify(trainX, trainY, testX, { k: 5 });
    const ref = new KNN(trainX, trainY, { k: 5 }).predict(testX);
    assert.deepEqual(r.pred, ref, `D=${D}`);
    testX.forEach((q, j) => {
      const d = trainX
        .map((p, i) => ({ i, d: Math.hypot(...p.map((v, t) => v - q[t])) }))
        .sort((a, b) => a.d - b.d || a.i - b.i)
        .slice(0, 5)
        .map((x) => x.i);
      assert.deepEqual(r.neighbours[j], d, `D=${D} query ${j}`);
      const frac = d.filter((i) => trainY[i] === 'abnormal').length / 5;
      assert.equal(r.score[j], frac);
    });
    // flat buffer input gives the same answer as rows
    const flat = { data: Float32Array.from(trainX.flat()), rows: 80, cols: D };
    const r2 = knnClassify(flat, trainY, { data: Float32Array.from(testX.flat()), rows: 50, cols: D });
    assert.deepEqual(
      r2.pred,
      knnClassify(
        Array.from({ length: 80 }, (_, i) => Array.from(flat.data.subarray(i * D, (i + 1) * D))),
        trainY,
        Array.from({ length: 50 }, (_, i) => Array.from(Float32Array.from(testX[i]))),
      ).pred,
    );
  }
});

test('duplicate training rows tie in distance and resolve by row index on both search paths', () => {
  for (const D of [2, 40]) {
    const row = Array.from({ length: D }, (_, i) => i / D);
    const far = row.map((v) => v + 10);
    const trainX = [far, row, row, row, far];
    const trainY = ['normal', 'abnormal', 'normal', 'abnormal', 'normal'];
    const r = knnClassify(trainX, trainY, [row], { k: 2 });
    assert.deepEqual(r.neighbours[0], [1, 2], `D=${D}`);
    // 1–1 vote: the nearest (lowest index among equals) wins
    assert.equal(r.pred[0], 'abnormal');
  }
});

test('L2 normalisation makes kNN scale-invariant; distance weighting favours the nearest rows', () => {
  const trainX = [
    [1, 0],
    [10, 0.5],
    [0, 1],
    [0.2, 5],
  ];
  const trainY = ['normal', 'normal', 'abnormal', 'abnormal'];
  // [5, 4] is nearer the abnormal rows in raw space, but its direction is closer to the normal rows
  const raw = knnClassify(trainX, trainY, [[3, 4]], { k: 1 });
  const l2 = knnClassify(trainX, trainY, [[3, 2]], { k: 1, normalize: 'l2' });
  assert.equal(raw.pred[0], 'abnormal');
  assert.equal(l2.pred[0], 'normal');
  // k = 4, uniform: 2–2 tie → nearest neighbour's class; distance-weighted: share below ½ when normals are nearer
  const q = [[1.2, 0.1]];
  const u = knnClassify(trainX, trainY, q, { k: 4 });
  assert.equal(u.score[0], 0.5);
  assert.equal(u.pred[0], 'normal');
  const w = knnClassify(trainX, trainY, q, { k: 4, weighting: 'distance' });
  assert.ok(w.score[0] < 0.5 && w.score[0] > 0);
  assert.equal(w.pred[0], 'normal');
  // an exact match takes the whole vote
  assert.equal(knnClassify(trainX, trainY, [[0, 1]], { k: 4, weighting: 'distance' }).score[0], 1);
});

test('kNN rejects mismatched feature widths and non-finite features with QcbErrors', () => {
  const code = (e: unknown) => (e as { code?: string }).code;
  assert.throws(
    () => knnClassify([[1, 2]], ['a'], [[1, 2, 3]]),
    (e) => code(e) === 'QCB_FEED',
  );
  assert.throws(
    () => knnClassify([[1, Number.NaN]], ['a'], [[1, 2]]),
    (e) => code(e) === 'QCB_FEED',
  );
  assert.throws(
    () => knnClassify([[1, 2]], ['a'], [[1, 2]], { k: 0 }),
    (e) => code(e) === 'QCB_USAGE',
  );
});
