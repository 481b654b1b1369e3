/** `qcbench qc train` / `qcbench qc apply` command lines, every task, and bad input caught before any work. */

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { command as applyCmd } from '../../src/cli/qc-apply.js';
import { command as trainCmd } from '../../src/cli/qc-train.js';
import { type Annotation, writeAnnotations } from '../../src/data/annotations.js';
import { CropStoreWriter } from '../../src/data/store/crop-store.js';
import { QcbError } from '../../src/errors.js';
import { Logger } from '../../src/util/log.js';
import { synthCrops } from '../downstream/synth-crops.js';
import { assertSameRows } from '../qc/_tables.js';
import { captureStdout } from './_cli.js';

const VGG = fileURLToPath(new URL('../../../shared/fixtures/onnx/vgg_small_tv.onnx', import.meta.url));
const ctx = { log: new Logger({ quiet: true }) };
const S = 32;
const dir = mkdtempSync(join(tmpdir(), 'qcb-qc-cli-'));
const wells = ['B02', 'B03', 'C05'];

async function makeStore(path: string, channels: string[], size: number, n: number, seed: number): Promise<string[]> {
  const d = synthCrops(n, size, seed);
  const w = await CropStoreWriter.create(path, { channels, size, dataset: 'synthetic' });
  const per = size * size;
  const data = new Uint8Array(d.crops.n * channels.length * per);
  for (let k = 0; k < d.crops.n; k++)
    for (let c = 0; c < channels.length; c++)
      data.set(
        d.crops.data.subarray((k * 3 + (c % 3)) * per, (k * 3 + (c % 3) + 1) * per),
        (k * channels.length + c) * per,
      );
  const metas = d.labels.map((_, i) => {
    const well = wells[i % wells.length];
    const x = 100 + i;
    const y = 200 + i;
    return {
      crop_id: `P1_${well}_s1_${x}_${y}`,
      plate: 'P1',
      well,
      site: 1,
      field_id: `P1_${well}_s1`,
      x,
      y,
      area: 0,
      source_files: '',
      metadata: {},
    };
  });
  await w.append(data, metas);
  await w.finish();
  return d.labels;
}

const store = join(dir, 'store');
const ann = join(dir, 'ann.csv');
const ready = (async () => {
  const labels = await makeStore(store, ['Ph_golgi', 'Mito', 'Hoechst'], S, 80, 11);
  const rows: Annotation[] = labels.map((l, i) => ({
    crop_id: `P1_${wells[i % wells.length]}_s1_${100 + i}_${200 + i}`,
    label: l as 'normal' | 'abnormal',
    artefact_type: l === 'abnormal' ? 'other' : 'none',
    split: i < 56 ? 'train' : 'test',
    source: 'synthetic-ground-truth',
  }));
  writeAnnotations(ann, rows);
  await makeStore(join(dir, 'store16'), ['Ph_golgi', 'Mito', 'Hoechst'], 16, 8, 12);
  await makeStore(join(dir, 'store1ch'), ['Hoechst'], S, 8, 13);
})();

const rejects = (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (e: unknown) => e instanceof QcbError && e.code === code);

test('qc train (linear, knn, finetune; cp-quality --artefacts) and qc apply from the command line', async () => {
  await ready;
  for (const [task, extra] of [
    ['linear', ['--epochs', '5']],
    ['knn', ['--k', '3']],
    ['finetune', ['--epochs', '1']],
  ] as const) {
    const model = join(dir, `${task}.onnx`);
    const t = await captureStdout(() =>
      trainCmd.run(
        [
          '--encoder',
          VGG,
          '--task',
          task,
          '--annotations',
          ann,
          '--store',
          store,
          '--out',
          model,
          '--threads',
          '2',
          ...extra,
        ],
        ctx,
      ),
    );
    assert.equal(t.code, 0);
    assert.ok(t.out.includes('validation (24 test crops)'), t.out);
    const meta = JSON.parse(readFileSync(join(dir, `${task}.json`), 'utf8'));
    assert.equal(meta.task, task);
    assert.deepEqual(meta.input.shape, ['N', 3, S, S]);
    assert.equal(meta.outputs.includes('logits'), task !== 'knn');
    if (task === 'knn') assert.equal(meta.task_settings.k, 3);
    else assert.equal(meta.task_settings.epochs, task === 'linear' ? 5 : 1);
    const out = join(dir, `apply-${task}`);
    const a = await captureStdout(() =>
      applyCmd.run(['--model', model, '--store', store, '--out', out, '--json', '--threads', '2'], ctx),
    );
    assert.equal(a.code, 0);
    const r = JSON.parse(a.out);
    assert.equal(r.crops, 80);
    assert.ok(r.complete);
    const w = readFileSync(join(out, 'wells.csv'), 'utf8').trim().split('\n');
    assert.equal(w.length, 1 + wells.length);
    assertSameRows(join(out, 'wells.csv'), join(out, 'wells.jsonl'), ['n', 'abnormal', 'fraction', 'mean_score']);
    assertSameRows(join(out, 'fields.csv'), join(out, 'fields.jsonl'), [
      'site',
      'n',
      'abnormal',
      'fraction',
      'mean_score',
    ]);
    assert.equal(readFileSync(join(out, 'fields.csv'), 'utf8').trim().split('\n').length, 1 + wells.length); // one site per well
    // the stored scores are what the file alone computes
    const sess = await ort.InferenceSession.create(readFileSync(model));
    const scores = readFileSync(join(out, 'scores.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).score);
    const { openCropStore } = await import('../../src/data/store/crop-store.js');
    const st = await openCropStore(store);
    const res = await sess.run({ crops: new ort.Tensor('uint8', await st.read(0, 8), [8, 3, S, S]) });
    assert.deepEqual(Array.from(res.abnormal_score.data as Float32Array), scores.slice(0, 8));
    await sess.release();
  }
  // cp-quality, the incumbent measures, as a detector of named artefact types
  const model = join(dir, 'cpq.onnx');
  const args = ['--encoder', 'cp-quality', '--task', 'knn', '--annotations', ann, '--store', store, '--out', model];
  const t = await captureStdout(() => trainCmd.run([...args, '--artefacts', 'other', '--threshold', '0.5'], ctx));
  assert.equal(t.code, 0);
  assert.match(t.out, /abnormal means: other \(other artefacts left out\)/);
  const meta = JSON.parse(readFileSync(join(dir, 'cpq.json'), 'utf8'));
  assert.deepEqual(meta.artefacts, ['other']);
  assert.equal(meta.encoder.kind, 'handcrafted');
  await rejects(trainCmd.run([...args, '--artefacts', 'bluur'], ctx), 'QCB_USAGE');
  await rejects(trainCmd.run([...args, '--artefacts', 'blur'], ctx), 'QCB_ANNOTATIONS');
  await rejects(trainCmd.run([...args, '--precision', 'int8'], ctx), 'QCB_NOT_APPLICABLE');
});

test('bad input fails with a clear QcbError before any work', async () => {
  await ready;
  const model = join(dir, 'knn.onnx');
  const out = join(dir, 'never');
  await rejects(
    applyCmd.run(['--model', join(dir, 'missing.onnx'), '--store', store, '--out', out], ctx),
    'QCB_FILE_NOT_FOUND',
  );
  await rejects(applyCmd.run(['--model', model, '--store', join(dir, 'store16'), '--out', out], ctx), 'QCB_STORE');
  await rejects(applyCmd.run(['--model', model, '--store', join(dir, 'store1ch'), '--out', out], ctx), 'QCB_STORE');
  await assert.rejects(
    applyCmd.run(['--model', model, '--store', join(dir, 'store16'), '--out', out], ctx),
    /16×16.*takes 32×32/,
  );
  // a sidecar that belongs to another model
  const other = join(dir, 'other.onnx');
  copyFileSync(join(dir, 'linear.onnx'), other);
  copyFileSync(join(dir, 'knn.json'), join(dir, 'other.json'));
  await rejects(applyCmd.run(['--model', other, '--store', store, '--out', out], ctx), 'QCB_FILE_FORMAT');
  // no sidecar at all
  copyFileSync(model, join(dir, 'lonely.onnx'));
  await rejects(
    applyCmd.run(['--model', join(dir, 'lonely.onnx'), '--store', store, '--out', out], ctx),
    'QCB_FILE_NOT_FOUND',
  );
  writeFileSync(join(dir, 'lonely.json'), '{"format":"something-else"}');
  await rejects(
    applyCmd.run(['--model', join(dir, 'lonely.onnx'), '--store', store, '--out', out], ctx),
    'QCB_FILE_FORMAT',
  );
  await rejects(applyCmd.run(['--model', model, '--store', store, '--out', out, '--shard', '2/2'], ctx), 'QCB_USAGE');
  await rejects(
    applyCmd.run(['--model', model, '--store', store, '--out', out, '--threshold', '1.5'], ctx),
    'QCB_USAGE',
  );
  assert.equal(existsSync(out), false, 'no output folder was created');
  await rejects(
    trainCmd.run(['--encoder', VGG, '--task', 'knn', '--annotations', ann, '--store', store], ctx),
    'QCB_USAGE',
  );
  await rejects(
    trainCmd.run(
      ['--encoder', VGG, '--task', 'knnn', '--annotations', ann, '--store', store, '--out', join(dir, 'x.onnx')],
      ctx,
    ),
    'QCB_UNKNOWN_NAME',
  );
  await rejects(
    trainCmd.run(
      [
        '--encoder',
        VGG,
        '--task',
        'knn',
        '--annotations',
        ann,
        '--store',
        join(dir, 'store16'),
        '--out',
        join(dir, 'x.onnx'),
      ],
      ctx,
    ),
    'QCB_ANNOTATIONS',
  );
  assert.equal(existsSync(join(dir, 'x.onnx')), false);
});
