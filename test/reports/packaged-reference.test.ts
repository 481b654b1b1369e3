/**
 * The package stands alone: the paper's Tables 1–3 ship inside it (reports/reference/), so a report built with the
 * default reference from a copy of the package with nothing beside it — a fresh clone or an installed copy — shows
 * the paper's figures, and no help text or error message points outside the package.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { makeResults } from './make-results.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const base = mkdtempSync(join(tmpdir(), 'qcb-pkg-'));
const pkg = join(base, 'pkg');

after(() => rmSync(base, { recursive: true, force: true }));

test('a report made in a copy of the package without ../shared beside it shows the paper figures', async () => {
  // the package as installed: what package.json `files` ships (here src, bin, reports) and the manifest
  for (const d of ['src', 'bin', 'reports']) cpSync(join(ROOT, d), join(pkg, d), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir');
  assert.ok(!existsSync(join(base, 'shared')), 'nothing beside the package');

  const results = join(base, 'results');
  await makeResults(results, { skipTl: true, bootstrap: 10, seeds: [0] });
  const out = join(base, 'out');
  const r = spawnSync(
    process.execPath,
    [join(pkg, 'bin', 'qcbench.js'), 'report', '--results', results, '--out', out, '--no-png'],
    { cwd: base, encoding: 'utf8', env: { ...process.env, QCBENCH_LOG_QUIET: '0', CI: '1' } },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /reference table was not found/);
  const t1 = readFileSync(join(out, 'tables', 'table1.md'), 'utf8');
  // Table 1 of Masud et al. 2022: SimCLR kNN accuracy 90.62, VGG16 kNN accuracy 96.09
  const simclr = t1.split('\n').find((l) => l.startsWith('| SimCLR |'));
  assert.ok(simclr?.includes('(90.62, '), `SimCLR row carries the paper's 90.62: ${simclr}`);
  assert.match(t1, /paper 96\.09/);
});

test('no help text or error message in the package names a path outside it (../shared)', () => {
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
    });
  for (const f of files(join(ROOT, 'src'))) {
    // string literals only (comments may say where a fact was measured)
    const code = readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l))
      .join('\n');
    assert.doesNotMatch(code, /\.\.\/shared\//, f);
  }
});
