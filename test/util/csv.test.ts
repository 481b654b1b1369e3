import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCsvRecords } from '../../src/data/datasets/csv-parse.js';
import { csvCell, csvLine } from '../../src/util/csv.js';

test('csvCell leaves plain fields and numbers as they are', () => {
  assert.equal(csvCell('abc'), 'abc');
  assert.equal(csvCell(''), '');
  assert.equal(csvCell(0.25), '0.25');
  assert.equal(csvCell(-3), '-3');
  assert.equal(csvCell('a b'), 'a b');
});

test('csvCell quotes fields holding a comma, a quote, a line feed or a carriage return (RFC 4180)', () => {
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('say "hi"'), '"say ""hi"""');
  assert.equal(csvCell('"'), '""""');
  assert.equal(csvCell('a\nb'), '"a\nb"');
  assert.equal(csvCell('a\rb'), '"a\rb"');
  assert.equal(csvCell('a\r\nb'), '"a\r\nb"');
});

test('csvCell quotes leading or trailing whitespace, which the reader would trim otherwise', () => {
  assert.equal(csvCell(' a'), '" a"');
  assert.equal(csvCell('a\t'), '"a\t"');
});

test('csvLine round-trips through the reader, including carriage returns', () => {
  const cells = ['id', 'a,b', 'q"q', 'line\nfeed', 'cr\rhere', ' pad ', '', '7'];
  const recs = parseCsvRecords(`${csvLine(cells)}\n${csvLine([1, 2.5])}\n`);
  assert.equal(recs.length, 2);
  assert.deepEqual(recs[0].cells, cells);
  assert.deepEqual(recs[1].cells, ['1', '2.5']);
});
