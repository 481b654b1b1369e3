/**
 * Running commands in tests: the real CLI entry point in a child process, as `npx qcbench` does, or a command's
 * `run` in-process with its stdout captured (shared by the CLI tests and the tests of commands).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const BIN = join(ROOT, 'bin', 'qcbench.js');

/** `qcbench …args` from the project root: exit code, stdout and stderr. */
export function qcbench(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, QCBENCH_LOG_QUIET: '0', CI: '1' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/**
 * Runs an in-process command with what it writes to stdout captured. Commands write strings; the test runner's own
 * reports (binary, serialised) pass through untouched, or a test's result written while another test captures would
 * be lost from the run.
 */
export async function captureStdout(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const orig = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((s: string | Uint8Array, ...rest: unknown[]) => {
    if (typeof s === 'string') {
      out += s;
      return true;
    }
    return (orig as (s: Uint8Array, ...r: unknown[]) => boolean)(s, ...rest);
  }) as typeof process.stdout.write;
  try {
    return { code: await fn(), out };
  } finally {
    process.stdout.write = orig;
  }
}
