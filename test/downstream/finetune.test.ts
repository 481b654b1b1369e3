import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadOnnxEncoder } from '../../src/encoders/onnx-file.js';
import { loadRandomResNet18 } from '../../src/encoders/random.js';
import { IMAGENET_PREPROCESS } from '../../src/encoders/types.js';
import { selectCrops } from '../../src/encoders/features.js';
import { predictFinetune, trainFinetune } from '../../src/downstream/finetune.js';
import { DOWNSTREAM_TASKS, runTask } from '../../src/downstream/registry.js';
import { accuracy } from '../../src/metrics/classification.js';
import { QcbError } from '../../src/errors.js';
import { synthCrops } from './synth-crops.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));
// 24×24 crops keep the file well under 30 s on 2 shared cores; 128 train / 64 test, balanced
const S = 24;
const data = synthCrops(192, S, 3);
const trainRows = Array.from({ length: 128 }, (_, i) => i);
const testRows = Array.from({ length: 64 }, (_, i) => 128 + i);

test('finetune: the whole exported VGG encoder trains, its loss falls and it beats chance on generated crops', async () => {
  const eg = loadOnnxEncoder(join(FIX, 'vgg_small_tv.onnx'), S);
  const train = selectCrops(data.crops, trainRows);
  const labels = trainRows.map((i) => data.labels[i]);
  const m = await trainFinetune(eg, IMAGENET_PREPROCESS, train, labels, {
    seed: 1,
    threads: 2,
    settings: { epochs: 8, batch_size: 16, lr: 0.01, milestones: [5] },
  });
  assert.equal(m.lossCurve.length, 8);
  const early = (m.lossCurve[0] + m.lossCurve[1]) / 2;
  const late = (m.lossCurve[6] + m.lossCurve[7]) / 2;
  assert.ok(late < 0.95 * early, `loss ${early.toFixed(3)} → ${late.toFixed(3)}`);
  // the encoder itself changed (not only the head): its first conv is no longer the file's
  const w0 = eg.graph.initializers.get('0.0.weight')!.data as Float32Array;
  const w1 = m.graph.initializers.get('0.0.weight')!.data as Float32Array;
  assert.ok(w0.some((v, i) => Math.abs(v - w1[i]) > 1e-7));
  const p = await predictFinetune(m, selectCrops(data.crops, testRows), { threads: 2 });
  const acc = accuracy(
    testRows.map((i) => data.labels[i]),
    p.pred,
  );
  assert.ok(acc > 60, `test accuracy ${acc}% on a balanced test set`);
});

test('finetune task: an engine ResNet18 (BatchNorm in training mode) lowers its loss and beats chance through the registry', async () => {
  const eg = await loadRandomResNet18({ cropSize: S, seed: 2, settings: { width: 4 } });
  const out = await runTask(DOWNSTREAM_TASKS.finetune, {
    eg,
    preprocess: IMAGENET_PREPROCESS,
    train: { crops: selectCrops(data.crops, trainRows), labels: trainRows.map((i) => data.labels[i]), ids: [] },
    test: { crops: selectCrops(data.crops, testRows), labels: testRows.map((i) => data.labels[i]), ids: [] },
    seed: 1,
    settings: { epochs: 8, batch_size: 16, lr: 0.05, milestones: [5] },
    threads: 2,
  });
  const c = out.lossCurve!;
  assert.ok(c[c.length - 1] < c[0], `loss ${c[0]} → ${c[c.length - 1]}`);
  assert.equal(out.pred.length, 64);
  const acc = accuracy(
    testRows.map((i) => data.labels[i]),
    out.pred,
  );
  assert.ok(acc > 60, `test accuracy ${acc}%`);
  assert.ok(out.score.every((s) => s >= 0 && s <= 1 && Number.isFinite(s)));
  assert.equal(out.settings.epochs, 8);
});

test('finetune: a diverging fine-tuning (lr 1e6) fails with a run-failure code instead of a constant predictor', async () => {
  const eg = await loadRandomResNet18({ cropSize: S, seed: 2, settings: { width: 4 } });
  const rows = trainRows.slice(0, 48);
  await assert.rejects(
    trainFinetune(
      eg,
      IMAGENET_PREPROCESS,
      selectCrops(data.crops, rows),
      rows.map((i) => data.labels[i]),
      { seed: 1, settings: { lr: 1e6, epochs: 3, batch_size: 16, milestones: [] } },
    ),
    (e: unknown) =>
      e instanceof QcbError &&
      (e.code === 'QCB_DIVERGED' || e.code === 'QCB_NAN_LOSS') &&
      /tasks\.finetune\.lr/.test(e.context.fix ?? ''),
  );
});
