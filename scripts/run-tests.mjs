#!/usr/bin/env node
// Runs the given test files with Node's test runner in the given order (`node --test` sorts its arguments), two at a
// time by default, each in its own process; started by scripts/test.mjs with `--import tsx`, which the child processes
// inherit. Exit code 1 when a test failed.
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const files = process.argv.slice(2);
const concurrency = Number(process.env.QCBENCH_TEST_CONCURRENCY ?? '2');
const stream = run({ files, concurrency });
stream.on('test:fail', () => {
  process.exitCode = 1;
});
stream.compose(spec).pipe(process.stdout);
