import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { canonicalJson, contentHash, writeFileAtomic, writeJsonAtomic } from '../../src/util/fs.js';

test('atomic write leaves no temp file and replaces whole', () => {
  const d = mkdtempSync(join(tmpdir(), 'qcb-fs-'));
  const p = join(d, 'sub', 'a.json');
  writeJsonAtomic(p, { b: 1 });
  writeFileAtomic(p, 'second');
  assert.equal(readFileSync(p, 'utf8'), 'second');
  assert.deepEqual(readdirSync(join(d, 'sub')), ['a.json']);
});

test('a process killed mid-write never leaves a partial target file', () => {
  const d = mkdtempSync(join(tmpdir(), 'qcb-fs-'));
  const target = join(d, 'big.bin');
  const mod = new URL('../../src/util/fs.ts', import.meta.url).pathname;
  // The child writes 200 MB atomically; it is killed by a short timeout while writing.
  spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      `import('${mod}').then(m => m.writeFileAtomic('${target}', new Uint8Array(2e8).fill(7)))`,
    ],
    { timeout: 400, killSignal: 'SIGKILL' },
  );
  if (existsSync(target)) assert.equal(readFileSync(target).length, 2e8, 'a target that exists is complete');
});

test('canonical JSON and content hash ignore key order', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: 2, c: 3 } }), '{"a":{"c":3,"d":2},"b":1}');
  assert.equal(contentHash({ x: 1, y: [1, 2] }), contentHash({ y: [1, 2], x: 1 }));
  assert.notEqual(contentHash({ x: 1 }), contentHash({ x: 2 }));
  assert.match(contentHash('abc'), /^[0-9a-f]{64}$/);
});
