/**
 * End to end: train a QC model on annotations of a small synthetic screen, apply it to a second screen
 * whose artefact ground truth is known, check per-crop AUC and per-well fractions against the truth, the exported
 * file on its own in a fresh onnxruntime session, sharding and resuming.
 */

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { makeAnnotationsFromGroundTruth, writeAnnotations } from '../../src/data/annotations.js';
import { extractCrops } from '../../src/data/crops.js';
import { readDataset } from '../../src/data/datasets/index.js';
import { readCellProfilerCentres } from '../../src/data/nuclei/cellprofiler.js';
import { openCropStore } from '../../src/data/store/crop-store.js';
import { synthesizeScreen } from '../../src/data/synth/screen.js';
import { rocAuc } from '../../src/metrics/classification.js';
import { applyQcModel } from '../../src/qc/apply.js';
import { trainQcModel } from '../../src/qc/train.js';
import { Logger } from '../../src/util/log.js';
import { assertSameRows } from './_tables.js';

const log = new Logger({ quiet: true });
const dir = mkdtempSync(join(tmpdir(), 'qcb-qc-e2e-'));
const S = 64;

async function screen(name: string, seed: number): Promise<{ store: string; truth: Map<string, string> }> {
  const root = join(dir, name);
  await synthesizeScreen({
    domain: 'u2os',
    out: root,
    plates: 1,
    wells: 8,
    sites: 3,
    width: 400,
    height: 320,
    workers: 1,
    seed,
    cropSize: S,
    abnormalFraction: 0.35,
  });
  const fs = readDataset('bbbc022', { root });
  const { centres } = readCellProfilerCentres(join(root, 'nuclei.csv'), fs.fields);
  const store = join(dir, `${name}-store`);
  await extractCrops({ fieldSet: fs, out: store, workers: 0, log, size: S, centres });
  const truth = new Map<string, string>();
  const lines = readFileSync(join(root, 'ground_truth.csv'), 'utf8').trim().split('\n');
  const head = lines[0].split(',');
  const iId = head.indexOf('crop_id');
  const iLabel = head.indexOf('label');
  for (const l of lines.slice(1)) {
    const c = l.split(',');
    truth.set(c[iId], c[iLabel]);
  }
  return { store, truth };
}

function pearson(a: number[], b: number[]): number {
  const ma = a.reduce((s, v) => s + v, 0) / a.length;
  const mb = b.reduce((s, v) => s + v, 0) / b.length;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - ma) * (b[i] - mb);
    da += (a[i] - ma) ** 2;
    db += (b[i] - mb) ** 2;
  }
  return num / Math.sqrt(da * db);
}

function readScores(
  file: string,
): { crop_id: string; index: number; well: string; score: number; abnormal: boolean }[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

test('qc train → apply on a second synthetic screen: AUC, per-well fractions, standalone ONNX, shards, resume', async (tc) => {
  const a = await screen('train', 1);
  const b = await screen('apply', 2);
  const ann = join(dir, 'ann.csv');
  writeAnnotations(
    ann,
    makeAnnotationsFromGroundTruth(join(dir, 'train', 'ground_truth.csv'), {
      abnormal: 60,
      normal: 60,
      train: 80,
      test: 40,
      seed: 1,
    }),
  );
  const model = join(dir, 'qc.onnx');
  const t = await trainQcModel({
    encoder: 'random-resnet18',
    task: 'knn',
    annotations: ann,
    store: a.store,
    out: model,
    seed: 0,
    threads: 2,
    log,
  });
  assert.equal(t.meta.crop_size, S);
  assert.deepEqual(t.meta.outputs, ['abnormal_score', 'probabilities']);
  assert.equal(t.meta.validation.n_test, 40);
  assert.ok(t.meta.validation.metrics, 'validation metrics recorded');
  assert.ok(t.meta.validation.metrics!.auc > 60, `validation AUC ${t.meta.validation.metrics!.auc}`);
  const sidecar = JSON.parse(readFileSync(join(dir, 'qc.json'), 'utf8'));
  assert.equal(sidecar.task, 'knn');
  assert.deepEqual(sidecar.classes, ['normal', 'abnormal']);
  assert.equal(sidecar.data.annotations_hash.length > 0, true);

  // apply to the second screen
  const out = join(dir, 'qc-out');
  const r = await applyQcModel({ model, store: b.store, out, threads: 2, batch: 32, montage: 4, log });
  const st = await openCropStore(b.store);
  assert.ok(r.complete && r.crops === st.count && r.scored === st.count);
  for (const f of [
    'scores.csv',
    'scores.jsonl',
    'fields.csv',
    'fields.jsonl',
    'wells.csv',
    'wells.jsonl',
    'plate-map.vl.json',
    'plate-map.svg',
    'plate-map.png',
    'montages.csv',
    'summary.json',
  ])
    assert.ok(existsSync(join(out, f)), f);
  const scores = readScores(join(out, 'scores.jsonl'));
  assert.equal(scores.length, st.count);
  assert.equal(readFileSync(join(out, 'scores.csv'), 'utf8').trim().split('\n').length, st.count + 1);
  // per-crop AUC against the generator's truth
  const known = scores.filter((s) => b.truth.has(s.crop_id));
  assert.ok(known.length > 0.8 * scores.length, `${known.length} of ${scores.length} crops have a ground-truth label`);
  const auc = rocAuc(
    known.map((s) => b.truth.get(s.crop_id) === 'abnormal'),
    known.map((s) => s.score),
  );
  assert.ok(auc > 0.75, `per-crop AUC ${auc}`);
  // per-well fractions against the truth
  const wells = readFileSync(join(out, 'wells.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(','));
  assert.equal(wells.length, 8);
  assertSameRows(join(out, 'wells.csv'), join(out, 'wells.jsonl'), ['n', 'abnormal', 'fraction', 'mean_score']);
  assertSameRows(join(out, 'fields.csv'), join(out, 'fields.jsonl'), [
    'site',
    'n',
    'abnormal',
    'fraction',
    'mean_score',
  ]);
  const nFields = readFileSync(join(out, 'fields.csv'), 'utf8').trim().split('\n').length - 1;
  assert.ok(nFields > 8 && nFields <= 8 * 3, `${nFields} fields with crops (8 wells × 3 sites)`);
  const truthFrac = wells.map(([, well]) => {
    const ks = known.filter((s) => s.well === well);
    return ks.filter((s) => b.truth.get(s.crop_id) === 'abnormal').length / ks.length;
  });
  const predFrac = wells.map((w) => Number(w[4]));
  const rho = pearson(predFrac, truthFrac);
  const rhoMean = pearson(
    wells.map((w) => Number(w[5])),
    truthFrac,
  );
  tc.diagnostic(
    `validation AUC ${t.meta.validation.metrics!.auc.toFixed(1)}, apply-screen per-crop AUC ${auc.toFixed(3)}, per-well r ${rho.toFixed(3)} (mean score: ${rhoMean.toFixed(3)})`,
  );
  assert.ok(
    rho > 0.6,
    `per-well correlation ${rho} (pred ${predFrac.map((v) => v.toFixed(2))}, truth ${truthFrac.map((v) => v.toFixed(2))})`,
  );
  const pm = JSON.parse(readFileSync(join(out, 'plate-map.vl.json'), 'utf8'));
  assert.equal(pm.data.values.length, 96, '96-well grid');
  assert.ok(readFileSync(join(out, 'plate-map.png')).subarray(1, 4).toString() === 'PNG');
  const mont = readFileSync(join(out, 'montages.csv'), 'utf8').trim().split('\n');
  assert.equal(mont.length, 1 + 8 * 4);

  // the exported file alone, in a fresh onnxruntime session (no qcbench code): identical scores
  const sess = await ort.InferenceSession.create(readFileSync(model), { intraOpNumThreads: 1 });
  const C = st.channels.length;
  const n = Math.min(st.count, 50);
  const data = await st.read(0, n);
  const res = await sess.run({ crops: new ort.Tensor('uint8', data, [n, C, S, S]) });
  const alone = res.abnormal_score.data as Float32Array;
  const probs = res.probabilities.data as Float32Array;
  for (let i = 0; i < n; i++) {
    assert.equal(alone[i], scores[i].score, `crop ${i}`);
    assert.ok(Math.abs(probs[2 * i] + probs[2 * i + 1] - 1) < 1e-6);
  }
  await sess.release();

  // sharded: two shards in any order give the same scores; the summary appears with the last one
  const out2 = join(dir, 'qc-shards');
  const s1 = await applyQcModel({
    model,
    store: b.store,
    out: out2,
    shard: { index: 1, count: 2 },
    threads: 2,
    montage: 0,
    log,
  });
  assert.ok(s1.shardDone && !s1.complete && !existsSync(join(out2, 'scores.csv')));
  const s0 = await applyQcModel({
    model,
    store: b.store,
    out: out2,
    shard: { index: 0, count: 2 },
    threads: 2,
    montage: 0,
    log,
  });
  assert.ok(s0.complete);
  assert.equal(s0.crops + s1.crops, st.count);
  assert.equal(readFileSync(join(out2, 'scores.csv'), 'utf8'), readFileSync(join(out, 'scores.csv'), 'utf8'));
  for (const f of ['wells.csv', 'wells.jsonl', 'fields.csv', 'fields.jsonl'])
    assert.equal(readFileSync(join(out2, f), 'utf8'), readFileSync(join(out, f), 'utf8'), f);

  // resume: a run killed after its first batch (checkpoint at 32 crops, half-written batch after it)
  const shard = join(out, 'shards', 'shard-0-of-1');
  const prog = JSON.parse(readFileSync(join(shard, 'progress.json'), 'utf8'));
  const csv = readFileSync(join(shard, 'scores.csv'), 'utf8');
  const jl = readFileSync(join(shard, 'scores.jsonl'), 'utf8');
  const csvBytes = Buffer.byteLength(csv.split('\n').slice(0, 33).join('\n') + '\n');
  const jlBytes = Buffer.byteLength(jl.split('\n').slice(0, 32).join('\n') + '\n');
  writeFileSync(join(shard, 'progress.json'), JSON.stringify({ ...prog, done: 32, csvBytes, jsonlBytes: jlBytes }));
  writeFileSync(join(shard, 'scores.csv'), `${csv.slice(0, csvBytes)}garbage,from,a,killed,run`);
  writeFileSync(join(shard, 'scores.jsonl'), `${jl.slice(0, jlBytes)}{"crop_id":"half`);
  rmSync(join(shard, 'done.json'));
  const before = readFileSync(join(out, 'scores.csv'), 'utf8');
  rmSync(join(out, 'scores.csv'));
  const r2 = await applyQcModel({ model, store: b.store, out, threads: 2, batch: 32, montage: 4, log });
  assert.equal(r2.resumedFrom, 32);
  assert.equal(r2.scored, st.count - 32);
  assert.equal(readFileSync(join(out, 'scores.csv'), 'utf8'), before);

  // a finished run is not redone
  const r3 = await applyQcModel({ model, store: b.store, out, threads: 2, montage: 0, batch: 32, log });
  assert.equal(r3.scored, 0);
  assert.ok(r3.complete);
});
