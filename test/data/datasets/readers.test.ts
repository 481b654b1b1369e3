import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readBbbc021 } from '../../../src/data/datasets/bbbc021.js';
import { readBbbc022 } from '../../../src/data/datasets/bbbc022.js';
import { readCsvDataset } from '../../../src/data/datasets/csv.js';
import { parseCsv } from '../../../src/data/datasets/csv-parse.js';
import { readDataset } from '../../../src/data/datasets/index.js';
import { writeTiff16 } from '../../../src/data/io/tiff.js';
import { QcbError } from '../../../src/errors.js';

const FIX = fileURLToPath(new URL('../../../../shared/fixtures/bbbc/', import.meta.url));
const B22 = join(FIX, 'bbbc022');
const B21 = join(FIX, 'bbbc021');
process.env.QCBENCH_LOG_QUIET = '1';

function throwsCode(fn: () => unknown, code: string): QcbError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof QcbError, String(e));
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

test('CSV parser: quotes, escaped quotes, embedded comma/newline, CRLF, BOM, blank lines, malformed rows', () => {
  const text = '\ufeffa,b,c\r\n1,"x, y",3\r\n\r\n"2","say ""hi""","multi\r\nline"\r\n4,5\r\n6,7,8,\r\n"9,10,11\n';
  const t = parseCsv(text, 't.csv');
  assert.deepEqual(t.header, ['a', 'b', 'c']);
  assert.deepEqual(
    t.rows.map((r) => r.values),
    [
      { a: '1', b: 'x, y', c: '3' },
      { a: '2', b: 'say "hi"', c: 'multi\r\nline' },
      { a: '6', b: '7', c: '8' },
    ],
  );
  assert.deepEqual(
    t.rows.map((r) => r.line),
    [2, 4, 7],
  );
  assert.deepEqual(
    t.malformed.map((m) => [m.line, m.reason]),
    [
      [6, '2 cells, header has 3'],
      [8, 'unterminated quote'],
    ],
  );
});

test('BBBC022 fixture table: the row whose file exists becomes a field; missing channel files are listed', () => {
  const fs = readBbbc022({ root: B22, channels: ['Hoechst'] });
  assert.deepEqual(fs.channels, ['Hoechst']);
  assert.equal(fs.dnaChannel, 'Hoechst');
  assert.equal(fs.fields.length, 1);
  const f = fs.fields[0];
  assert.equal(f.field_id, '20585_A01_s1');
  assert.deepEqual([f.plate, f.well, f.site], ['20585', 'A01', 1]);
  // The table says 20585/<file>; the fixture folder is flat: resolution falls back to root/<file>.
  assert.equal(f.channels.Hoechst, join(B22, 'IXMtest_A01_s1_w164FBEEF7-F77C-4892-86F5-72D0160D4FB2.tif'));
  assert.equal(f.metadata.compound, 'NIFLUMIC ACID');
  assert.equal(f.metadata.BROAD_ID, 'BRD-K98763141-001-06-8');
  assert.deepEqual(
    fs.skipped.map((s) => [s.field_id, s.code, s.row]),
    [
      ['20585_A01_s2', 'QCB_CHANNEL_MISSING', 3],
      ['20585_A01_s3', 'QCB_CHANNEL_MISSING', 4],
    ],
  );
  assert.match(fs.skipped[0].file, /IXMtest_A01_s2_w1AA6B1894/);
});

test('BBBC022 default composite is Ph_golgi/Mito/Hoechst; strict mode stops on the missing file naming file, line and fix', () => {
  const fs = readBbbc022({ root: B22 });
  assert.deepEqual(fs.channels, ['Ph_golgi', 'Mito', 'Hoechst']);
  assert.equal(fs.fields.length, 0);
  assert.equal(fs.skipped.length, 3);
  const e = throwsCode(() => readBbbc022({ root: B22, strict: true }), 'QCB_CHANNEL_MISSING');
  assert.match(String(e.context.file), /IXMtest_A01_s1_w47457436C/); // the Ph_golgi file of line 2
  assert.match(String(e.context.key), /20585_AE_excerpt\.csv:2 Ph_golgi/);
  assert.ok(e.context.fix?.includes('--root'));
  throwsCode(() => readBbbc022({ root: B22, channels: ['Actin'] }), 'QCB_USAGE');
});

test('BBBC022: malformed table lines are reported and skipped; a table without the columns gives QCB_CSV_COLUMNS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-b22-'));
  copyFileSync(
    join(B22, 'IXMtest_A01_s1_w164FBEEF7-F77C-4892-86F5-72D0160D4FB2.tif'),
    join(dir, 'IXMtest_A01_s1_w164FBEEF7-F77C-4892-86F5-72D0160D4FB2.tif'),
  );
  const text = readFileSync(join(B22, '20585_AE_excerpt.csv'), 'utf8').replace(/\n?$/, '\n');
  writeFileSync(join(dir, 'plate.csv'), `${text}5,broken line with,too few cells\n`);
  const fs = readBbbc022({ root: dir, channels: ['Hoechst'] });
  assert.equal(fs.fields.length, 1);
  const bad = fs.skipped.find((s) => s.code === 'QCB_CSV_VALUE');
  assert.ok(bad);
  assert.equal(bad.row, 5);
  writeFileSync(join(dir, 'other.csv'), 'ImageNumber,Image_FileName_OrigHoechst\n1,a.tif\n');
  const e = throwsCode(
    () => readBbbc022({ root: dir, tables: [join(dir, 'other.csv')], channels: ['Hoechst'] }),
    'QCB_CSV_COLUMNS',
  );
  assert.equal(e.context.key, 'Image_PathName_OrigHoechst');
  assert.deepEqual(e.context.value, ['ImageNumber', 'Image_FileName_OrigHoechst']);
});

test('BBBC021 table + MoA: fields for files present under the plate folder, MoA joined, the rest reported', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-b21-'));
  copyFileSync(join(B21, 'BBBC021_v1_image_excerpt.csv'), join(dir, 'BBBC021_v1_image.csv'));
  copyFileSync(join(B21, 'BBBC021_v1_moa.csv'), join(dir, 'BBBC021_v1_moa.csv'));
  // Unpacked the way the Broad's zip files unpack: <root>/Week4_27481/<file>.
  const t = parseCsv(readFileSync(join(B21, 'BBBC021_v1_image_excerpt.csv'), 'utf8'), 'x');
  const present = t.rows.filter((r) => r.values.Image_Metadata_Well_DAPI === 'B11').slice(0, 2);
  mkdirSync(join(dir, 'Week4_27481'));
  for (const r of present) {
    for (const c of ['DAPI', 'Tubulin', 'Actin'])
      writeTiff16(join(dir, 'Week4_27481', r.values[`Image_FileName_${c}`]), 8, 8, new Uint16Array(64));
  }
  const fs = readDataset('bbbc021', { root: dir });
  assert.deepEqual(fs.channels, ['Actin', 'Tubulin', 'DAPI']);
  assert.equal(fs.dnaChannel, 'DAPI');
  assert.deepEqual(
    fs.fields.map((f) => f.field_id),
    ['Week4_27481_B11_s1', 'Week4_27481_B11_s2'],
  );
  const f = fs.fields[0];
  assert.equal(f.metadata.compound, 'taxol');
  assert.equal(f.metadata.concentration, '0.3');
  assert.equal(f.metadata.moa, 'Microtubule stabilizers');
  assert.equal(f.channels.DAPI, join(dir, 'Week4_27481', present[0].values.Image_FileName_DAPI));
  assert.equal(fs.skipped.length, 238);
  assert.ok(fs.skipped.every((s) => s.code === 'QCB_CHANNEL_MISSING'));
  throwsCode(() => readBbbc021({ root: dir, strict: true }), 'QCB_CHANNEL_MISSING');
  throwsCode(() => readDataset('bbbc02', { root: dir }), 'QCB_UNKNOWN_NAME');
});

test('generic CSV: single channel, metadata columns, DNA channel choice, missing columns', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-csv-'));
  mkdirSync(join(dir, 'img'));
  writeTiff16(join(dir, 'img', 'a.tif'), 8, 8, new Uint16Array(64));
  writeTiff16(join(dir, 'img', 'b.tif'), 8, 8, new Uint16Array(64));
  writeFileSync(
    join(dir, 'fields.csv'),
    'field_id,path_dna,plate,well,site,compound\r\nf1,img/a.tif,P1,B02,3,DMSO\r\nf2,img/b.tif,,,,"drug, 2"\r\nf3,img/none.tif,P1,B03,1,x\r\n',
  );
  const fs = readCsvDataset({ root: dir });
  assert.deepEqual(fs.channels, ['dna']);
  assert.equal(fs.dnaChannel, 'dna');
  assert.deepEqual(
    fs.fields.map((f) => [f.field_id, f.plate, f.well, f.site, f.metadata.compound]),
    [
      ['f1', 'P1', 'B02', 3, 'DMSO'],
      ['f2', 'f2', 'NA', 1, 'drug, 2'],
    ],
  );
  assert.deepEqual(
    fs.skipped.map((s) => [s.field_id, s.code, s.row]),
    [['f3', 'QCB_CHANNEL_MISSING', 4]],
  );
  writeFileSync(join(dir, 'two.csv'), 'field_id,path_actin,path_golgi\nf1,img/a.tif,img/b.tif\n');
  throwsCode(() => readCsvDataset({ root: dir, tables: [join(dir, 'two.csv')] }), 'QCB_USAGE');
  assert.equal(readCsvDataset({ root: dir, tables: [join(dir, 'two.csv')], dnaChannel: 'golgi' }).dnaChannel, 'golgi');
  writeFileSync(join(dir, 'bad.csv'), 'id,file\nf1,img/a.tif\n');
  const e = throwsCode(() => readCsvDataset({ root: dir, tables: [join(dir, 'bad.csv')] }), 'QCB_CSV_COLUMNS');
  assert.match(e.message, /field_id/);
  assert.deepEqual(e.context.value, ['id', 'file']);
});
