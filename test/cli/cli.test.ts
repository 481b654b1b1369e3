import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { qcbench, ROOT } from './_cli.js';

test('--help lists the commands and exits 0; no arguments exits 2', () => {
  const r = qcbench('--help');
  assert.equal(r.code, 0);
  assert.match(r.out, /validate/);
  assert.match(r.out, /Exit codes: 0 ok, 1 run failures, 2 bad input/);
  assert.equal(qcbench().code, 2);
});

test('--version prints package.json version', async () => {
  const pkg = (await import('../../package.json', { with: { type: 'json' } })).default;
  const r = qcbench('--version');
  assert.equal(r.code, 0);
  assert.equal(r.out.trim(), pkg.version);
});

test('env --json reports node, engine, providers and threads', () => {
  const r = qcbench('env', '--json');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.node, process.version);
  assert.equal(j.engine.name, 'onnxruntime-node');
  assert.match(j.engine.version, /^\d+\.\d+/);
  assert.ok(j.execution_providers.some((e: { name: string; available: boolean }) => e.name === 'cpu' && e.available));
  assert.ok(j.default_threads >= 1);
  assert.match(j.packages.sharp, /^\d/);
});

test('validate accepts every shipped protocol', () => {
  const files = readdirSync(join(ROOT, 'protocols')).filter((f) => f.endsWith('.yaml'));
  const r = qcbench('validate', ...files.map((f) => join('protocols', f)));
  assert.equal(r.code, 0, r.err);
  for (const f of files) assert.match(r.err, new RegExp(`ok protocols/${f}`));
});

test('validate rejects a broken protocol with exit 2, naming key and fix', () => {
  const d = mkdtempSync(join(tmpdir(), 'qcb-cli-'));
  const file = join(d, 'broken.yaml');
  writeFileSync(
    file,
    `version: 1\nextends: ${join(ROOT, 'protocols', 'quick.yaml')}\nname: broken\nseeds: [0, 0]\ntasks:\n  knn: { kk: 5 }\n`,
  );
  const r = qcbench('validate', file);
  assert.equal(r.code, 2);
  assert.match(r.err, /error QCB_PROTOCOL_KEY: unknown key 'tasks\.knn\.kk'/);
  assert.match(r.err, /fix: +did you mean 'tasks\.knn\.k'\?/);
  assert.match(r.err, /broken\.yaml:6/);
  assert.match(r.err, /seeds\[1\] repeats 0/);
});

test('validate refuses data-set and evaluation names that are not safe ids (QCB_PROTOCOL_VALUE, exit 2)', () => {
  const d = mkdtempSync(join(tmpdir(), 'qcb-cli-'));
  const file = join(d, 'escape.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      `extends: ${join(ROOT, 'protocols', 'quick.yaml')}`,
      'name: escape',
      'data:',
      '  datasets:',
      "    '../../x': { format: synthetic }",
      'evaluations:',
      "  - { name: '../e', tasks: [knn], budgets: [10] }",
      '',
    ].join('\n'),
  );
  const r = qcbench('validate', file);
  assert.equal(r.code, 2, r.err);
  assert.match(
    r.err,
    /error QCB_PROTOCOL_VALUE: data\.datasets\.\.\.\/\.\.\/x: data set name '\.\.\/\.\.\/x' is not letters/,
  );
  assert.match(r.err, /escape\.yaml:6/);
  assert.match(r.err, /error QCB_PROTOCOL_VALUE: evaluations\[0\]\.name is not letters, digits/);
  assert.match(r.err, /escape\.yaml:8/);
  assert.deepEqual(readdirSync(d), ['escape.yaml']);
});

test('unknown command and unknown option are usage errors (exit 2) with a suggestion', () => {
  const a = qcbench('valdate');
  assert.equal(a.code, 2);
  assert.match(a.err, /did you mean 'validate'/);
  const b = qcbench('validate', '--nope', 'protocols/quick.yaml');
  assert.equal(b.code, 2);
  assert.match(b.err, /QCB_USAGE/);
});

test('bench --help lists report; bench report --help names the 10 s target', () => {
  const g = qcbench('bench', '--help');
  assert.equal(g.code, 0, g.err);
  assert.match(g.out, /report/);
  const r = qcbench('bench', 'report', '--help');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /qcbench bench report \[--json\]/);
  assert.match(r.out, /target under 10 s/);
});
