#!/usr/bin/env node
// Test set-up, run by `npm test` before the suite: installs what the tests need from outside npm — Debian's chromium
// for the HTML-report browser test — when it is missing and this user can install packages. Never fails the run:
// without chromium the browser test skips and says why.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = process.env.QCBENCH_CHROMIUM ?? '/usr/bin/chromium';
if (existsSync(CHROMIUM)) process.exit(0);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = existsSync('/usr/bin/apt-get');
if (!isRoot || !hasApt || process.env.QCBENCH_NO_APT === '1') {
  console.error(
    `[setup] ${CHROMIUM} is absent and cannot be installed here (needs root and apt-get); the HTML report browser test will be skipped. Install Debian's chromium to run it.`,
  );
  process.exit(0);
}
console.error('[setup] installing Debian chromium for the HTML report test (apt-get, once per machine)…');
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const run = (args) =>
  spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env, timeout: 600_000 }).status;
if (
  run(['update', '-q']) !== 0 ||
  run(['install', '-y', '-q', '--no-install-recommends', 'chromium', 'fonts-dejavu-core']) !== 0
) {
  console.error('[setup] could not install chromium; the browser test will be skipped.');
}
