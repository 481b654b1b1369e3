import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readAnnotations } from '../../src/data/annotations.js';
import { groupOf } from '../../src/data/annotations-split.js';
import { qcbench, ROOT } from './_cli.js';

const dir = mkdtempSync(join(tmpdir(), 'qcb-ann-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const U2OS = join(ROOT, 'annotations', 'synthetic-u2os.csv');

test('annotations split: the paper set split by field, 65 + 65 test, no field on both sides (exit 0)', () => {
  const out = join(dir, 'split.csv');
  const r = qcbench('annotations', 'split', U2OS, '--out', out, '--seed', '3');
  assert.equal(r.code, 0, r.err);
  const rows = readAnnotations(out);
  assert.equal(rows.length, 480);
  const test = rows.filter((a) => a.split === 'test');
  assert.equal(test.filter((a) => a.label === 'abnormal').length, 65);
  assert.equal(test.filter((a) => a.label === 'normal').length, 65);
  const testFields = new Set(test.map((a) => groupOf(a.crop_id, 'field')));
  assert.ok(rows.filter((a) => a.split === 'train').every((a) => !testFields.has(groupOf(a.crop_id, 'field'))));
  const s = qcbench('annotations', 'stats', out, '--json');
  assert.equal(s.code, 0, s.err);
  const st = JSON.parse(s.out);
  assert.equal(st.leakage.field.groups, 0);
  assert.deepEqual(st.bySplit.test, { abnormal: 65, normal: 65 });
});

test('annotations stats on the shipped file warns of field leakage (exit 0)', () => {
  const r = qcbench('annotations', 'stats', U2OS);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /480 crops \(240 abnormal, 240 normal\)/);
  assert.match(r.out, /train\s+175\s+175\s+350/);
  assert.match(r.out, /warning: leakage: \d+ field\(s\) with crops on both sides/);
});

test('an unbalanceable split exits 2 with the counts and writes nothing', () => {
  const out = join(dir, 'plate.csv');
  const r = qcbench('annotations', 'split', U2OS, '--out', out, '--group', 'plate', '--json');
  assert.equal(r.code, 2);
  assert.match(r.err, /QCB_ANNOTATIONS/);
  const e = JSON.parse(r.out);
  assert.equal(e.code, 'QCB_ANNOTATIONS');
  assert.equal(e.value.plates, 1);
  assert.equal(e.value.abnormal, 240);
  assert.ok(e.fix);
  assert.equal(existsSync(out), false);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith('plate')),
    [],
  );
});

test('bad arguments and a bad file exit 2', () => {
  const out = join(dir, 'x.csv');
  assert.equal(qcbench('annotations', 'split', U2OS).code, 2); // no --out
  assert.equal(qcbench('annotations', 'split', U2OS, '--out', out, '--group', 'site').code, 2);
  assert.equal(qcbench('annotations', 'split', U2OS, '--out', out, '--test', 'x').code, 2);
  assert.equal(qcbench('annotations', 'split', join(dir, 'missing.csv'), '--out', out).code, 2);
  const bad = join(dir, 'bad.csv');
  writeFileSync(bad, 'crop_id,label,artefact_type,split,source\nP_A01_s1_1_1,maybe,none,train,m\n');
  const r = qcbench('annotations', 'stats', bad);
  assert.equal(r.code, 2);
  assert.match(r.err, /QCB_ANNOTATIONS[\s\S]*line 2, column label/);
  assert.equal(existsSync(out), false);
});
