/**
 * The downstream training stage through the real runner and every real stage (synthetic screen → crops → encoder →
 * features → train → predict → metrics): cells that share a trainId (same encoder, task, budget, seed and training
 * set; another test set) train one model; the model and the features are persisted, so a run that lost its cell
 * records recomputes them from the cache without training or extracting again; the runner's path (train → save →
 * load → predict, src/runner/train.ts) gives the predictions and settings of the registry's train → predict in memory
 * (`runTask`), both through the tasks' one implementation. Also: `pretrain.knn_monitor`, `projector_dim` and `schedule` of a protocol reach a real
 * SSL pretraining.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readAnnotations, sampleLabelBudget } from '../../src/data/annotations.js';
import { openCropStore } from '../../src/data/store/crop-store.js';
import { makeTinyScreen, TINY_SYNTH } from './_tiny-screen.js';
import { DOWNSTREAM_TASKS, runTask } from '../../src/downstream/registry.js';
import { extractFeatures } from '../../src/encoders/features.js';
import { resolveEncoder } from '../../src/encoders/registry.js';
import { SSL_WEIGHT_DECAY } from '../../src/protocol/defaults.js';
import { loadProtocol } from '../../src/runner/catalog.js';
import type { Protocol } from '../../src/protocol/schema.js';
import { datasetId, expandCells } from '../../src/runner/cells.js';
import type { CellRecord } from '../../src/results/schema.js';
import { runProtocol } from '../../src/runner/run.js';
import { loadModel, predictModel } from '../../src/runner/train.js';
import { createStages } from '../../src/runner/stages.js';
import { Logger } from '../../src/util/log.js';

const base = mkdtempSync(join(tmpdir(), 'qcb-reuse-'));
const protocolFile = join(base, 'reuse.yaml');
const SYNTH = TINY_SYNTH;

before(async () => {
  await makeTinyScreen(base);
  // `t` is the same screen under another name: a second test set for the same trained models (as the domain shift).
  writeFileSync(
    protocolFile,
    `version: 1
name: reuse
seeds: [0]
encoders: [random-resnet18, simclr]
data:
  crop_size: 32
  pretrain_on: s
  datasets:
    s: { format: synthetic, root: screen, annotations: ann.csv, channels: [Ph_golgi, Mito, Hoechst], synth: ${SYNTH} }
    t: { format: synthetic, root: screen, annotations: ann.csv, channels: [Ph_golgi, Mito, Hoechst], synth: ${SYNTH} }
pretrain:
  epochs: 1
  batch_size: 8
  max_images_per_epoch: 16
  knn_monitor: true
  schedule: constant
  projector_dim: 64
  methods: { simclr: { proj_output_dim: 32 } }
tasks:
  linear: { epochs: 4, milestones: [2] }
  finetune: { epochs: 2, batch_size: 8, milestones: [1] }
metrics: { bootstrap: 20 }
evaluations:
  - { name: in-domain, tasks: [knn, linear, finetune], budgets: [8], encoders: [random-resnet18] }
  - { name: shift, tasks: [knn, linear, finetune], budgets: [8], test_set: t, encoders: [random-resnet18] }
  - { name: ssl, tasks: [knn], budgets: [8], encoders: [simclr] }
`,
  );
});

after(() => rmSync(base, { recursive: true, force: true }));

const load = (): Protocol => loadProtocol(protocolFile, { env: {}, workdir: join(base, 'work') });

async function run(p: Protocol) {
  return runProtocol(p, createStages(), { log: new Logger({ quiet: true }), threads: 1 }, 'test');
}

function logRecords(p: Protocol): Record<string, unknown>[] {
  return readFileSync(join(p.results, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

const trainedEvents = (p: Protocol) =>
  logRecords(p).filter((r) => r.stage === 'train' && String(r.msg).startsWith('trained'));

function cells(p: Protocol): Map<string, CellRecord> {
  const dir = join(p.results, 'cells');
  return new Map(
    readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => {
        const r = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CellRecord;
        return [r.id, r];
      }),
  );
}

const mtimes = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir).map((f) => [
      f,
      statSync(join(dir, f, 'meta.json'), { throwIfNoEntry: false })?.mtimeMs ?? statSync(join(dir, f)).mtimeMs,
    ]),
  );

test('cells sharing a trainId train once; models and features persist; results equal the registry path', {
  timeout: 600_000,
}, async () => {
  const p = load();
  const plan = expandCells(p);
  assert.equal(plan.length, 7, '3 tasks × 2 test sets for the control, kNN for SimCLR');
  const trainIds = new Set(plan.map((c) => c.trainId));
  assert.equal(trainIds.size, 4, 'the two test sets share the control’s three trained models');

  const s1 = await run(p);
  assert.equal(s1.done, 7, JSON.stringify(s1));
  const first = cells(p);

  // one training per trainId, never one per cell
  const trained = trainedEvents(p);
  assert.equal(trained.length, 4);
  assert.deepEqual(new Set(trained.map((r) => r.train)), trainIds);
  const modelsDir = join(p.workdir, 'cache', 'models');
  assert.deepEqual(new Set(readdirSync(modelsDir).filter((f) => !f.includes('.'))), trainIds);

  // the twin cells (same model, same crops under another data-set name) score identically
  for (const c of plan.filter((c) => c.key.test_set === 't')) {
    const twin = plan.find((d) => d.trainId === c.trainId && d.key.test_set === 's');
    assert.ok(twin);
    assert.deepEqual(
      first.get(c.id)?.predictions,
      first.get(twin.id)?.predictions,
      `${c.key.task}: one model, one answer`,
    );
    assert.deepEqual(first.get(c.id)?.metrics, first.get(twin.id)?.metrics);
  }

  // the persisted model (train → save → load → predict) predicts what the registry's train → predict in memory does
  const storeDir = join(p.workdir, 'cache', 'stores', datasetId(p, 's').slice(0, 24));
  const store = await openCropStore(storeDir);
  const ann = readAnnotations(join(base, 'ann.csv'));
  const trainRows = sampleLabelBudget(
    ann.filter((a) => a.split === 'train'),
    8,
    0,
    join(base, 'ann.csv'),
  );
  const testRows = ann.filter((a) => a.split === 'test');
  const index = new Map(store.meta.map((m) => [m.crop_id, m.index]));
  const cropsOf = async (rows: typeof ann) => ({
    data: await store.readIndices(rows.map((r) => index.get(r.crop_id)!)),
    n: rows.length,
    channels: store.channels.length,
    size: store.size,
  });
  const entry = resolveEncoder('random-resnet18');
  const eg = await entry.load({ cropSize: 32, seed: 0, threads: 1, cacheDir: join(p.workdir, 'cache', 'fractaldb') });
  const pre = eg.preprocess ?? entry.preprocess;
  const train = {
    crops: await cropsOf(trainRows),
    labels: trainRows.map((a) => a.label),
    ids: trainRows.map((a) => a.crop_id),
  };
  const testSplit = {
    crops: await cropsOf(testRows),
    labels: testRows.map((a) => a.label),
    ids: testRows.map((a) => a.crop_id),
  };
  const features = {
    train: await extractFeatures(eg, pre, train.crops, { threads: 1 }),
    test: await extractFeatures(eg, pre, testSplit.crops, { threads: 1 }),
  };
  for (const task of ['knn', 'linear', 'finetune'] as const) {
    const frozen = DOWNSTREAM_TASKS[task].frozen;
    const out = await runTask(DOWNSTREAM_TASKS[task], {
      eg,
      preprocess: pre,
      train,
      test: testSplit,
      seed: 0,
      settings: p.tasks[task] as unknown as Record<string, unknown>,
      lineSearch: task === 'knn' ? undefined : p.tasks.line_search,
      features: frozen ? features : undefined,
      threads: 1,
    });
    const cell = plan.find(
      (c) => c.key.task === task && c.key.encoder === 'random-resnet18' && c.key.test_set === 's',
    )!;
    const got = first.get(cell.id)!.predictions!;
    assert.deepEqual(
      got.map((x) => x.pred),
      out.pred,
      `${task}: same predictions as the registry`,
    );
    got.forEach((x, i) => {
      assert.ok(Math.abs(x.score - out.score[i]) < 1e-5, `${task}: score ${i} ${x.score} vs ${out.score[i]}`);
    });
    // the cached artifact itself: its record holds the registry's settings and curve, and reloaded here it predicts
    // what its cell recorded
    const model = loadModel(join(modelsDir, cell.trainId));
    assert.equal(model.record.task, task);
    assert.deepEqual(model.record.train_crop_ids, train.ids);
    const { images_per_second: _a, ...recorded } = model.record.settings;
    const { images_per_second: _b, ...chosen } = out.settings;
    assert.deepEqual(recorded, chosen, `${task}: settings recorded = settings used`);
    assert.equal(model.record.loss_curve?.length, out.lossCurve?.length);
    model.record.loss_curve?.forEach((l, i) => {
      assert.ok(Math.abs(l - out.lossCurve![i]) < 1e-4 * Math.max(1, Math.abs(l)), `${task}: loss ${i}`);
    });
    const again = await predictModel(
      model,
      { crops: testSplit.crops, features: frozen ? features.test : undefined },
      { threads: 1 },
    );
    assert.deepEqual(again.pred, out.pred, `${task}: reloaded model`);
    again.score.forEach((v, i) => {
      assert.ok(Math.abs(v - got[i].score) < 1e-5, `${task}: reloaded score ${i}`);
    });
  }

  // the protocol's knn_monitor and projector_dim reached the real SSL pretraining
  const rec = JSON.parse(
    readFileSync(join(p.results, 'pretrain', readdirSync(join(p.results, 'pretrain'))[0]), 'utf8'),
  );
  assert.equal(rec.method, 'simclr');
  assert.deepEqual(
    rec.knn_monitor.map((k: { epoch: number }) => k.epoch),
    [-1, 0],
    'monitor before and after the epoch',
  );
  assert.equal(rec.settings.hyper.proj_hidden_dim, 64);
  assert.equal(rec.settings.hyper.proj_output_dim, 32);
  assert.equal(rec.settings.weight_decay, SSL_WEIGHT_DECAY);
  assert.equal(rec.settings.schedule.kind, 'constant');
  for (const pt of rec.loss) assert.equal(pt.lr, p.pretrain.lr, 'schedule: constant keeps the base learning rate');

  // a run that lost its cell records recomputes them from the persisted models and features: nothing retrained or
  // re-extracted, the same results
  const featuresDir = join(p.workdir, 'cache', 'features');
  const featuresBefore = mtimes(featuresDir);
  assert.ok(Object.keys(featuresBefore).length >= 2, 'features of both encoders persisted');
  rmSync(join(p.results, 'cells'), { recursive: true });
  const s2 = await run(load());
  assert.equal(s2.done, 7);
  assert.equal(trainedEvents(p).length, 4, 'no model trained again');
  assert.deepEqual(mtimes(featuresDir), featuresBefore, 'no features extracted again');
  const second = cells(p);
  for (const [id, r] of first) {
    assert.deepEqual(second.get(id)?.predictions, r.predictions, `cell ${id}: same predictions`);
    assert.deepEqual(second.get(id)?.metrics, r.metrics, `cell ${id}: same metrics`);
  }
});
