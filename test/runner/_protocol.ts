/** Protocol fixtures of the runner tests: a base YAML plus extra lines, resolved in a temporary folder. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { Protocol } from '../../src/protocol/schema.js';
import { loadProtocol } from '../../src/runner/catalog.js';

/**
 * A resolver of `base + extra` written to `<dir>/p.yaml` (a new temporary folder unless given; every folder is removed
 * after the file's tests).
 */
export function protocolFixture(base: string, prefix: string): (extra?: string, dir?: string) => Protocol {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return (extra = '', dir = mkdtempSync(join(tmpdir(), prefix))) => {
    dirs.push(dir);
    const f = join(dir, 'p.yaml');
    writeFileSync(f, base + extra);
    return loadProtocol(f, { env: {}, cwd: dir, workdir: join(dir, 'work') });
  };
}

/** The message and issues of the error `fn` throws; fails the test when it throws none. */
export function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return String((e as Error).message) + JSON.stringify((e as { issues?: unknown }).issues ?? '');
  }
  assert.fail('expected the protocol to be refused');
}
