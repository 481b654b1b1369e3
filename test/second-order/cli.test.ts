import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { command } from '../../src/cli/second-order.js';
import { QcbError } from '../../src/errors.js';
import { Logger } from '../../src/util/log.js';

const ctx = { log: new Logger({ level: 'error' }) };

test('qcbench second-order rings --seeds 2 --out DIR: results per network and decision maps', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-so-'));
  const code = await command.run(['rings', '--seeds', '2', '--iterations', '300', '--out', dir], ctx);
  assert.equal(code, 0);
  const res = JSON.parse(readFileSync(join(dir, 'rings-results.json'), 'utf8'));
  assert.equal(res.experiment, 'rings');
  assert.equal(res.backend, 'engine');
  assert.equal(res.points, 240);
  assert.deepEqual(
    res.networks.map((n: { id: string }) => n.id),
    ['second-order-2-3-2-1', 'first-order-2-20-10-1'],
  );
  for (const n of res.networks) {
    assert.equal(n.perSeed.length, 2);
    assert.ok(n.accuracy.min >= 0 && n.accuracy.max <= 1);
    for (const s of n.perSeed) assert.ok(s.iterations <= 300);
    assert.ok(existsSync(join(dir, `rings-${n.id}.vl.json`)));
    assert.ok(readFileSync(join(dir, `rings-${n.id}.svg`), 'utf8').startsWith('<svg'));
  }
});

test('qcbench second-order: bad arguments are usage errors naming the fix', async () => {
  await assert.rejects(
    command.run(['ringz'], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_UNKNOWN_NAME' && /rings/.test(e.context.fix ?? ''),
  );
  await assert.rejects(command.run([], ctx), (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE');
  await assert.rejects(
    command.run(['spirals', '--seeds', '0'], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE' && e.context.key === '--seeds',
  );
  await assert.rejects(
    command.run(['rings', '--backend', 'gpu'], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_UNKNOWN_NAME',
  );
});
