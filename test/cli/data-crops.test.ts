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

test('bench data: runs end to end on generated 696×520 fields and reports throughput figures', async () => {
  const { benchData } = await import('../../src/cli/bench-data.js');
  const r = await benchData({ fields: 3, workers: 0 });
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
});
