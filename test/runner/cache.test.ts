import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ArtifactStore, CLAIM_STALE_MS, claimIsStale, tryClaim } from '../../src/runner/cache.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'qcb-cache-'));

test('ensure computes once and returns the finished artifact afterwards', async () => {
  const store = new ArtifactStore(tmp());
  let runs = 0;
  const make = async (t: string) => {
    runs++;
    writeFileSync(t, 'x');
  };
  const a = await store.ensure('k', 'h1', make);
  const b = await store.ensure('k', 'h1', make);
  assert.equal(runs, 1);
  assert.equal(a.computed, true);
  assert.equal(b.computed, false);
  assert.equal(readFileSync(a.path, 'utf8'), 'x');
});

test('a failed compute leaves neither artifact nor claim', async () => {
  const store = new ArtifactStore(tmp());
  await assert.rejects(
    store.ensure('k', 'h', async () => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(store.has('k', 'h'), false);
  assert.equal(existsSync(`${store.path('k', 'h')}.claim`), false);
});

test('claims: exclusive while alive, stale when the owner is dead or silent', () => {
  const d = tmp();
  const f = join(d, 'a.claim');
  const release = tryClaim(f);
  assert.ok(release);
  assert.equal(tryClaim(f), null, 'second claim refused while the first is held');
  release!();
  assert.equal(existsSync(f), false);
  // A claim by a dead process on this host is stale at once.
  writeFileSync(f, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname() }));
  assert.equal(claimIsStale(f), true);
  // A claim from another host is stale only after the heartbeat timeout.
  writeFileSync(f, JSON.stringify({ pid: 1, host: 'elsewhere' }));
  assert.equal(claimIsStale(f), false);
  const old = new Date(Date.now() - CLAIM_STALE_MS - 1000);
  utimesSync(f, old, old);
  assert.equal(claimIsStale(f), true);
  const r2 = tryClaim(f);
  assert.ok(r2, 'a stale claim is taken over');
  r2!();
});

test('two processes ensuring the same artifact compute it once', async () => {
  const root = tmp();
  const mod = new URL('../../src/runner/cache.ts', import.meta.url).pathname;
  const script = `import('${mod}').then(async ({ ArtifactStore }) => {
    const fs = await import('node:fs');
    const s = new ArtifactStore('${root}');
    await s.ensure('k', 'shared', async (t) => {
      fs.appendFileSync('${join(root, 'runs.log')}', process.pid + '\\n');
      await new Promise((r) => setTimeout(r, 300));
      fs.writeFileSync(t, 'done');
    }, { pollMs: 50 });
  })`;
  const run = () =>
    new Promise<number>((resolve) => {
      const c = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: 'inherit' });
      c.on('exit', (code) => resolve(code ?? 1));
    });
  const codes = await Promise.all([run(), run(), run()]);
  assert.deepEqual(codes, [0, 0, 0]);
  assert.equal(readFileSync(join(root, 'runs.log'), 'utf8').trim().split('\n').length, 1);
  assert.equal(readFileSync(join(root, 'k', 'shared'), 'utf8'), 'done');
});
