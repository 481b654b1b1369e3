#!/usr/bin/env node
// Runs every test file under test/ with Node's built-in runner through tsx (scripts/run-tests.mjs), longest first.
// Usage: npm test [-- <substring filter on file paths>]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

// The longest files start first (the SSL pretraining tests, 1–1.5 min each, then the end-to-end runs): started last in
// path order they ran alone at the end while the other worker idled, ~2 minutes of a 12-minute suite.
const FIRST = [/^test\/ssl\/pretrain-/, /^test\/e2e\//];
const rank = (f) => {
  const i = FIRST.findIndex((re) => re.test(f.split('\\').join('/')));
  return i < 0 ? FIRST.length : i;
};

const filters = process.argv.slice(2);
const files = walk('test')
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .map((f, i) => ({ f, i }))
  .sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i)
  .map((x) => x.f);
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
// Every temporary file of the run goes under one folder (TMPDIR, which os.tmpdir() and the child processes follow),
// removed at the end: a test that leaves its temp dir behind cannot fill the machine's /tmp run after run, and the
// crops the helpers cache there (test/downstream/synth-crops.ts) are shared within the run only, as on a fresh CI
// machine. QCBENCH_KEEP_TEST_TMP=1 keeps it (its path is printed) to look at what a failing test wrote.
const tmp = mkdtempSync(join(tmpdir(), 'qcbench-tests-'));
// node --test would sort the files again: run-tests.mjs keeps this order (the child processes inherit --import tsx)
const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/run-tests.mjs', ...files], {
  stdio: 'inherit',
  env: { ...process.env, QCBENCH_LOG_QUIET: '1', TMPDIR: tmp },
});
if (process.env.QCBENCH_KEEP_TEST_TMP === '1') console.error(`test temp files kept in ${tmp}`);
else rmSync(tmp, { recursive: true, force: true });
process.exit(r.status ?? 1);
