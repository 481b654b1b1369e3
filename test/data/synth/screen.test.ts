import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readDataset } from '../../../src/data/datasets/index.js';
import { readTiffFile } from '../../../src/data/io/tiff.js';
import { planScreen, QUICK_SCREENS, screenGroundTruth, synthesizeScreen } from '../../../src/data/synth/index.js';
import { QcbError } from '../../../src/errors.js';

process.env.QCBENCH_LOG_QUIET = '1';

const small = { plates: 1, wells: 3, sites: 2, width: 320, height: 256, seed: 7 } as const;

function csvRows(path: string): Record<string, string>[] {
  const [head, ...lines] = readFileSync(path, 'utf8').trim().split('\n');
  const cols = head.split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])));
}

test('u2os screen: BBBC022 layout that the BBBC022 reader loads, 12-bit values, ground truth matching nuclei.csv', async () => {
  const out = mkdtempSync(join(tmpdir(), 'qcb-synth-'));
  try {
    const r = await synthesizeScreen({ domain: 'u2os', out, ...small });
    assert.equal(r.fields, 6);
    assert.equal(r.reused, false);
    assert.ok(r.cells > 6 * 5, `expected cells in every field, got ${r.cells}`);
    assert.deepEqual(r.tables, ['90001_image.csv']);
    // 5 channels × 6 fields + table + nuclei + ground truth
    assert.equal(r.files.length, 33);

    const header = readFileSync(join(out, '90001_image.csv'), 'utf8').split('\n')[0];
    const fixtureHeader = readFileSync(
      new URL('../../../../shared/fixtures/bbbc/bbbc022/20585_AE_excerpt.csv', import.meta.url),
      'utf8',
    ).split(/\r?\n/)[0];
    assert.equal(header, fixtureHeader, 'same columns, same order as the real BBBC022 table');

    const fs = readDataset('bbbc022', { root: out, strict: true });
    assert.equal(fs.fields.length, 6);
    assert.deepEqual(fs.skipped, []);
    assert.equal(fs.fields[0].plate, '90001');
    const tif = readTiffFile(fs.fields[0].channels.Hoechst);
    assert.ok(tif);
    assert.equal(tif.width, 320);
    assert.equal(tif.height, 256);
    assert.equal(tif.bitDepth, 16);
    let max = 0;
    let sum = 0;
    for (const v of tif.data) {
      max = Math.max(max, v);
      sum += v;
    }
    assert.ok(max <= 4095, '12-bit range as in BBBC022');
    const mean = sum / tif.data.length;
    assert.ok(mean > 120 && mean < 600, `mean ${mean} should sit near BBBC022's background (≈175) plus nuclei`);

    const nuclei = csvRows(join(out, 'nuclei.csv'));
    const gt = csvRows(join(out, 'ground_truth.csv'));
    assert.equal(nuclei.length, gt.length);
    assert.equal(gt.length, r.cells + r.empties);
    assert.ok(gt.every((g) => g.label === 'normal' || g.label === 'abnormal'));
    assert.equal(gt.filter((g) => g.label === 'abnormal').length, r.abnormal);
    assert.ok(gt.every((g) => (g.label === 'normal') === (g.artefact_type === 'none')));
    const ids = new Set(gt.map((g) => g.crop_id));
    assert.equal(ids.size, gt.length, 'crop ids are unique');
    for (let i = 0; i < gt.length; i++) {
      const n = nuclei[i];
      assert.equal(
        gt[i].crop_id,
        `${n.Metadata_Plate}_${n.Metadata_Well}_s${n.Metadata_Site}_${n.Location_Center_X}_${n.Location_Center_Y}`,
      );
      const x = Number(n.Location_Center_X);
      const y = Number(n.Location_Center_Y);
      assert.ok(x >= 0 && x < 320 && y >= 0 && y < 256);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('mcf7 screen: BBBC021 layout (12-bit shifted into 16 bits), moa table, the BBBC021 reader loads it', async () => {
  const out = mkdtempSync(join(tmpdir(), 'qcb-synth-'));
  try {
    const r = await synthesizeScreen({ domain: 'mcf7', out, ...small, sites: 1 });
    assert.equal(r.fields, 3);
    const header = readFileSync(join(out, 'BBBC021_v1_image.csv'), 'utf8').split('\n')[0];
    const fixtureHeader = readFileSync(
      new URL('../../../../shared/fixtures/bbbc/bbbc021/BBBC021_v1_image_excerpt.csv', import.meta.url),
      'utf8',
    ).split(/\r?\n/)[0];
    assert.equal(header, fixtureHeader);
    const fs = readDataset('bbbc021', { root: out, strict: true });
    assert.equal(fs.fields.length, 3);
    assert.equal(fs.fields[0].metadata.moa, 'DMSO', 'moa joined from the generated BBBC021_v1_moa.csv');
    assert.match(fs.fields[0].channels.DAPI, /Week1_90001[\\/]B02_s1_w1[0-9A-F-]{36}\.tif$/);
    const tif = readTiffFile(fs.fields[0].channels.Tubulin);
    assert.ok(tif);
    let nonMultiple = 0;
    let above12 = 0;
    for (const v of tif.data) {
      if (v % 16 !== 0) nonMultiple++;
      if (v > 4095) above12++;
    }
    assert.equal(nonMultiple, 0, 'BBBC021 data are 12-bit values shifted left by 4');
    assert.ok(above12 > 0, 'bright structures use the 16-bit range');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('deterministic by seed whatever the worker threads, skip-if-complete, other options refused', async () => {
  const a = mkdtempSync(join(tmpdir(), 'qcb-synth-'));
  const b = mkdtempSync(join(tmpdir(), 'qcb-synth-'));
  try {
    const opts = { domain: 'u2os', plates: 1, wells: 2, sites: 1, width: 200, height: 160, seed: 3 } as const;
    const ra = await synthesizeScreen({ ...opts, out: a, workers: 1 });
    const rb = await synthesizeScreen({ ...opts, out: b, workers: 2 });
    assert.deepEqual(ra.files, rb.files, 'same file names (UUIDs come from the seed)');
    for (const f of ra.files) assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs`);
    assert.equal(
      screenGroundTruth(opts),
      readFileSync(join(a, 'ground_truth.csv'), 'utf8'),
      'ground truth without pixels',
    );

    const other = mkdtempSync(join(tmpdir(), 'qcb-synth-'));
    const rc = await synthesizeScreen({ ...opts, seed: 4, out: other });
    assert.ok(!readFileSync(join(a, 'ground_truth.csv')).equals(readFileSync(join(other, 'ground_truth.csv'))));
    rmSync(other, { recursive: true, force: true });
    assert.ok(rc.fields === 2);

    const before = statSync(join(a, 'synth.json')).mtimeMs;
    const again = await synthesizeScreen({ ...opts, out: a });
    assert.equal(again.reused, true);
    assert.equal(again.cells, ra.cells);
    assert.equal(statSync(join(a, 'synth.json')).mtimeMs, before, 'a complete screen is not rewritten');

    await assert.rejects(
      () => synthesizeScreen({ ...opts, seed: 9, out: a }),
      (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE' && e.context.file === join(a, 'synth.json'),
    );
    await assert.rejects(
      () => synthesizeScreen({ ...opts, wells: 97, out: b }),
      (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE' && e.context.key === 'wells',
    );
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('quick screens: every artefact type occurs, per-well abnormal fractions follow the planned targets', () => {
  for (const domain of ['u2os', 'mcf7'] as const) {
    const o = QUICK_SCREENS[domain];
    const rows = screenGroundTruth(o)
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','));
    const types = new Set(rows.filter((r) => r[6] === 'abnormal').map((r) => r[7]));
    const expected =
      domain === 'u2os'
        ? ['blur', 'saturation', 'debris', 'noise', 'empty', 'haze', 'dead']
        : ['blur', 'saturation', 'debris', 'empty', 'haze', 'dead'];
    for (const t of expected) assert.ok(types.has(t), `${domain}: no ${t} crops`);
    const plan = planScreen(o);
    assert.equal(plan.fields.length, o.plates * o.wells * o.sites);
    const frac = (well: string) => {
      const w = rows.filter((r) => r[2] === well);
      return w.filter((r) => r[6] === 'abnormal').length / w.length;
    };
    const sorted = [...plan.wells].sort((a, b) => a.target - b.target);
    const low = sorted.slice(0, 4).reduce((s, w) => s + frac(w.well), 0) / 4;
    const high = sorted.slice(4).reduce((s, w) => s + frac(w.well), 0) / 4;
    assert.ok(high > low + 0.1, `${domain}: wells with high targets ${high.toFixed(2)} vs low ${low.toFixed(2)}`);
    const overall = rows.filter((r) => r[6] === 'abnormal').length / rows.length;
    assert.ok(Math.abs(overall - o.abnormalFraction) < 0.08, `${domain}: overall abnormal fraction ${overall}`);
  }
});
