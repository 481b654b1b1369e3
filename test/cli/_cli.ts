/** Runs the real CLI entry point in a child process, as `npx qcbench` does (shared by the CLI tests). */
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
