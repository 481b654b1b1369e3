import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

/** A CSV table and its JSON-lines twin hold the same rows and columns, numbers as JSON numbers. */
export function assertSameRows(csvFile: string, jsonlFile: string, numeric: string[]): void {
  const [head, ...rows] = readFileSync(csvFile, 'utf8').trim().split('\n');
  const cols = head.split(',');
  const json = readFileSync(jsonlFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(json.length, rows.length, `${jsonlFile}: as many rows as ${csvFile}`);
  rows.forEach((row, i) => {
    assert.deepEqual(Object.keys(json[i]), cols, `${jsonlFile} row ${i}: columns`);
    row.split(',').forEach((cell, j) => {
      const v = json[i][cols[j]];
      if (numeric.includes(cols[j])) assert.equal(typeof v, 'number', `${jsonlFile} row ${i} ${cols[j]}`);
      assert.equal(v === null ? '' : String(v), cell, `${jsonlFile} row ${i} ${cols[j]}`);
    });
  });
}
