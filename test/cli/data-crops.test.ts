import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { writeBenchFields } from '../../src/cli/bench-data.js';
import { command as crops } from '../../src/cli/data-crops.js';
import { command as show } from '../../src/cli/data-show.js';
import { openCropStore } from '../../src/data/store/crop-store.js';
import { QcbError } from '../../src/errors.js';
import { Logger } from '../../src/util/log.js';

process.env.QCBENCH_LOG_QUIET = '1';
const ctx = { log: new Logger({ quiet: true }) };

async function code(p: Promise<number>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof QcbError, String(e));
    return e.code;
  }
  return 'ok';
}

test('data crops (csv layout, sharded) → store; data show → montage PNG + tile table; bad arguments exit 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-cli-'));
  writeBenchFields(join(dir, 'screen'), 4, { width: 260, height: 200, nucleiPerField: 20, seed: 9 });
  const out = join(dir, 'store');
  const common = [
    '--dataset',
    'csv',
    '--root',
    join(dir, 'screen'),
    '--out',
    out,
    '--size',
    '48',
    '--workers',
    '0',
    '--json',
  ];
  assert.equal(await crops.run([...common, '--shard', '0/2'], ctx), 0);
  assert.ok(!existsSync(join(out, 'qcbench.json')));
  assert.equal(await crops.run([...common, '--shard', '1/2'], ctx), 0); // the last shard merges
  assert.ok(existsSync(join(out, 'qcbench.json')));
  assert.ok(!existsSync(join(out, 'parts')));
  const st = await openCropStore(out);
  assert.ok(st.count > 10);
  assert.deepEqual(st.channels, ['dna', 'actin', 'mito']);
  const png = join(dir, 'm.png');
  assert.equal(await show.run([out, '--n', '9', '--out', png], ctx), 0);
  const meta = await sharp(png).metadata();
  assert.equal(meta.width, 3 * 48 + 4 * 2);
  assert.equal(readFileSync(join(dir, 'm.csv'), 'utf8').trim().split('\n').length, 10);
  // --label picks the annotated crops (one id off by a pixel still matches its crop).
  const ids = [st.meta[1], st.meta[5], st.meta[9]].map(
    (m, k) => `${m.plate}_${m.well}_s${m.site}_${m.x + (k === 2 ? 1 : 0)}_${m.y}`,
  );
  const ann = join(dir, 'ann.csv');
  const rows = ids.map((id) => `${id},abnormal,other,test,manual:test`);
  rows.push(`${st.meta[0].crop_id},normal,none,train,manual:test`);
  writeFileSync(ann, `crop_id,label,artefact_type,split,source\n${rows.join('\n')}\n`);
  assert.equal(
    await show.run([out, '--label', 'abnormal', '--annotations', ann, '--out', join(dir, 'ab.png')], ctx),
    0,
  );
  const tiles = readFileSync(join(dir, 'ab.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => Number(l.split(',')[2]));
  assert.deepEqual(tiles, [1, 5, 9]);
  assert.equal(
    await code(crops.run(['--dataset', 'bbbc02', '--root', dir, '--out', join(dir, 'x')], ctx)),
    'QCB_UNKNOWN_NAME',
  );
  assert.equal(await code(crops.run([...common, '--border', 'wrap'], ctx)), 'QCB_USAGE');
  assert.equal(await code(crops.run([...common, '--normalise', 'fixed:dna=0:100'], ctx)), 'QCB_USAGE'); // no range for actin/mito
  assert.equal(await code(show.run([join(dir, 'nothing')], ctx)), 'QCB_STORE');
  assert.equal(await code(show.run([out, '--label', 'abnormal'], ctx)), 'QCB_USAGE'); // --label needs --annotations
});

test('bench data: runs end to end on generated 696×520 fields and reports every data target', async () => {
  const { benchData, formatDataBench } = await import('../../src/cli/bench-data.js');
  const r = await benchData({
    fields: 3,
    workers: 0,
    // small sizes: the figures' structure, not their values
    loader: { crops: 64, batchSize: 32, batches: 2 },
    trainImagesPerSecond: 50,
    synth: { screens: [{ domain: 'u2os', plates: 1, wells: 1, sites: 2, width: 160, height: 128 }], workers: 1 },
  });
  assert.equal(r.fields, 3);
  assert.ok(r.crops > 30, `${r.crops} crops`); // ~90 nuclei per field, most fully inside
  for (const v of [
    r.extractionFieldsPerSecond,
    r.cpuSecondsPerField,
    r.readCropsPerSecondSequential,
    r.readCropsPerSecondRandom,
  ]) {
    assert.ok(Number.isFinite(v) && v > 0);
  }
  assert.equal(r.target.fieldsPerSecond, 20);
  assert.equal(r.target.met, r.extractionFieldsPerSecond >= 20);

  // peak RSS over a screen and one twice its size
  const m = r.memory!;
  assert.deepEqual(m.fields, [3, 6]);
  for (const v of [...m.peakRssMB, m.processPeakRssMB]) assert.ok(Number.isFinite(v) && v > 0);
  assert.equal(m.growthMB, m.peakRssMB[1] - m.peakRssMB[0]);
  assert.ok(Math.abs(m.extraCropsMB - (r.crops * 3 * 128 * 128) / 2 ** 20) < 1e-9);
  assert.equal(m.bounded, m.growthMB <= m.toleranceMB);

  // augmentation loader: 128×128×3 crops, two views, against the given training rate
  const l = r.loader!;
  assert.deepEqual([l.options.size, l.options.channels, l.options.views, l.options.batchSize], [128, 3, 2, 32]);
  assert.ok(Number.isFinite(l.cropsPerSecond) && l.cropsPerSecond > 0);
  assert.ok(Math.abs(l.viewsPerSecond - 2 * l.cropsPerSecond) < 1e-6 * l.viewsPerSecond);
  assert.equal(l.trainImagesPerSecond, 50);
  assert.equal(l.trainRateSource, 'given');
  assert.ok(Math.abs(l.ratioToTraining - l.viewsPerSecond / 50) < 1e-9);
  assert.deepEqual(l.target, {
    cropsPerSecond: 2000,
    met: l.cropsPerSecond >= 2000,
    ratio: 10,
    ratioMet: l.ratioToTraining >= 10,
  });

  // synthetic generation: a small screen, the quick protocol's time scaled from it by pixel count
  const y = r.synth!;
  assert.equal(y.quickProtocol, false);
  assert.equal(y.fields, 2);
  assert.deepEqual(
    y.screens.map((s) => [s.domain, s.fields, s.channels, s.width, s.height]),
    [['u2os', 2, 5, 160, 128]],
  );
  assert.ok(y.seconds > 0 && y.fieldsPerSecond > 0 && y.megapixelsPerSecond > 0);
  // quick screens: u2os 32 × 5 × 696×520 + mcf7 16 × 3 × 1280×1024 channel-pixels, vs 2 × 5 × 160×128 here
  const scale = (32 * 5 * 696 * 520 + 16 * 3 * 1280 * 1024) / (2 * 5 * 160 * 128);
  assert.ok(Math.abs(y.quickSeconds - y.seconds * scale) < 1e-6 * y.quickSeconds);
  assert.deepEqual(y.target, { seconds: 60, met: y.quickSeconds < 60 });

  // the printed table names every figure and its target; --json is the same object
  const text = formatDataBench(r);
  for (const s of [
    'crop extraction:',
    'peak RSS:',
    'store reads:',
    'augmentation loader:',
    'target ≥ 2000',
    '× the given training rate of 50 img/s',
    'synthetic generation:',
    'target < 60 s',
  ])
    assert.ok(text.includes(s), `${s} in\n${text}`);
  assert.deepEqual(JSON.parse(JSON.stringify(r)).synth.target, y.target);
});

test('bench data: the parts can be left out, and bad options are refused', async () => {
  const { benchData, command } = await import('../../src/cli/bench-data.js');
  const r = await benchData({ fields: 1, workers: 0, memory: false, loader: false, synth: false });
  assert.equal(r.memory, undefined);
  assert.equal(r.loader, undefined);
  assert.equal(r.synth, undefined);
  assert.equal(await code(command.run(['--train-rate', '0'], ctx)), 'QCB_USAGE');
  assert.equal(await code(command.run(['--train-rate', 'fast'], ctx)), 'QCB_USAGE');
  assert.equal(await code(command.run(['--fields', '0'], ctx)), 'QCB_USAGE');
});
