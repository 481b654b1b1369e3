import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXIT, QcbError } from '../../src/errors.js';
import { parseShard } from '../../src/util/shard.js';

test('parseShard reads 0-based i/n', () => {
  assert.deepEqual(parseShard('0/4', '--shard'), { index: 0, count: 4 });
  assert.deepEqual(parseShard('3/4', '--shard'), { index: 3, count: 4 });
  assert.deepEqual(parseShard(' 0/1 ', '--shard'), { index: 0, count: 1 });
  assert.deepEqual(parseShard('15/16', '--shard'), { index: 15, count: 16 });
});

test('parseShard rejects anything but i/n with 0 ≤ i < n: QCB_USAGE, exit 2, naming the key and the fix', () => {
  for (const bad of ['4/4', '5/4', '0/0', 'a/b', '1', '-1/4', '1/4/2', '1.5/4', '', '/4']) {
    assert.throws(
      () => parseShard(bad, '--part'),
      (e: unknown) => {
        assert.ok(e instanceof QcbError, `${bad}: ${e}`);
        assert.equal(e.code, 'QCB_USAGE');
        assert.equal(e.exitCode, EXIT.badInput);
        assert.equal(e.context.key, '--part');
        assert.equal(e.context.value, bad);
        assert.match(e.message, /--part must be i\/n/);
        assert.match(String(e.context.fix), /--part 0\/4/);
        return true;
      },
    );
  }
});
