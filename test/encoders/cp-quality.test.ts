/**
 * The `cp-quality` encoder: CellProfiler's image-quality measures per crop and channel, z-scored with the training
 * crops' statistics only, through the real cell pipeline (runCell) with kNN and the linear head; fine-tuning is n/a.
 * And the BBBC006 pair (z-plane 00, far out of focus, against a sharper field): the focus measures rank the
 * out-of-focus field worse, on the whole field and on crops the project's crop pipeline cuts from it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { processField } from '../../src/data/crops.js';
import { readImage } from '../../src/data/io/image.js';
import type { Annotation } from '../../src/data/annotations.js';
import { type CellInput, runCell } from '../../src/downstream/cell.js';
import { DOWNSTREAM_TASKS, resolveTask, runTask } from '../../src/downstream/registry.js';
import { CP_QUALITY, cpQualityFeatures } from '../../src/encoders/cp-quality.js';
import {
  type CropSet,
  extractFeatures,
  fitStandardiser,
  selectCrops,
  standardise,
} from '../../src/encoders/features.js';
import { IMAGE_QUALITY_MEASURES, measureImageQuality } from '../../src/metrics/image-quality.js';
import { CATALOG, resolveEncoder } from '../../src/runner/catalog.js';
import { synthCrops } from '../downstream/synth-crops.js';

const M = IMAGE_QUALITY_MEASURES.length;
const isCode = (code: string) => (e: Error & { code?: string }) => e.code === code;

test('cp-quality is a registered hand-made encoder with no weights; its graph only computes the measures', async () => {
  const e = resolveEncoder('cp-quality');
  assert.equal(e, CP_QUALITY);
  assert.equal(e.kind, 'handcrafted');
  assert.equal(e.weights, undefined);
  assert.match(e.description, /hand-made QC metrics \(CellProfiler MeasureImageQuality\), standardised, kNN \/ linear/);
  assert.equal(CATALOG.encoders['cp-quality'].kind, 'handcrafted');
  const eg = await e.load({ cropSize: 32, seed: 0 });
  assert.equal(eg.standardise, true);
  assert.equal(eg.source.scale, 20);
  // no network to train; its graph only computes the measures (for a QC model), built on first read
  assert.ok(eg.compute, 'features are computed by hand');
  assert.ok(!Object.keys(eg).includes('graph'), 'copies and JSON leave the graph out');
  assert.deepEqual(
    eg.graph.outputs.map((o) => o.name),
    ['features'],
  );
  assert.equal(eg.graph, eg.graph, 'built once');
  assert.doesNotThrow(() => JSON.stringify({ ...eg }));
  await assert.rejects(e.load({ cropSize: 32, seed: 0, settings: { scale: 0 } }), isCode('QCB_USAGE'));
  assert.equal((await e.load({ cropSize: 32, seed: 0, settings: { scale: 8 } })).source.scale, 8);
});

test('features: every measure of every channel of x/255, channel-major; any channel count', async () => {
  const { crops } = synthCrops(6, 32, 2);
  const f = cpQualityFeatures(crops);
  assert.equal(f.rows, crops.n);
  assert.equal(f.cols, 3 * M);
  const plane = 32 * 32;
  for (const i of [0, crops.n - 1])
    for (let c = 0; c < 3; c++) {
      const x = Float32Array.from(crops.data.subarray((i * 3 + c) * plane, (i * 3 + c + 1) * plane), (v) => v / 255);
      const q = measureImageQuality(x, 32, 32);
      IMAGE_QUALITY_MEASURES.forEach((m, j) => {
        assert.equal(f.data[i * 3 * M + c * M + j], Math.fround(q[m]), `crop ${i} channel ${c} ${m}`);
      });
    }
  // through extractFeatures, as the runner and eval call it
  const eg = await CP_QUALITY.load({ cropSize: 32, seed: 0 });
  assert.deepEqual(await extractFeatures(eg, CP_QUALITY.preprocess, crops), f);
  // five channels (a Cell Painting store): no RGB composite needed
  const five: CropSet = { data: new Uint8Array(2 * 5 * plane).fill(7), n: 2, channels: 5, size: 32 };
  assert.equal((await extractFeatures(eg, CP_QUALITY.preprocess, five)).cols, 5 * M);
});

test('z-score by hand: mean 0 and sd 1 on the training rows; a constant column is 0', () => {
  // column 0: 1, 2, 3 → mean 2, population sd √(2/3); column 1 constant 5
  const train = { data: Float32Array.from([1, 5, 2, 5, 3, 5]), rows: 3, cols: 2 };
  const z = fitStandardiser(train);
  assert.deepEqual([...z.mean], [2, 5]);
  assert.ok(Math.abs(z.sd[0] - Math.sqrt(2 / 3)) < 1e-12);
  assert.equal(z.sd[1], 0);
  const t = standardise(train, z);
  const s = Math.sqrt(3 / 2);
  [-s, 0, 0, 0, s, 0].forEach((v, i) => {
    assert.ok(Math.abs(t.data[i] - v) < 1e-6, `${i}: ${t.data[i]}`);
  });
  // another split takes the training statistics: 4 → (4 − 2)/√(2/3)
  const test_ = standardise({ data: Float32Array.from([4, 9]), rows: 1, cols: 2 }, z);
  assert.ok(Math.abs(test_.data[0] - 2 / Math.sqrt(2 / 3)) < 1e-6);
  assert.equal(test_.data[1], 0);
});

/** A cell's input on synthetic crops: the first `nTrain` for training, the rest (and `extra`) for testing. */
async function cellOf(
  task: string,
  d: ReturnType<typeof synthCrops>,
  nTrain: number,
  extra?: CropSet,
): Promise<CellInput> {
  const all = Array.from({ length: d.crops.n }, (_, i) => i);
  const tr = all.slice(0, nTrain);
  const te = all.slice(nTrain);
  let testCrops = selectCrops(d.crops, te);
  const rows: Annotation[] = te.map((i) => ({
    crop_id: `c${i}`,
    label: d.labels[i] as 'normal' | 'abnormal',
    artefact_type: d.labels[i] === 'abnormal' ? d.types[i] : 'none',
    split: 'test',
    source: 'synthetic',
  }));
  if (extra) {
    testCrops = {
      ...testCrops,
      data: Uint8Array.from([...testCrops.data, ...extra.data]),
      n: testCrops.n + extra.n,
    };
    for (let k = 0; k < extra.n; k++)
      rows.push({
        crop_id: `x${k}`,
        label: 'abnormal',
        artefact_type: 'saturation',
        split: 'test',
        source: 'synthetic',
      });
  }
  const eg = await CP_QUALITY.load({ cropSize: d.crops.size, seed: 0 });
  return {
    task: resolveTask(task),
    eg,
    preprocess: CP_QUALITY.preprocess,
    train: { crops: selectCrops(d.crops, tr), labels: tr.map((i) => d.labels[i]), ids: tr.map((i) => `c${i}`) },
    test: { crops: testCrops, rows },
    seed: 0,
    settings: task === 'linear' ? { epochs: 30, milestones: [20] } : undefined,
    bootstrap: 20,
  };
}

test('kNN and the linear head run on cp-quality through runCell; only the training crops set the z-score', async () => {
  const d = synthCrops(72, 32, 5);
  for (const task of ['knn', 'linear']) {
    const run = await runCell(await cellOf(task, d, 48));
    assert.equal(run.predictions.length, d.crops.n - 48);
    assert.ok(run.metrics.auc > 60, `${task}: AUC ${run.metrics.auc}`);
    // Extra test crops (saturated, far outside the training distribution) would move statistics estimated on the test
    // set; estimated on the training crops only, the other test crops' predictions do not change at all.
    const sat: CropSet = { data: new Uint8Array(4 * 3 * 32 * 32).fill(255), n: 4, channels: 3, size: 32 };
    const withExtra = await runCell(await cellOf(task, d, 48, sat));
    assert.deepEqual(withExtra.predictions.slice(0, run.predictions.length), run.predictions, task);
    // runTask (train then predict in memory) standardises the same way
    const c = await cellOf(task, d, 48);
    const out = await runTask(c.task, {
      eg: c.eg,
      preprocess: c.preprocess,
      train: c.train,
      test: {
        crops: c.test.crops,
        labels: [...c.test.rows.map((r) => r.label)],
        ids: c.test.rows.map((r) => r.crop_id),
      },
      seed: 0,
      settings: c.settings,
    });
    assert.deepEqual(
      out.score,
      run.predictions.map((p) => p.score),
      task,
    );
  }
});

test('fine-tuning cp-quality is n/a: a coded QCB_NOT_APPLICABLE before anything is trained', async () => {
  const d = synthCrops(24, 32, 6);
  await assert.rejects(runCell(await cellOf('finetune', d, 16)), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'QCB_NOT_APPLICABLE');
    assert.match(e.message, /^n\/a: the finetune task does not apply to cp-quality/);
    return true;
  });
  const c = await cellOf('finetune', d, 16);
  await assert.rejects(
    runTask(DOWNSTREAM_TASKS.finetune, {
      eg: c.eg,
      preprocess: c.preprocess,
      train: c.train,
      test: { crops: c.test.crops, labels: c.test.rows.map((r) => r.label), ids: c.test.rows.map((r) => r.crop_id) },
      seed: 0,
    }),
    isCode('QCB_NOT_APPLICABLE'),
  );
});

// --- BBBC006: z-plane 00 (far out of focus) against a sharper field of the same kind of U2OS nuclei -------------

const BBBC006 = fileURLToPath(new URL('../../../shared/fixtures/bbbc/bbbc006/', import.meta.url));
const FIELDS = {
  blurred: `${BBBC006}00_mcf-z-stacks-03212011_k06_s2_w12667264a-6432-4f7e-bf58-625a1319a1c9.tif`,
  sharp: `${BBBC006}BBBC006_z_aligned__a01__s1__w1_10.png`,
};

test('BBBC006 whole fields: FocusScore, LocalFocusScore and the power-spectrum slope rank z-plane 00 worse', async () => {
  const q: Record<string, ReturnType<typeof measureImageQuality>> = {};
  for (const [k, f] of Object.entries(FIELDS)) {
    const img = await readImage(f);
    assert.equal(img.bitDepth, 16);
    // intensities as CellProfiler loads a 16-bit image: x / 65535
    const x = Float32Array.from(img.data, (v) => v / 65535);
    q[k] = measureImageQuality(x, img.height, img.width);
  }
  assert.ok(q.blurred.FocusScore < q.sharp.FocusScore, `FocusScore ${q.blurred.FocusScore} vs ${q.sharp.FocusScore}`);
  assert.ok(q.blurred.LocalFocusScore < q.sharp.LocalFocusScore / 10, 'LocalFocusScore');
  // blur removes the higher frequencies: a steeper (more negative) log-log power spectrum
  assert.ok(q.blurred.PowerLogLogSlope < q.sharp.PowerLogLogSlope - 0.5, 'PowerLogLogSlope');
  // and makes neighbours at 20 px alike
  assert.ok(q.blurred.Correlation > q.sharp.Correlation, 'Correlation');
});

/** P(a random crop of `hi` scores above a random crop of `lo`): the rank AUC of the two crop sets on one measure. */
function rankAuc(hi: number[], lo: number[]): number {
  let wins = 0;
  for (const a of hi) for (const b of lo) wins += a > b ? 1 : a === b ? 0.5 : 0;
  return wins / (hi.length * lo.length);
}

test('BBBC006 crops (nuclei, 64 px, one intensity window for both fields): the focus measures rank z-plane 00 worse', async () => {
  const measure = async (file: string, norm: 'window' | 'percentile') => {
    const fc = await processField(
      { field_id: 'f', plate: 'p', well: 'A01', site: 1, channels: { DNA: file }, metadata: {} },
      {
        channels: ['DNA'],
        dnaChannel: 'DNA',
        size: 64,
        border: 'skip',
        // one window for both fields (their 16-bit maxima are 1135 and 3252), or each field stretched on its own
        normalisation:
          norm === 'window'
            ? { kind: 'fixed', ranges: { DNA: { min: 0, max: 3300 } } }
            : { kind: 'percentile', lo: 0.1, hi: 99.9 },
        segment: {},
      },
    );
    const n = fc.metas.length;
    assert.ok(n >= 5, `${n} crops`);
    const f = cpQualityFeatures({ data: fc.crops, n, channels: 1, size: 64 });
    const col = (m: (typeof IMAGE_QUALITY_MEASURES)[number]) =>
      Array.from({ length: n }, (_, i) => f.data[i * M + IMAGE_QUALITY_MEASURES.indexOf(m)]);
    return { FocusScore: col('FocusScore'), LocalFocusScore: col('LocalFocusScore') };
  };
  for (const norm of ['window', 'percentile'] as const) {
    const blurred = await measure(FIELDS.blurred, norm);
    const sharp = await measure(FIELDS.sharp, norm);
    for (const m of ['FocusScore', 'LocalFocusScore'] as const) {
      const auc = rankAuc(sharp[m], blurred[m]);
      assert.ok(auc > 0.9, `${norm} ${m}: a sharp crop outranks an out-of-focus one with probability ${auc}`);
    }
  }
});
