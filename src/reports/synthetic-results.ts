/**
 * SYNTHETIC RESULTS for tests and `qcbench bench report`: writes a results directory with made-up CellRecord /
 * PretrainRecord / RunRecord files in the format of src/results/schema.ts. The numbers are invented (predictions
 * drawn at a per-encoder accuracy level) and then scored with the real metric code; nothing here comes from a real
 * run, and nothing here may be shown as a result.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { mulberry32 } from '../util/random.js';
import { evaluate } from '../metrics/classification.js';
import {
  CELL_SCHEMA,
  type CellKey,
  type CellRecord,
  type EncoderKind,
  PRETRAIN_SCHEMA,
  type Prediction,
  type PretrainRecord,
  RUN_SCHEMA,
  type RunRecord,
  type TaskName,
} from '../results/schema.js';
import { contentHash, writeJsonAtomic } from '../util/fs.js';

export const TEST_ENCODERS: { encoder: string; label: string; kind: EncoderKind; level: number }[] = [
  { encoder: 'vgg16', label: 'VGG16', kind: 'tl', level: 0.96 },
  { encoder: 'resnet18', label: 'ResNet18', kind: 'tl', level: 0.97 },
  { encoder: 'convnext_tiny', label: 'ConvNext', kind: 'tl', level: 0.975 },
  { encoder: 'simclr', label: 'SimCLR', kind: 'ssl', level: 0.9 },
  { encoder: 'barlow_twins', label: 'Barlow Twins', kind: 'ssl', level: 0.88 },
  { encoder: 'vicreg', label: 'VICReg', kind: 'ssl', level: 0.8 },
  { encoder: 'deepclusterv2', label: 'DeepClusterV2', kind: 'ssl', level: 0.9 },
  { encoder: 'swav', label: 'SwAV', kind: 'ssl', level: 0.89 },
  { encoder: 'random-resnet18', label: 'Random ResNet18 (control)', kind: 'control', level: 0.7 },
  { encoder: 'resnet18-fractaldb', label: 'ResNet18 (FractalDB)', kind: 'supervised-synthetic', level: 0.85 },
];

export interface MakeOptions {
  seeds?: number[];
  /** Training / in-domain test set and shifted test set names (default the paper's). */
  trainSet?: string;
  shiftSet?: string;
  /** Budgets of the fine-tuning ablation (default 350/100/50/25/10). */
  budgets?: number[];
  /** ImageNet encoders recorded as skipped (weights missing). */
  skipTl?: boolean;
  /** Record this many cells as failed (NaN loss), from the end of the list. */
  failed?: number;
  /** Leave this many cells of run.json without a record (pending). */
  pending?: number;
  /** Write montages for the first N done cells. */
  montages?: number;
  /**
   * Montage size in pixels (default 256×64). The runner's montages of 32 crops of 128 px are 1042×522; at that
   * size only `distinctMontages` images are encoded and copied for the other cells (the report only reads them).
   */
  montageSize?: [number, number];
  /** Distinct montage images at most (default: one per montage). */
  distinctMontages?: number;
  /** Optimisation steps per pretraining loss curve (default 100). */
  pretrainSteps?: number;
  /**
   * The cells to write, e.g. a protocol's (`expandCells`), with their ids; replaces the list built from
   * seeds / budgets / encoders. Encoders outside TEST_ENCODERS get a made-up accuracy level of 0.85.
   */
  cells?: { id: string; key: CellKey }[];
  /** run.json's protocol entry and resolved protocol (default a test protocol). */
  protocol?: RunRecord['protocol'];
  resolved?: Record<string, unknown>;
  /** Bootstrap resamples per cell (small to keep tests fast). */
  bootstrap?: number;
  encoders?: string[];
}

/** Writes the directory and returns the keys it wrote. */
export async function makeResults(dir: string, o: MakeOptions = {}): Promise<{ cells: number; keys: CellKey[] }> {
  const seeds = o.seeds ?? [0, 1, 2];
  const train = o.trainSet ?? 'bbbc022';
  const shift = o.shiftSet ?? 'bbbc021';
  const budgets = o.budgets ?? [350, 100, 50, 25, 10];
  const top = Math.max(...budgets);
  let encs = TEST_ENCODERS.filter((e) => !o.encoders || o.encoders.includes(e.encoder));
  const keys: CellKey[] = [];
  if (o.cells) {
    const names = [...new Set(o.cells.map((c) => c.key.encoder))];
    encs = names.map(
      (n) =>
        TEST_ENCODERS.find((e) => e.encoder === n) ?? { encoder: n, label: n, kind: 'scratch' as const, level: 0.85 },
    );
    keys.push(...o.cells.map((c) => c.key));
  }
  for (const e of o.cells ? [] : encs) {
    for (const seed of seeds) {
      for (const task of ['knn', 'linear'] as TaskName[]) {
        keys.push({ encoder: e.encoder, task, budget: top, seed, train_set: train, test_set: train });
      }
      for (const b of budgets) {
        keys.push({ encoder: e.encoder, task: 'finetune', budget: b, seed, train_set: train, test_set: train });
      }
      keys.push({ encoder: e.encoder, task: 'finetune', budget: top, seed, train_set: train, test_set: shift });
    }
  }
  const ids = o.cells ? o.cells.map((c) => c.id) : keys.map((k) => contentHash({ k, test: 'synthetic' }).slice(0, 16));
  const run: RunRecord = {
    schema: RUN_SCHEMA,
    protocol: o.protocol ?? { name: 'test-protocol', file: 'protocols/test.yaml', version: 1, hash: 'test' },
    resolved: o.resolved ?? { note: 'synthetic test data' },
    cells: keys.map((key, i) => ({ id: ids[i], key })),
    started_at: '2026-01-01T00:00:00.000Z',
    qcbench_version: '0.1.0',
  };
  mkdirSync(join(dir, 'cells'), { recursive: true });
  writeJsonAtomic(join(dir, 'run.json'), run);
  const nPending = o.pending ?? 0;
  const nFailed = o.failed ?? 0;
  let montages = o.montages ?? 0;
  const montageFiles: string[] = [];
  let written = 0;
  for (let i = 0; i < keys.length - nPending; i++) {
    const key = keys[i];
    const e = encs.find((x) => x.encoder === key.encoder)!;
    const base = {
      schema: CELL_SCHEMA as typeof CELL_SCHEMA,
      id: ids[i],
      key,
      encoder_label: e.label,
      encoder_kind: e.kind,
      settings: { test_data: true },
      finished_at: '2026-01-01T00:00:00.000Z',
      ...(e.kind === 'ssl' ? { pretrain: `pt-${e.encoder}` } : {}),
    };
    let rec: CellRecord;
    if (o.skipTl && e.kind === 'tl') {
      rec = {
        ...base,
        status: 'skipped',
        skip: {
          reason: `ImageNet weights for ${e.encoder} are not in QCBENCH_WEIGHTS`,
          fix_command: `qcbench weights fetch ${e.encoder}`,
        },
      };
    } else if (i >= keys.length - nPending - nFailed) {
      rec = {
        ...base,
        status: 'failed',
        error: { code: 'QCB_NAN_LOSS', message: 'the loss became NaN at epoch 3', fix: 'lower the learning rate' },
      };
    } else {
      const preds = predictions(key, e.level, key.test_set !== key.train_set ? 0.75 : 1);
      const metrics = evaluate(preds, { bootstrap: o.bootstrap ?? 50, seed: key.seed, nTrain: key.budget });
      rec = { ...base, status: 'done', metrics, predictions: preds, timing: { features: 1.5, downstream: 0.5 } };
      if (montages > 0) {
        montages--;
        rec.montage = `montages/${ids[i]}.png`;
        const file = join(dir, rec.montage);
        if (montageFiles.length < (o.distinctMontages ?? Number.POSITIVE_INFINITY)) {
          await writeMontage(file, key.seed + i, o.montageSize);
          montageFiles.push(file);
        } else copyFileSync(montageFiles[written % montageFiles.length], file);
      }
    }
    writeJsonAtomic(join(dir, 'cells', `${ids[i]}.json`), rec);
    written++;
  }
  mkdirSync(join(dir, 'pretrain'), { recursive: true });
  for (const e of encs.filter((x) => x.kind === 'ssl')) {
    const rng = mulberry32(e.encoder.length);
    const loss: PretrainRecord['loss'] = [];
    const start = e.encoder === 'barlow_twins' ? 900 : e.encoder === 'vicreg' ? 24 : 6.2;
    const steps = o.pretrainSteps ?? 100;
    for (let step = 0; step < steps; step++) {
      const epoch = Math.floor((5 * step) / steps);
      loss.push({
        epoch,
        step,
        loss: start * (0.4 + 0.6 * Math.exp(-(100 * step) / steps / 30)) * (1 + 0.03 * (rng() - 0.5)),
        lr: 0.001,
      });
    }
    const p: PretrainRecord = {
      schema: PRETRAIN_SCHEMA,
      id: `pt-${e.encoder}`,
      encoder: 'resnet18',
      method: e.encoder,
      settings: { epochs: 5, batch: 128, test_data: true },
      loss,
      knn_monitor: [0, 1, 2, 3, 4].map((ep) => ({ epoch: ep, accuracy: 60 + ep * 5 + e.level * 5 })),
      images_per_second: 42,
      seconds: 120,
      onnx: `pretrain/pt-${e.encoder}.onnx`,
      finished_at: '2026-01-01T00:00:00.000Z',
    };
    writeJsonAtomic(join(dir, 'pretrain', `${p.id}.json`), p);
  }
  return { cells: written, keys };
}

/** 130 test predictions (65 per class) with accuracy ≈ level × factor, depending on seed. */
function predictions(key: CellKey, level: number, factor: number): Prediction[] {
  const rng = mulberry32(key.seed * 7919 + key.budget * 31 + key.encoder.length * 101 + key.task.length);
  const acc = Math.max(0.5, Math.min(0.995, level * factor - (key.budget < 50 ? 0.05 : 0) + (rng() - 0.5) * 0.02));
  const types = ['out-of-focus', 'debris', 'saturated'];
  const out: Prediction[] = [];
  for (let i = 0; i < 130; i++) {
    const abnormal = i % 2 === 0;
    const correct = rng() < acc;
    const pred = correct === abnormal ? 'abnormal' : 'normal';
    const score = Math.min(1, Math.max(0, (pred === 'abnormal' ? 0.7 : 0.3) + (rng() - 0.5) * 0.5));
    out.push({
      crop_id: `crop-${i}`,
      label: abnormal ? 'abnormal' : 'normal',
      pred,
      score,
      ...(abnormal ? { artefact_type: types[i % 3] } : {}),
    });
  }
  return out;
}

async function writeMontage(file: string, seed: number, size: [number, number] = [256, 64]): Promise<void> {
  mkdirSync(join(file, '..'), { recursive: true });
  const rng = mulberry32(seed);
  const [w, h] = size;
  if (w === 256 && h === 64) {
    const px = Buffer.alloc(w * h);
    for (let i = 0; i < px.length; i++) px[i] = Math.floor(rng() * 255);
    await sharp(px, { raw: { width: w, height: h, channels: 1 } })
      .png()
      .toFile(file);
    return;
  }
  // larger montages: smooth colour noise; PNG keeps ≈ 70% of the raw size, about as for the runner's montages of
  // synthetic-screen crops (≈ 1.1 MB at 1042×522)
  const sw = Math.max(1, Math.ceil(w / 8));
  const sh = Math.max(1, Math.ceil(h / 8));
  const px = Buffer.alloc(sw * sh * 3);
  for (let i = 0; i < px.length; i++) px[i] = Math.floor(rng() * 255);
  await sharp(px, { raw: { width: sw, height: sh, channels: 3 } })
    .resize(w, h, { kernel: 'cubic' })
    .png({ compressionLevel: 6 })
    .toFile(file);
}
