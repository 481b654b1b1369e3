import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadProtocol } from '../../src/runner/catalog.js';
import { expandCells } from '../../src/runner/cells.js';

const PROTOCOLS = new URL('../../protocols/', import.meta.url).pathname;

test('runtime.precision: fp32 by default with unchanged cell ids; int8 re-keys and records the frozen-feature cells only', () => {
  const d = mkdtempSync(join(tmpdir(), 'qcb-precision-'));
  const proto = (precision?: string) => {
    const f = join(d, `p-${precision ?? 'default'}.yaml`);
    writeFileSync(
      f,
      `version: 1\nextends: ${join(PROTOCOLS, 'full.yaml')}\nname: x\n${precision ? `runtime: { precision: ${precision} }\n` : ''}`,
    );
    return loadProtocol(f, { env: {} });
  };
  const base = proto();
  assert.equal(base.runtime.precision, 'fp32');
  const full = expandCells(loadProtocol(join(PROTOCOLS, 'full.yaml'), { env: {} }));
  const fp32 = expandCells(proto('fp32'));
  assert.deepEqual(
    fp32.map((c) => c.id),
    full.map((c) => c.id),
    'writing the default changes no id',
  );
  const int8 = expandCells(proto('int8'));
  assert.equal(int8.length, full.length);
  for (let i = 0; i < full.length; i++) {
    const frozen = full[i].key.task !== 'finetune';
    assert.equal(
      int8[i].id !== full[i].id,
      frozen,
      `${full[i].key.task}: id changes iff the task uses frozen features`,
    );
    assert.equal(int8[i].settings.precision, frozen ? 'int8' : undefined);
    assert.equal(full[i].settings.precision, undefined);
  }
  assert.throws(
    () => proto('int4'),
    (e: Error & { code?: string }) => e.code === 'QCB_PROTOCOL' || /precision/.test(e.message),
  );
});
