import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { command as evalCmd } from '../../src/cli/eval.js';
import { type Annotation, writeAnnotations } from '../../src/data/annotations.js';
import { CropStoreWriter } from '../../src/data/store/crop-store.js';
import { chooseChannels, pickChannels } from '../../src/encoders/features.js';
import { QcbError } from '../../src/errors.js';
import { Logger } from '../../src/util/log.js';
import { synthCrops } from './synth-crops.js';
import { captureStdout } from '../cli/_cli.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));
const ctx = { log: new Logger({ quiet: true }) };
const S = 24;
const dir = mkdtempSync(join(tmpdir(), 'qcb-eval-'));
const storePath = join(dir, 'store');
const annFile = join(dir, 'annotations.csv');

async function setup(): Promise<void> {
  const d = synthCrops(96, S, 7);
  const w = await CropStoreWriter.create(storePath, {
    channels: ['Ph_golgi', 'Mito', 'Hoechst'],
    size: S,
    dataset: 'synthetic',
  });
  const ids = d.labels.map((_, i) => `P1_B02_s1_${100 + i}_${200 + i}`);
  await w.append(
    d.crops.data,
    ids.map((id, i) => ({
      crop_id: id,
      plate: 'P1',
      well: 'B02',
      site: 1,
      field_id: 'P1_B02_s1',
      x: 100 + i,
      y: 200 + i,
      area: 0,
      source_files: '',
      metadata: {},
    })),
  );
  await w.finish();
  const rows: Annotation[] = ids.map((id, i) => ({
    crop_id: id,
    label: d.labels[i] as 'normal' | 'abnormal',
    artefact_type: d.labels[i] === 'abnormal' ? d.types[i] : 'none',
    split: i < 64 ? 'train' : 'test',
    source: 'synthetic-ground-truth',
  }));
  writeAnnotations(annFile, rows);
}
const ready = setup();

test('eval: kNN on an ONNX file encoder prints weighted metrics and writes predictions', async () => {
  await ready;
  const out = join(dir, 'knn.json');
  const preds = join(dir, 'knn.csv');
  const code = await evalCmd.run(
    [
      '--encoder',
      join(FIX, 'vgg_small_tv.onnx'),
      '--task',
      'knn',
      '--annotations',
      annFile,
      '--store',
      storePath,
      '--out',
      out,
      '--predictions',
      preds,
      '--threads',
      '1',
      '--bootstrap',
      '200',
    ],
    ctx,
  );
  assert.equal(code, 0);
  const r = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(r.task, 'knn');
  assert.equal(r.encoder.dim, 128);
  assert.equal(r.metrics.n_test, 32);
  assert.equal(r.metrics.n_train, 64);
  for (const m of ['accuracy', 'f1', 'auc']) {
    assert.ok(r.metrics[m] >= 0 && r.metrics[m] <= 100, m);
    assert.ok(r.metrics.ci95[m][0] <= r.metrics[m] + 1e-9 && r.metrics[m] <= r.metrics.ci95[m][1] + 1e-9);
  }
  assert.equal(r.settings.k, 5);
  const lines = readFileSync(preds, 'utf8').trim().split('\n');
  assert.equal(lines[0], 'crop_id,label,pred,score,artefact_type');
  assert.equal(lines.length, 33);
  const confusionTotal = r.metrics.confusion.flat().reduce((a: number, b: number) => a + b, 0);
  assert.equal(confusionTotal, 32);
  // the readable report
  const { out: text } = await captureStdout(() =>
    evalCmd.run(
      [
        '--encoder',
        join(FIX, 'vgg_small_tv.onnx'),
        '--task',
        'knn',
        '--annotations',
        annFile,
        '--store',
        storePath,
        '--threads',
        '1',
        '--bootstrap',
        '100',
      ],
      ctx,
    ),
  );
  assert.match(text, new RegExp(`^accuracy  ${r.metrics.accuracy.toFixed(2)}  \\[`, 'm'));
  assert.match(text, /^F1 {8}\d+\.\d\d/m);
  assert.match(text, /^confusion normal: \d+\/\d+ {2}abnormal: \d+\/\d+/m);
});

test('eval: linear task with a label budget and the line search on the training split', async () => {
  await ready;
  const out = join(dir, 'linear.json');
  const code = await evalCmd.run(
    [
      '--encoder',
      join(FIX, 'vgg_small_tv.onnx'),
      '--task',
      'linear',
      '--annotations',
      annFile,
      '--store',
      storePath,
      '--budget',
      '40',
      '--seed',
      '2',
      '--epochs',
      '30',
      '--line-search',
      '--out',
      out,
      '--threads',
      '1',
      '--bootstrap',
      '0',
    ],
    ctx,
  );
  assert.equal(code, 0);
  const r = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(r.metrics.n_train, 40);
  assert.equal(r.budget, 40);
  assert.equal(r.settings.epochs, 30);
  assert.equal(r.line_search.n_val, 8); // ⌈0.2·20⌉ per class, from the 40 training crops only
  assert.ok([0.01, 0.001, 0.0001].includes(r.line_search.best));
  assert.equal(r.settings.lr, r.line_search.best);
  assert.equal(r.loss_curve.length, 30);
});

test("eval --engine tfjs: frozen features from the TF.js interpreter give onnxruntime's kNN; bad uses exit 2", async () => {
  await ready;
  const base = ['--encoder', join(FIX, 'vgg_small_tv.onnx'), '--annotations', annFile, '--store', storePath];
  const run = async (engine?: string) => {
    const out = join(dir, `knn-${engine ?? 'default'}.json`);
    const preds = join(dir, `knn-${engine ?? 'default'}.csv`);
    const args = [...base, '--task', 'knn', '--out', out, '--predictions', preds, '--threads', '1', '--bootstrap', '0'];
    assert.equal(await evalCmd.run(engine ? [...args, '--engine', engine] : args, ctx), 0);
    return { r: JSON.parse(readFileSync(out, 'utf8')), preds: readFileSync(preds, 'utf8') };
  };
  const ort = await run();
  const tfjs = await run('tfjs');
  assert.equal(ort.r.engine, undefined);
  assert.equal(tfjs.r.engine.features, 'tfjs');
  assert.ok(['cpu', 'tensorflow'].includes(tfjs.r.engine.backend), tfjs.r.engine.backend);
  // features agree to ~1e-6, so the neighbours and votes are the same
  assert.equal(tfjs.preds, ort.preds);
  assert.deepEqual(tfjs.r.metrics, ort.r.metrics);
  await assert.rejects(
    evalCmd.run([...base, '--task', 'knn', '--engine', 'tfsj'], ctx),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_USAGE' &&
      e.exitCode === 2 &&
      e.context.key === '--engine' &&
      /did you mean 'tfjs'/.test(e.context.fix!),
  );
  await assert.rejects(
    evalCmd.run([...base, '--task', 'finetune', '--engine', 'tfjs'], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE' && e.exitCode === 2 && /finetune/.test(e.message),
  );
});

test('eval: ImageNet encoder without weights fails with QCB_WEIGHTS_MISSING and the fetch command; unknown ids are named', async () => {
  await ready;
  const empty = mkdtempSync(join(tmpdir(), 'qcb-now-'));
  await assert.rejects(
    evalCmd.run(
      ['--encoder', 'vgg16', '--task', 'knn', '--annotations', annFile, '--store', storePath, '--weights', empty],
      ctx,
    ),
    (e: unknown) => {
      assert.ok(e instanceof QcbError);
      assert.equal(e.code, 'QCB_WEIGHTS_MISSING');
      assert.match(e.context.fix!, /qcbench weights fetch vgg16/);
      return true;
    },
  );
  const bad = join(dir, 'bad.csv');
  writeFileSync(bad, `${readFileSync(annFile, 'utf8')}P9_Z99_s1_1_1,normal,none,test,manual:x\n`);
  await assert.rejects(
    evalCmd.run(
      ['--encoder', join(FIX, 'vgg_small_tv.onnx'), '--task', 'knn', '--annotations', bad, '--store', storePath],
      ctx,
    ),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ANNOTATIONS' && /P9_Z99_s1_1_1/.test(e.message),
  );
  await assert.rejects(
    evalCmd.run(['--encoder', 'resnet-18', '--task', 'knn', '--annotations', annFile, '--store', storePath], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_UNKNOWN_NAME' && /resnet18/.test(e.context.fix!),
  );
  await assert.rejects(
    evalCmd.run(['--encoder', 'resnet18', '--task', 'linaer', '--annotations', annFile, '--store', storePath], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_UNKNOWN_NAME' && /linear/.test(e.context.fix!),
  );
});

test('channels: the paper RGB composite is picked by name from a Cell Painting store', () => {
  const names = ['ER', 'Hoechst', 'Mito', 'Ph_golgi', 'Syto'];
  assert.deepEqual(chooseChannels(names), [3, 2, 1]);
  assert.deepEqual(chooseChannels(['DAPI', 'Tubulin', 'Actin']), [0, 1, 2]);
  assert.deepEqual(chooseChannels(names, ['er', 'syto', 'hoechst']), [0, 4, 1]);
  assert.throws(
    () => chooseChannels(['A', 'B', 'C', 'D']),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_STORE' && /--channels/.test(e.context.fix!),
  );
  const data = Uint8Array.from({ length: 2 * 5 * 4 }, (_, i) => i);
  const p = pickChannels(data, 2, 5, 2, [3, 2, 1]);
  assert.equal(p.channels, 3);
  assert.deepEqual([...p.data.subarray(0, 4)], [12, 13, 14, 15]);
  assert.deepEqual([...p.data.subarray(12, 16)], [32, 33, 34, 35]);
});

test('eval: the FractalDB encoder is pretrained on the fly (settings from --encoder-opt), cached, labelled synthetic', async () => {
  await ready;
  const out = join(dir, 'fdb.json');
  const cache = join(dir, 'cache');
  const args = [
    '--encoder',
    'resnet18-fractaldb',
    '--task',
    'knn',
    '--annotations',
    annFile,
    '--store',
    storePath,
    '--out',
    out,
    '--cache',
    cache,
    '--threads',
    '1',
    '--bootstrap',
    '0',
  ];
  for (const kv of ['categories=3', 'instances=4', 'epochs=1', 'batch_size=6', 'width=4'])
    args.push('--encoder-opt', kv);
  assert.equal(await evalCmd.run(args, ctx), 0);
  const r = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(r.encoder.kind, 'supervised-synthetic');
  assert.equal(r.encoder.dim, 32);
  assert.match(r.encoder.source.pretraining, /not ImageNet/);
  assert.equal(r.encoder.source.cached, false);
  assert.equal(await evalCmd.run(args, ctx), 0);
  assert.equal(JSON.parse(readFileSync(out, 'utf8')).encoder.source.cached, true);
  await assert.rejects(
    evalCmd.run([...args, '--encoder-opt', 'nokv'], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE',
  );
});
