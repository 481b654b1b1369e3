import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
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
import { qcbench } from './_cli.js';

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
  // Shards each record their plates' windows; the merged store has one window per plate and channel (the default).
  const norm = st.info.normalisation as { kind: string; windows: Record<string, Record<string, unknown>> };
  assert.equal(norm.kind, 'plate');
  assert.deepEqual(Object.keys(norm.windows.P1).sort(), ['actin', 'dna', 'mito']);
  const perField = common.map((a) => (a === out ? join(dir, 'field') : a));
  assert.equal(await crops.run([...perField, '--normalise', 'field'], ctx), 0);
  assert.equal((await openCropStore(join(dir, 'field'))).info.normalisation.kind, 'percentile');
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
  assert.equal(await code(crops.run([...common, '--normalise', 'plates'], ctx)), 'QCB_USAGE');
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

/** Every path under `dir` (relative), sorted: what a command left behind. */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

/** `qcbench data crops` of the `dataset` layout, in-process workers. */
function cropsCli(dataset: string, root: string, out: string, ...more: string[]) {
  return qcbench('data', 'crops', '--dataset', dataset, '--root', root, '--out', out, '--workers', '0', ...more);
}

const B22 = new URL('../../../shared/fixtures/bbbc/bbbc022/', import.meta.url).pathname;

test('data crops: a field table with a field on two rows or an id holding a path ends with QCB_CSV_VALUE, exit 2, nothing written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-cli-'));
  const table = writeBenchFields(join(dir, 'screen'), 3, { width: 120, height: 100, nucleiPerField: 4, seed: 2 });
  const good = readFileSync(table, 'utf8');
  const lines = good.trim().split('\n');
  const crops = (out: string, ...more: string[]) =>
    cropsCli('csv', join(dir, 'screen'), join(dir, out), '--size', '32', ...more);
  const before = listing(dir);

  // csv: the first field again on line 5
  writeFileSync(table, `${good}${lines[1]}\n`);
  let r = crops('dup');
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /error QCB_CSV_VALUE: field P1_B02_s1 is on two rows: line 2 and line 5 of .*fields\.csv/);
  assert.match(r.err, /key: +lines 2 and 5, column field_id/);
  assert.match(r.err, /fix: +remove one of the two rows/);
  assert.deepEqual(listing(dir), before);

  // csv: plate, well, site or field_id that would put a crop id (and a file name) outside its folder
  for (const [col, bad] of [
    [1, '../../x'],
    [2, 'B/02'],
    [3, '..'],
    [0, '../P1_B02_s1'],
  ] as const) {
    const row = lines[2].split(',');
    row[col] = bad;
    writeFileSync(table, [lines[0], lines[1], row.join(','), ''].join('\n'));
    r = crops('bad', '--strict');
    assert.equal(r.code, 2, r.err);
    const column = lines[0].split(',')[col];
    assert.match(
      r.err,
      new RegExp(`error QCB_CSV_VALUE: .*fields\\.csv:3: ${column} '${bad.replace(/[./]/g, '\\$&')}' is not a safe id`),
    );
    assert.match(r.err, /allowed: +letters, digits, '-', '_' and '\.' \(not '\.' or '\.\.' alone\)/);
    assert.deepEqual(listing(dir), before);
  }

  // BBBC022: one plate/well/site on two lines naming different images (a repeat of the same images is read once)
  const b22 = join(dir, 'b22');
  mkdirSync(b22);
  for (const f of readdirSync(B22)) copyFileSync(join(B22, f), join(b22, f));
  const t22 = join(b22, '20585_AE_excerpt.csv');
  const rows22 = readFileSync(t22, 'utf8').trim().split('\n');
  appendFileSync(t22, `${rows22[1]}\n`); // the same images again (overlapping exports): fine
  const before22 = listing(dir);
  r = cropsCli('bbbc022', b22, join(dir, 'ok22'), '--channels', 'Hoechst', '--json');
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).fields, 1);
  appendFileSync(t22, `${rows22[1].replace('IXMtest_A01_s1_w164FBEEF7', 'IXMtest_A01_s1_w1OTHER')}\n`);
  const after22 = listing(dir);
  r = cropsCli('bbbc022', b22, join(dir, 'dup22'), '--channels', 'Hoechst');
  assert.equal(r.code, 2, r.err);
  assert.match(
    r.err,
    /error QCB_CSV_VALUE: field 20585_A01_s1 is on two rows: line 2 and line \d+ of .*20585_AE_excerpt\.csv/,
  );
  assert.match(r.err, /column plate\/well\/site/);
  assert.deepEqual(listing(dir), after22);
  assert.ok(before22.length < after22.length); // only ok22 (the good run) was added
});

test('data crops --out naming a plain file is QCB_STORE, exit 2, before any work; the file is untouched', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-cli-'));
  writeBenchFields(join(dir, 'screen'), 2, { width: 120, height: 100, nucleiPerField: 4, seed: 2 });
  writeFileSync(join(dir, 'notes.txt'), 'keep me\n');
  const before = listing(dir);
  for (const out of ['notes.txt', join('notes.txt', 'store')]) {
    const r = cropsCli('csv', join(dir, 'screen'), join(dir, out));
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /error QCB_STORE: .*notes\.txt is a file, so it cannot (be|hold) a crop store/);
    assert.match(r.err, /key: +--out/);
    assert.doesNotMatch(r.err, /crops: done|QCB_INTERNAL/);
    assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'keep me\n');
    assert.deepEqual(listing(dir), before);
  }
});

test('data crops --strict: a bad field ends with its code, exit 2, no store left and no "done"; an existing store survives', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-cli-'));
  const table = writeBenchFields(join(dir, 'screen'), 3, { width: 120, height: 100, nucleiPerField: 4, seed: 2 });
  const crops = (out: string, ...more: string[]) => cropsCli('csv', join(dir, 'screen'), out, '--size', '32', ...more);
  const complete = join(dir, 'complete');
  assert.equal(crops(complete).code, 0);
  const completeFiles = listing(complete);
  const completeInfo = readFileSync(join(complete, 'qcbench.json'), 'utf8');
  // field 2's mito image becomes garbage
  const mito = readFileSync(table, 'utf8').trim().split('\n')[2].split(',')[6];
  writeFileSync(join(dir, 'screen', mito), 'not an image\n');
  const before = listing(dir);

  for (const out of [join(dir, 'new'), join(dir, 'deep', 'er', 'new')]) {
    const r = crops(out, '--strict');
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /error QCB_FILE_FORMAT: .*/);
    assert.match(r.err, new RegExp(`file: +.*${mito.replace(/[./]/g, '\\$&')}`));
    assert.doesNotMatch(r.err, /crops: done|crops written/);
    assert.equal(r.out, '');
    assert.deepEqual(listing(dir), before);
  }
  // sharded: the part store and the folders this shard made go; an existing --out folder stays as it was
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  writeFileSync(join(shared, 'README'), 'mine\n');
  const r = crops(shared, '--strict', '--shard', '1/2'); // fields 2 and 3, into shared/parts/shard-2-of-2
  assert.equal(r.code, 2, r.err);
  assert.deepEqual(listing(shared), ['README']);
  // an existing complete store is never removed by a failing strict run
  const again = crops(complete, '--strict');
  assert.equal(again.code, 2, again.err);
  assert.match(again.err, /QCB_STORE: crop store already exists/);
  assert.deepEqual(listing(complete), completeFiles);
  assert.equal(readFileSync(join(complete, 'qcbench.json'), 'utf8'), completeInfo);
});

test('data show --annotations: a crop id holding a path is QCB_CSV_VALUE, exit 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-cli-'));
  writeBenchFields(join(dir, 'screen'), 1, { width: 120, height: 100, nucleiPerField: 4, seed: 2 });
  const store = join(dir, 'store');
  const made = cropsCli('csv', join(dir, 'screen'), store, '--size', '32');
  assert.equal(made.code, 0, made.err);
  const ann = join(dir, 'ann.csv');
  writeFileSync(
    ann,
    'crop_id,label,artefact_type,split,source\n../../P1_B02_s1_10_10,abnormal,other,test,manual:test\n',
  );
  const before = listing(dir);
  const r = qcbench('data', 'show', store, '--label', 'abnormal', '--annotations', ann, '--out', join(dir, 'm.png'));
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /error QCB_CSV_VALUE: .*ann\.csv:2: crop_id '\.\.\/\.\.\/P1_B02_s1_10_10' is not a safe id/);
  assert.deepEqual(listing(dir), before);
});
