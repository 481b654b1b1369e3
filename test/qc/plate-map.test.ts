import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { QcbError } from '../../src/errors.js';
import { inferPlateFormat, parseWell, plateMapSpec, type WellFraction, writePlateMap } from '../../src/qc/plate-map.js';

const w = (plate: string, well: string, fraction: number): WellFraction => ({
  plate,
  well,
  n: 10,
  abnormal: Math.round(10 * fraction),
  fraction,
  mean_score: fraction,
});

test('well names parse and the plate format is inferred from them', () => {
  assert.deepEqual(parseWell('B02'), { row: 1, col: 2 });
  assert.deepEqual(parseWell('p24'), { row: 15, col: 24 });
  assert.deepEqual(parseWell('AF48'), { row: 31, col: 48 });
  assert.equal(inferPlateFormat(['A01', 'H12']).wells, 96);
  assert.equal(inferPlateFormat(['A01', 'I01']).wells, 384);
  assert.equal(inferPlateFormat(['A13']).wells, 384);
  assert.equal(inferPlateFormat(['Q01']).wells, 1536);
  assert.throws(
    () => parseWell('well-7'),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_CSV_VALUE',
  );
});

test('plate map: one panel per plate, full grid, fixed 0…1 colour scale; renders SVG and PNG', async () => {
  const wells = [w('P1', 'A01', 0.1), w('P1', 'B03', 0.8), w('P2', 'J20', 0.5)];
  const spec = plateMapSpec(wells) as {
    data: { values: { plate: string; fraction: number | null }[] };
    facet: { field: string };
  };
  assert.equal(spec.facet.field, 'plate');
  assert.equal(spec.data.values.length, 2 * 384);
  assert.equal(spec.data.values.filter((v) => v.fraction !== null).length, 3);
  const dir = mkdtempSync(join(tmpdir(), 'qcb-pm-'));
  const files = await writePlateMap(dir, wells);
  assert.equal(files.length, 3);
  const svg = readFileSync(join(dir, 'plate-map.svg'), 'utf8');
  assert.ok(svg.includes('<svg') && svg.includes('P2'));
  assert.equal(readFileSync(join(dir, 'plate-map.png')).subarray(1, 4).toString(), 'PNG');
});
