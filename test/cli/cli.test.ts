import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tinyDataYaml } from '../e2e/_tiny-screen.js';
import { qcbench, ROOT } from './_cli.js';

test('--help lists the commands and exits 0', () => {
  const r = qcbench('--help');
  assert.equal(r.code, 0);
  assert.match(r.out, /validate/);
  assert.match(r.out, /Exit codes: 0 ok, 1 run failures, 2 bad input/);
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

test('bare qcbench prints the help on stdout and exits 0; qcbench help CMD is qcbench CMD --help', () => {
  const bare = qcbench();
  assert.equal(bare.code, 0, bare.err);
  assert.match(bare.out, /Usage: qcbench <command>/);
  assert.equal(bare.out, qcbench('--help').out);
  for (const cmd of [['validate'], ['run'], ['data', 'synth'], ['bench']]) {
    const a = qcbench('help', ...cmd);
    const b = qcbench(...cmd, '--help');
    assert.equal(a.code, 0, a.err);
    assert.equal(a.out, b.out, `qcbench help ${cmd.join(' ')}`);
    assert.ok(a.out.length > 0);
  }
  assert.match(qcbench('help', 'validate').out, /^qcbench validate <protocol\.yaml>/);
  const unknown = qcbench('help', 'valdate');
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /did you mean 'validate'/);
});

test('under --json an error is one JSON object on stdout with code, message, file, key, value and fix', () => {
  const keys = ['code', 'message', 'file', 'key', 'value', 'fix'];
  // an error thrown by a command (through main)
  const s = qcbench('status', '--results', join(tmpdir(), 'qcb-no-such-results'), '--json');
  assert.equal(s.code, 2);
  const e = JSON.parse(s.out);
  assert.deepEqual(Object.keys(e), keys);
  assert.equal(e.code, 'QCB_FILE_NOT_FOUND');
  assert.match(e.file, /run\.json$/);
  assert.match(e.fix, /--results/);
  // a usage error
  const u = qcbench('env', '--nope', '--json');
  assert.equal(u.code, 2);
  assert.equal(JSON.parse(u.out).code, 'QCB_USAGE');
  // a protocol problem found by validate
  const d = mkdtempSync(join(tmpdir(), 'qcb-cli-'));
  const file = join(d, 'broken.yaml');
  writeFileSync(
    file,
    `version: 1\nextends: ${join(ROOT, 'protocols', 'quick.yaml')}\nname: broken\ntasks:\n  knn: { kk: 5 }\n`,
  );
  const v = qcbench('validate', file, '--json');
  assert.equal(v.code, 2);
  const ve = JSON.parse(v.out);
  assert.deepEqual(Object.keys(ve), keys);
  assert.equal(ve.code, 'QCB_PROTOCOL_KEY');
  assert.equal(ve.key, 'tasks.knn.kk');
  assert.match(ve.file, /broken\.yaml:5$/);
  assert.match(ve.fix, /did you mean 'tasks\.knn\.k'/);
});

/** A tiny protocol (no SSL: knn on the untrained control) whose data set uses the annotation file `ann`. */
function annotatedProtocol(dir: string, ann: string): string {
  const file = join(dir, 'ann.yaml');
  writeFileSync(
    file,
    `version: 1
name: ann
seeds: [0]
encoders: [random-resnet18]
${tinyDataYaml(['s'], ann)}evaluations:
  - { tasks: [knn], budgets: [8] }
`,
  );
  return file;
}

/** The shipped synthetic annotations with one row changed by `edit` (line numbers are the file's, from 1). */
function badAnnotations(dir: string, name: string, edit: (lines: string[]) => void): string {
  const lines = readFileSync(join(ROOT, 'annotations', 'synthetic-u2os.csv'), 'utf8').split('\n');
  edit(lines);
  const file = join(dir, name);
  writeFileSync(file, lines.join('\n'));
  return file;
}

test('validate reads the annotation files: a label typo or a duplicate crop id exits 2 with file, line and fix', () => {
  const d = mkdtempSync(join(tmpdir(), 'qcb-ann-'));
  // line 7 is the third data row
  const typo = badAnnotations(d, 'typo.csv', (l) => {
    l[6] = l[6].replace(/,(ab)?normal,/, ',abnormall,');
  });
  const t = qcbench('validate', annotatedProtocol(d, typo));
  assert.equal(t.code, 2, t.err);
  assert.match(t.err, /error QCB_ANNOTATIONS: .*typo\.csv:7: bad label/);
  assert.match(t.err, /key: +line 7, column label/);
  assert.match(t.err, /fix: +did you mean 'abnormal'\?/);
  assert.doesNotMatch(t.err, /^ok /m);

  const dup = badAnnotations(d, 'dup.csv', (l) => {
    l.splice(10, 0, l[5]);
  });
  const u = qcbench('validate', annotatedProtocol(d, dup), '--json');
  assert.equal(u.code, 2, u.err);
  const e = JSON.parse(u.out);
  assert.equal(e.code, 'QCB_ANNOTATIONS');
  assert.match(e.message, /dup\.csv:11: crop .* is annotated twice/);
  assert.match(e.fix, /first is on line 6/);

  const good = qcbench('validate', annotatedProtocol(d, join(ROOT, 'annotations', 'synthetic-u2os.csv')));
  assert.equal(good.code, 0, good.err);
});

test('run checks the annotation files before computing anything: exit 2, nothing generated or written', () => {
  const d = mkdtempSync(join(tmpdir(), 'qcb-ann-run-'));
  const typo = badAnnotations(d, 'typo.csv', (l) => {
    l[6] = l[6].replace(/,(ab)?normal,/, ',abnormall,');
  });
  const work = join(d, 'work');
  const r = qcbench('run', annotatedProtocol(d, typo), '--workdir', work, '--threads', '1');
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /error QCB_ANNOTATIONS: .*typo\.csv:7: bad label/);
  assert.match(r.err, /fix: +did you mean 'abnormal'\?/);
  assert.ok(!existsSync(work), 'no results, cache or log written');
  assert.ok(!existsSync(join(d, 'screen')), 'the synthetic screen was not generated');
});
