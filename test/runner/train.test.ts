/**
 * The runner's train stage (src/runner/train.ts) on every registered downstream task, with a real encoder and real
 * crops: a trained model saved and loaded back predicts exactly what the same model predicts in memory, the record
 * keeps what the training chose, `ensureModel` trains once per trainId, and damaged artifacts are refused.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { extractFeatures, type Features, selectCrops } from '../../src/encoders/features.js';
import { DOWNSTREAM_TASKS, type RegisteredTask, runTask } from '../../src/downstream/registry.js';
import type { DownstreamTask, PredictInput, TrainContext } from '../../src/downstream/task.js';
import { loadRandomResNet18 } from '../../src/encoders/random.js';
import { IMAGENET_PREPROCESS } from '../../src/encoders/types.js';
import { QcbError } from '../../src/errors.js';
import { ArtifactStore } from '../../src/runner/cache.js';
import type { TaskName } from '../../src/results/schema.js';
import { ensureModel, loadModel, MODEL_SCHEMA, predictModel, saveModel } from '../../src/runner/train.js';
import { synthCrops } from '../downstream/synth-crops.js';

const base = mkdtempSync(join(tmpdir(), 'qcb-train-'));
after(() => rmSync(base, { recursive: true, force: true }));

const S = 24;
const data = synthCrops(48, S, 5);
const trainRows = Array.from({ length: 32 }, (_, i) => i);
const testRows = Array.from({ length: 16 }, (_, i) => 32 + i);

/** Small settings per task (the paper's budgets would take minutes); the linear head also runs the line search. */
const SETTINGS: Record<TaskName, Record<string, unknown>> = {
  knn: { k: 3 },
  linear: { epochs: 6, milestones: [4], lr: 0.01 },
  finetune: { epochs: 2, batch_size: 8, milestones: [1] },
  quadratic: { steps: 40 },
};

let ctxOf: (task: TaskName) => TrainContext;
let testInput: (task: TaskName) => PredictInput;

before(async () => {
  const eg = await loadRandomResNet18({ cropSize: S, seed: 2, settings: { width: 4 } });
  const train = {
    crops: selectCrops(data.crops, trainRows),
    labels: trainRows.map((i) => data.labels[i]),
    ids: trainRows.map((i) => `c${i}`),
  };
  const testCrops = selectCrops(data.crops, testRows);
  const features: { train: Features; test: Features } = {
    train: await extractFeatures(eg, IMAGENET_PREPROCESS, train.crops, { threads: 1 }),
    test: await extractFeatures(eg, IMAGENET_PREPROCESS, testCrops, { threads: 1 }),
  };
  const frozen = (task: TaskName) => DOWNSTREAM_TASKS[task as RegisteredTask].frozen;
  ctxOf = (task) => ({
    eg,
    preprocess: IMAGENET_PREPROCESS,
    train,
    seed: 1,
    settings: SETTINGS[task],
    lineSearch: task === 'linear' ? { enabled: true, val_fraction: 0.25, lr: [0.1, 0.01] } : undefined,
    features: frozen(task) ? features.train : undefined,
    threads: 1,
  });
  testInput = (task) => ({ crops: testCrops, features: frozen(task) ? features.test : undefined });
});

const TASKS: DownstreamTask[] = Object.values(DOWNSTREAM_TASKS);

for (const task of TASKS) {
  test(`${task.name}: train → save → load → predict equals train → predict in memory`, async () => {
    const ctx = ctxOf(task.name);
    const trained = await task.train(ctx);
    const inMemory = await task.predict(trained.model, testInput(task.name), { threads: 1 });
    assert.equal(inMemory.pred.length, testRows.length);
    assert.ok(inMemory.score.every((s) => Number.isFinite(s) && s >= 0 && s <= 1));

    const dir = join(base, `model-${task.name}`);
    const rec = saveModel(dir, task, trained, { trainId: `id-${task.name}`, ids: ctx.train.ids, seconds: 1 });
    const loaded = loadModel(dir);
    assert.deepEqual(await predictModel(loaded, testInput(task.name), { threads: 1 }), inMemory);

    // the record: what the training chose, and the task's saved part under its name
    assert.deepEqual(loaded.record, JSON.parse(JSON.stringify(rec)));
    assert.equal(rec.schema, MODEL_SCHEMA);
    assert.equal(rec.task, task.name);
    assert.equal(rec.n_train, trainRows.length);
    assert.deepEqual(rec.settings, trained.settings);
    assert.deepEqual(rec.loss_curve, trained.lossCurve);
    assert.ok(rec[task.name as RegisteredTask] !== undefined);
    for (const other of Object.keys(DOWNSTREAM_TASKS) as RegisteredTask[])
      if (other !== task.name) assert.equal(rec[other], undefined);

    // the registry's train → predict in one go is the same training and prediction
    const { features: trainFeatures, ...rest } = ctx;
    const { crops, features: testFeatures } = testInput(task.name);
    const out = await runTask(task, {
      ...rest,
      test: { crops, labels: [], ids: [] },
      features: trainFeatures && testFeatures ? { train: trainFeatures, test: testFeatures } : undefined,
    });
    assert.deepEqual(out.pred, inMemory.pred);
    out.score.forEach((s, i) => {
      assert.ok(Math.abs(s - inMemory.score[i]) < 1e-6, `score ${i}`);
    });
    assert.deepEqual({ ...out.settings, images_per_second: 0 }, { ...trained.settings, images_per_second: 0 });
  });
}

test('the on-disk layout of each task (model.json keys, bank.f32, model.onnx) is the qcbench.model/1 one', () => {
  const rec = (t: TaskName) => JSON.parse(readFileSync(join(base, `model-${t}`, 'model.json'), 'utf8'));
  const knn = rec('knn');
  assert.deepEqual(Object.keys(knn.knn).sort(), ['cols', 'k', 'labels', 'normalize', 'rows']);
  assert.deepEqual(knn.settings, { k: 3, normalize: 'raw' });
  assert.equal(readFileSync(join(base, 'model-knn', 'bank.f32')).length, knn.knn.rows * knn.knn.cols * 4);
  const linear = rec('linear');
  assert.deepEqual(Object.keys(linear.linear).sort(), ['bias', 'classes', 'dim', 'weight']);
  assert.equal(linear.linear.weight.length, 2 * linear.linear.dim);
  assert.equal(linear.line_search.n_val, Math.ceil(0.25 * 16) * 2, 'line search recorded (16 per class)');
  assert.equal(linear.settings.lr, linear.line_search.best);
  assert.equal(linear.loss_curve.length, 6);
  const ft = rec('finetune');
  assert.deepEqual(Object.keys(ft.finetune).sort(), ['classes', 'images_per_second', 'input_size', 'preprocess']);
  assert.ok(existsSync(join(base, 'model-finetune', 'model.onnx')));
  const q = rec('quadratic');
  assert.deepEqual(Object.keys(q.quadratic).sort(), ['classes', 'layer', 'mean', 'positiveClass', 'std', 'trainLoss']);
  assert.deepEqual(Object.keys(q.quadratic.layer).sort(), ['bg', 'br', 'c', 'in', 'order', 'out', 'wb', 'wg', 'wr']);
});

test('ensureModel trains once per trainId and asks for the training context only then', async () => {
  const cache = new ArtifactStore(join(base, 'cache'));
  let asked = 0;
  const context = async () => {
    asked++;
    return ctxOf('knn');
  };
  const a = await ensureModel(cache, { task: 'knn', trainId: 'k1' }, context);
  const b = await ensureModel(cache, { task: 'knn', trainId: 'k1' }, context);
  assert.equal(a.computed, true);
  assert.equal(b.computed, false);
  assert.equal(asked, 1);
  assert.equal(b.model.record.train_id, 'k1');
  assert.deepEqual(await predictModel(b.model, testInput('knn')), await predictModel(a.model, testInput('knn')));
});

test('loadModel refuses another schema and a truncated kNN bank', () => {
  const dir = join(base, 'model-knn');
  const file = join(dir, 'model.json');
  const good = readFileSync(file, 'utf8');
  writeFileSync(file, good.replace(MODEL_SCHEMA, 'qcbench.model/0'));
  assert.throws(
    () => loadModel(dir),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_INTERNAL',
  );
  writeFileSync(file, good);
  const bank = join(dir, 'bank.f32');
  writeFileSync(bank, readFileSync(bank).subarray(0, 40));
  assert.throws(
    () => loadModel(dir),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FILE_TRUNCATED',
  );
});
