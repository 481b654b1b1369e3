import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseCsvRecords } from '../../src/data/datasets/csv-parse.js';

/** A CSV table and its JSON-lines twin hold the same rows and columns, numbers as JSON numbers. */
export function assertSameRows(csvFile: string, jsonlFile: string, numeric: string[]): void {
  const [head, ...rows] = parseCsvRecords(readFileSync(csvFile, 'utf8').trim()).map((r) => r.cells);
  const cols = head;
  const json = readFileSync(jsonlFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(json.length, rows.length, `${jsonlFile}: as many rows as ${csvFile}`);
  rows.forEach((row, i) => {
    assert.deepEqual(Object.keys(json[i]), cols, `${jsonlFile} row ${i}: columns`);
    row.forEach((cell, j) => {
      const v = json[i][cols[j]];
      if (numeric.includes(cols[j])) assert.equal(typeof v, 'number', `${jsonlFile} row ${i} ${cols[j]}`);
      assert.equal(v === null ? '' : String(v), cell, `${jsonlFile} row ${i} ${cols[j]}`);
    });
  });
}
