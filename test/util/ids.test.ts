import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QcbError } from '../../src/errors.js';
import { checkId, isId } from '../../src/util/ids.js';

test('safe ids: real BBBC identifiers and crop ids pass; paths, separators and dot names do not', () => {
  for (const id of [
    'Week4_27481',
    'B02',
    '20585',
    's1',
    '1',
    '20585_A01_s1_120_84',
    'P1_B02_s1_-3_7',
    'a.b-c_d',
    '...',
  ])
    assert.ok(isId(id), id);
  for (const id of ['', '.', '..', '../x', '../../x', 'a/b', 'a\\b', '/abs', 'a b', 'a,b', 'x\n', 'é'])
    assert.ok(!isId(id), JSON.stringify(id));
  assert.equal(checkId('Week4_27481', { file: 't.csv', key: 'plate', line: 2 }), 'Week4_27481');
  assert.throws(
    () => checkId('../x', { file: 't.csv', key: 'plate', line: 7 }),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_CSV_VALUE' &&
      e.exitCode === 2 &&
      e.message === "t.csv:7: plate '../x' is not a safe id" &&
      e.context.key === 'line 7, column plate' &&
      /correct the value/.test(String(e.context.fix)),
  );
});
