import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QcbError } from '../../src/errors.js';
import { closest, didYouMean, editDistance, lookup } from '../../src/util/suggest.js';

test('edit distance', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('SwAV', 'swav'), 0);
});

test('closest names, separators ignored', () => {
  assert.deepEqual(closest('barlowtwins', ['barlow_twins', 'vicreg', 'simclr']), ['barlow_twins']);
  assert.deepEqual(closest('simclrr', ['barlow_twins', 'vicreg', 'simclr']), ['simclr']);
  assert.deepEqual(closest('zzz', ['barlow_twins', 'vicreg']), []);
  assert.match(didYouMean('vicrg', ['vicreg', 'swav']), /did you mean 'vicreg'\? available: swav, vicreg/);
});

test('registry lookup throws QCB_UNKNOWN_NAME with suggestions', () => {
  const REG = { simclr: 1, swav: 2 } satisfies Record<string, number>;
  assert.equal(lookup(REG, 'swav', 'SSL method'), 2);
  assert.throws(
    () => lookup(REG, 'swavv', 'SSL method', { key: 'encoders[0]' }),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_UNKNOWN_NAME' &&
      /did you mean 'swav'/.test(e.format()) &&
      e.exitCode === 2,
  );
});
