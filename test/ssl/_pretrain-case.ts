/**
 * A short pretraining of one method on generated crops, and the kNN comparison of a pretrained encoder with the
 * untrained control (the test of every test/ssl/pretrain-<method>.test.ts file, one file per method so that they run
 * in parallel).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { test } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/util/fs.js';
import { Logger } from '../../src/util/log.js';
import { CropStoreWriter, openCropStore } from '../../src/data/store/crop-store.js';
import {
  memoryCropSource,
  pretrain,
  SSL_PREPROCESS,
  storeCropSource,
  type PretrainOptions,
  type PretrainResult,
} from '../../src/ssl/pretrain.js';
import { makeCrops, type TestCrops } from './_crops.js';
import { synthCrops, type LabelledCrops } from '../downstream/synth-crops.js';
import { extractFeatures } from '../../src/encoders/features.js';
import { knnClassify } from '../../src/downstream/knn.js';
import { resolveEncoder } from '../../src/encoders/registry.js';
import type { EncoderGraph } from '../../src/encoders/types.js';

/** 4 synthetic u2os fields → ~90 crops of 3×32×32, cached in the temp dir across test files. */
export function testCrops(): TestCrops {
  const file = join(tmpdir(), 'qcbench-ssl-test-crops-v1.json');
  if (existsSync(file)) {
    try {
      const j = JSON.parse(readFileSync(file, 'utf8'));
      return { ...j, data: Uint8Array.from(Buffer.from(j.data, 'base64')) };
    } catch {
      // a partial file from a concurrent writer cannot exist (atomic), but a foreign one can: regenerate
    }
  }
  const c = makeCrops(4);
  writeFileAtomic(file, JSON.stringify({ ...c, data: Buffer.from(c.data).toString('base64') }));
  return c;
}

export const quietLog = new Logger({ level: 'warn' });

/** Small settings: projector 256/64, batch 16, 32 images (2 steps per epoch). */
export async function shortPretrain(
  method: string,
  o: Partial<PretrainOptions> = {},
): Promise<{ res: PretrainResult; dir: string; cleanup(): void }> {
  const c = testCrops();
  const dir = mkdtempSync(join(tmpdir(), `qcb-ssl-${method}-`));
  const hyper: Record<string, number> = { proj_hidden_dim: 256, proj_output_dim: 64, ...(o.hyper ?? {}) };
  const res = await pretrain({
    method,
    source: memoryCropSource(c.data, c.n, c.channels, c.size, 'test-crops'),
    outDir: dir,
    epochs: 5,
    batchSize: 16,
    maxImagesPerEpoch: 32,
    lr: 0.05,
    warmupEpochs: 1,
    log: quietLog,
    ...o,
    hyper,
  });
  return { res, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Mean loss of the first and the last `k` steps. */
export function ends(loss: { loss: number }[], k = 2): { first: number; last: number } {
  const mean = (xs: { loss: number }[]) => xs.reduce((a, p) => a + p.loss, 0) / xs.length;
  return { first: mean(loss.slice(0, k)), last: mean(loss.slice(-k)) };
}

/** kNN accuracy (percent, k 5) of an encoder's features on a train/test split of labelled crops, per distance. */
async function knnAccuracy(
  eg: EncoderGraph,
  crops: LabelledCrops,
  train: number[],
  test: number[],
): Promise<{ euclidean: number; cosine: number }> {
  const f = await extractFeatures(eg, SSL_PREPROCESS, crops.crops);
  const rows = (rs: number[]) => rs.map((r) => Array.from(f.data.subarray(r * f.cols, (r + 1) * f.cols)));
  const acc = (normalize: 'raw' | 'l2') => {
    const { pred } = knnClassify(
      rows(train),
      train.map((r) => crops.labels[r]),
      rows(test),
      { k: 5, normalize },
    );
    return (100 * pred.filter((p, i) => p === crops.labels[test[i]]).length) / test.length;
  };
  return { euclidean: acc('raw'), cosine: acc('l2') };
}

/**
 * The requirement "short pretraining beats the untrained control": 320 generated u2os crops of 32×32 (balanced
 * normal/abnormal) are written to a small crop store (Zarr, as `qcbench data crops` makes); `method` pretrains a
 * ResNet18 (seed 1) on the store, labels unused, with LARS lr 0.1 (solo-learn's optimizer; at the paper's SGD lr 0.001
 * forty steps leave the weights where they started), 3 epochs of batch 32; then kNN (k 5, the paper's task 1) on its
 * features and on `random-resnet18`'s (same seed, the registry's control), 160 labelled crops as the bank and 160
 * others scored.
 */
export async function pretrainAgainstControl(
  method: string,
  hyper: Record<string, number> = {},
): Promise<{
  record: PretrainResult['record'];
  ssl: { euclidean: number; cosine: number };
  control: { euclidean: number; cosine: number };
}> {
  const gen = synthCrops(320, 32, 1);
  const dir = mkdtempSync(join(tmpdir(), `qcb-ssl-knn-${method}-`));
  try {
    const w = await CropStoreWriter.create(join(dir, 'store'), {
      channels: ['Ph_golgi', 'Mito', 'Hoechst'],
      size: 32,
      dataset: 'synthetic-u2os',
    });
    await w.append(
      gen.crops.data,
      gen.labels.map((_, i) => ({
        crop_id: `P1_B02_s1_${i}_${i}`,
        plate: 'P1',
        well: 'B02',
        site: 1,
        field_id: 'P1_B02_s1',
        x: i,
        y: i,
        area: 0,
        source_files: '',
        metadata: {},
      })),
    );
    await w.finish();
    const source = storeCropSource(await openCropStore(join(dir, 'store')));
    const idx = gen.labels.map((_, i) => i);
    const crops: LabelledCrops = {
      crops: { data: await source.read(idx), n: idx.length, channels: 3, size: 32 },
      labels: gen.labels,
      types: gen.types,
    };
    // synthCrops alternates normal/abnormal: pairs (2i, 2i+1) go to the bank or to the scored half, both balanced
    const train = idx.filter((i) => (i >> 1) % 2 === 0);
    const test = idx.filter((i) => (i >> 1) % 2 === 1);
    const res = await pretrain({
      method,
      source,
      outDir: join(dir, 'out'),
      epochs: 3,
      batchSize: 32,
      lr: 0.1,
      optimizer: 'lars',
      warmupEpochs: 1,
      seed: 1,
      log: quietLog,
      hyper,
    });
    const ssl = await knnAccuracy(await resolveEncoder(res.onnx).load({ cropSize: 32, seed: 1 }), crops, train, test);
    const ctl = await resolveEncoder('random-resnet18').load({ cropSize: 32, seed: 1 });
    const control = await knnAccuracy(ctl, crops, train, test);
    return { record: res.record, ssl, control };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The pretraining test of one method: 30 steps (3 epochs × 10) on the small crop store train it — every loss finite,
 * the mean of the last 4 steps below that of the first 4 after the warm-up epoch (from epoch 2: SwAV's loss changes
 * definition when its queue fills and its prototypes unfreeze after epoch 1), the record names the method and its
 * throughput — and its features beat the untrained control's with kNN, Euclidean and cosine.
 * @param hyper the method's hyperparameters for 320 crops (e.g. fewer prototypes than the paper's 500)
 */
export function pretrainCase(method: string, hyper: Record<string, number> = {}): void {
  test(`${method}: 30 pretraining steps on a small synthetic crop store lower the loss and beat the untrained control with kNN (k 5), Euclidean and cosine`, async (t) => {
    const r = await pretrainAgainstControl(method, hyper);
    const l = r.record.loss;
    assert.equal(l.length, 30); // 3 epochs × 10 steps
    assert.ok(
      l.every((p) => Number.isFinite(p.loss)),
      `${method}: non-finite loss`,
    );
    assert.equal(r.record.method, method);
    assert.ok(r.record.images_per_second > 0);
    const { first, last } = ends(
      l.filter((p) => p.epoch >= 1),
      4,
    );
    assert.ok(last < first, `${method} loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
    const msg = `${method} kNN ${JSON.stringify(r.ssl)} vs random-resnet18 ${JSON.stringify(r.control)}`;
    t.diagnostic(msg);
    assert.ok(r.ssl.euclidean > r.control.euclidean, msg);
    assert.ok(r.ssl.cosine > r.control.cosine, msg);
  });
}
