import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ArrayCropSource, type Batch, BatchLoader } from '../../../src/data/augment/index.js';
import { readDataset } from '../../../src/data/datasets/index.js';
import { readTiffFile } from '../../../src/data/io/tiff.js';
import { synthesizeScreen } from '../../../src/data/synth/index.js';
import { QcbError } from '../../../src/errors.js';

process.env.QCBENCH_LOG_QUIET = '1';

const SIZE = 64;
const CHANNELS = ['Hoechst', 'Ph_golgi', 'Mito']; // the paper's 3-channel composite of BBBC022
let out: string;
let source: ArrayCropSource;

/**
 * Real crops from a generated screen: each channel scaled to uint8 between its 0.1 and 99.9 percentiles, squares
 * cut around the true nucleus centres of nuclei.csv (clamped at the field border).
 */
before(async () => {
  out = mkdtempSync(join(tmpdir(), 'qcb-loader-'));
  await synthesizeScreen({ domain: 'u2os', out, plates: 1, wells: 2, sites: 1, width: 320, height: 256, seed: 2 });
  const fs = readDataset('bbbc022', { root: out, strict: true });
  const rows = readFileSync(join(out, 'nuclei.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(','));
  const crops: number[] = [];
  for (const field of fs.fields) {
    const imgs = CHANNELS.map((c) => {
      const t = readTiffFile(field.channels[c]);
      assert.ok(t);
      const sorted = Array.from(t.data).sort((a, b) => a - b);
      const lo = sorted[Math.floor(0.001 * sorted.length)];
      const hi = sorted[Math.floor(0.999 * sorted.length)];
      return { t, lo, hi };
    });
    for (const r of rows) {
      if (r[2] !== field.plate || r[3] !== field.well || Number(r[4]) !== field.site) continue;
      const cx = Number(r[5]);
      const cy = Number(r[6]);
      for (const { t, lo, hi } of imgs) {
        for (let y = 0; y < SIZE; y++) {
          for (let x = 0; x < SIZE; x++) {
            const fx = Math.min(t.width - 1, Math.max(0, cx - SIZE / 2 + x));
            const fy = Math.min(t.height - 1, Math.max(0, cy - SIZE / 2 + y));
            const v = t.data[fy * t.width + fx];
            crops.push(Math.max(0, Math.min(255, Math.round(((v - lo) / (hi - lo)) * 255))));
          }
        }
      }
    }
  }
  source = new ArrayCropSource(Uint8Array.from(crops), 3, SIZE);
  assert.ok(source.count >= 20, `need some crops, got ${source.count}`);
});

after(() => rmSync(out, { recursive: true, force: true }));

async function collect(loader: BatchLoader): Promise<Batch[]> {
  const batches: Batch[] = [];
  for await (const b of loader) batches.push(b);
  return batches;
}

test('an epoch visits every crop once in a seeded order; drop_last drops the remainder; epochs reshuffle', async () => {
  const n = source.count;
  const bs = 7;
  const all = await collect(new BatchLoader(source, { batchSize: bs, seed: 1, dropLast: false, epochs: 2 }));
  assert.equal(all.length, 2 * Math.ceil(n / bs));
  const e0 = all.filter((b) => b.epoch === 0).flatMap((b) => b.indices);
  const e1 = all.filter((b) => b.epoch === 1).flatMap((b) => b.indices);
  assert.deepEqual(
    [...e0].sort((a, b) => a - b),
    Array.from({ length: n }, (_, i) => i),
  );
  assert.deepEqual(
    [...e1].sort((a, b) => a - b),
    Array.from({ length: n }, (_, i) => i),
  );
  assert.notDeepEqual(e0, e1, 'each epoch has its own order');
  assert.notDeepEqual(
    e0,
    Array.from({ length: n }, (_, i) => i),
    'shuffled',
  );
  assert.deepEqual(
    all.map((b) => b.step),
    all.map((_, i) => i),
  );

  const dropped = await collect(new BatchLoader(source, { batchSize: bs, seed: 1, epochs: 1 }));
  assert.equal(dropped.length, Math.floor(n / bs));
  assert.ok(dropped.every((b) => b.n === bs && b.views.every((v) => v.length === bs * 3 * SIZE * SIZE)));
});

test('two views per crop: normalised float32 N×C×S×S, different augmentations of the same crop', async () => {
  const loader = new BatchLoader(source, {
    batchSize: 8,
    seed: 3,
    augment: { shiftScaleP: 0, mean: [0.5], std: [0.25] },
  });
  const b = await loader.next();
  await loader.close();
  assert.ok(b);
  assert.equal(b.views.length, 2);
  const raw = await source.readIndices(b.indices);
  const per = 3 * SIZE * SIZE;
  let differing = 0;
  for (let i = 0; i < b.n; i++) {
    // dihedral views are permutations of the crop's pixels, channel by channel
    const rawSum = raw.subarray(i * per, (i + 1) * per).reduce((s: number, x: number) => s + x, 0);
    for (const v of b.views as Float32Array[]) {
      const back: number[] = Array.from(v.subarray(i * per, (i + 1) * per), (x: number) =>
        Math.round((x * 0.25 + 0.5) * 255),
      );
      assert.equal(
        back.reduce((s, x) => s + x, 0),
        rawSum,
      );
    }
    if (b.views[0].subarray(i * per, (i + 1) * per).some((x, j) => x !== b.views[1][i * per + j])) differing++;
  }
  assert.ok(differing >= b.n / 2, `views differ for ${differing} of ${b.n} crops`);
});

test('results do not depend on prefetch depth or worker threads', async () => {
  const opts = { batchSize: 6, seed: 5, epochs: 2 };
  const a = await collect(new BatchLoader(source, { ...opts, prefetch: 1 }));
  const b = await collect(new BatchLoader(source, { ...opts, prefetch: 3, workers: 2 }));
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.deepEqual(a[i].indices, b[i].indices);
    assert.deepEqual(a[i].views[0], b[i].views[0]);
    assert.deepEqual(a[i].views[1], b[i].views[1]);
  }
  const c = await collect(new BatchLoader(source, { ...opts, seed: 6 }));
  assert.notDeepEqual(c[0].indices, a[0].indices);
});

test('prefetch: the next batches are prepared while the consumer works', async () => {
  let reads = 0;
  const counting = {
    count: source.count,
    channels: source.channels,
    size: source.size,
    readIndices: (idx: number[]) => {
      reads++;
      return source.readIndices(idx);
    },
  };
  const loader = new BatchLoader(counting, { batchSize: 4, seed: 1, prefetch: 2, epochs: 1 });
  const first = await loader.next();
  assert.ok(first);
  // while the consumer holds batch 0, batches 1 and 2 have been requested
  assert.equal(reads, 3);
  await loader.close();
  assert.equal(await loader.next(), null);
});

test('bad options and short sources give clear errors', () => {
  assert.throws(
    () => new BatchLoader(source, { batchSize: 0 }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE' && e.context.key === 'batchSize',
  );
  assert.throws(
    () => new BatchLoader(source, { batchSize: source.count + 1 }),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE' && /dropLast/.test(String(e.context.fix)),
  );
  assert.throws(
    () => new ArrayCropSource(new Uint8Array(10), 3, 4),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE',
  );
});

test('release() recycles view buffers without changing the data', async () => {
  const opts = { batchSize: 5, seed: 8, epochs: 1, prefetch: 1 };
  const plain = await collect(new BatchLoader(source, opts));
  const loader = new BatchLoader(source, opts);
  const seen = new Set<Float32Array>();
  let reused = 0;
  for (let i = 0; i < plain.length; i++) {
    const b = await loader.next();
    assert.ok(b);
    for (const v of b.views) {
      if (seen.has(v)) reused++;
      seen.add(v);
    }
    assert.deepEqual(b.views[0], plain[i].views[0]);
    assert.deepEqual(b.views[1], plain[i].views[1]);
    loader.release(b);
  }
  await loader.close();
  assert.ok(reused > 0, 'released buffers are used again');
});
