import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CUDA_INSTALL_COMMAND,
  checkExecutionProvider,
  defaultExecutionProvider,
  executionProviderInstalled,
  sessionOptions,
  setDefaultExecutionProvider,
} from '../../src/engine/runtime/session.js';
import { QcbError } from '../../src/errors.js';
import { qcbench, ROOT } from './_cli.js';

const fixtures = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'qcb-provider-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** This machine has no CUDA provider files (the CI and dev machines); where it has, the cuda cases do not apply. */
const noCuda = !executionProviderInstalled('cuda');
const skipCuda = noCuda ? false : "onnxruntime-node's CUDA provider is installed here";

function assertCudaMissing(r: { code: number | null; err: string }, key: RegExp) {
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /error QCB_PROVIDER: execution provider 'cuda' is not installed/);
  assert.match(r.err, key);
  assert.ok(r.err.includes(CUDA_INSTALL_COMMAND), r.err);
}

/** A protocol over the quick one, with its own workdir and runtime section. */
function protocol(name: string, runtime: string): { file: string; workdir: string } {
  const workdir = join(dir, name);
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1\nextends: ${join(ROOT, 'protocols', 'quick.yaml')}\nname: ${name}\nworkdir: ${workdir}\nruntime: ${runtime}\n`,
  );
  return { file, workdir };
}

test('the README install command is the one session errors give', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  assert.ok(readme.includes(CUDA_INSTALL_COMMAND));
  assert.ok(readme.includes('--provider cuda'));
});

test('setDefaultExecutionProvider sets the providers of sessions that name none; unknown names get did-you-mean', () => {
  assert.equal(defaultExecutionProvider(), 'cpu');
  assert.deepEqual(sessionOptions().executionProviders, ['cpu']);
  assert.equal(setDefaultExecutionProvider('cpu'), 'cpu');
  assert.deepEqual(sessionOptions().executionProviders, ['cpu']);
  assert.deepEqual(sessionOptions({ executionProviders: ['cpu'] }).executionProviders, ['cpu']);
  assert.throws(
    () => checkExecutionProvider('cuda12'),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_USAGE' &&
      e.exitCode === 2 &&
      e.context.key === '--provider' &&
      /did you mean 'cuda'/.test(e.context.fix ?? ''),
  );
});

test('asking for cuda without its provider files is QCB_PROVIDER (exit 2) with the install command', {
  skip: skipCuda,
}, () => {
  assert.throws(
    () => setDefaultExecutionProvider('cuda', { key: 'runtime.execution_provider', file: 'p.yaml' }),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_PROVIDER' &&
      e.exitCode === 2 &&
      e.context.file === 'p.yaml' &&
      e.context.key === 'runtime.execution_provider' &&
      (e.context.fix ?? '').includes(CUDA_INSTALL_COMMAND),
  );
  assert.equal(defaultExecutionProvider(), 'cpu'); // unchanged
});

test('run --provider cuda exits 2 before any work starts', { skip: skipCuda }, () => {
  const { file, workdir } = protocol('flag-cuda', '{ execution_provider: cpu }');
  assertCudaMissing(qcbench('run', file, '--provider', 'cuda'), /key: +--provider/);
  assert.equal(existsSync(join(workdir, 'results')), false, 'the run started');
});

test("a protocol's runtime.execution_provider: cuda fails the same way at run start, naming the key and file", {
  skip: skipCuda,
}, () => {
  const { file, workdir } = protocol('proto-cuda', '{ execution_provider: cuda }');
  const r = qcbench('run', file);
  assertCudaMissing(r, /key: +runtime\.execution_provider/);
  assert.ok(r.err.includes(file), r.err);
  assert.equal(existsSync(join(workdir, 'results')), false, 'the run started');
  // --provider overrides the protocol
  const ok = qcbench('run', file, '--provider', 'cpu', '--max-cells', '0', '--no-report', '--json');
  assert.equal(ok.code, 0, ok.err);
  assert.ok(JSON.parse(ok.out).pending > 0);
});

test('every command that runs models takes --provider and refuses cuda up front', { skip: skipCuda }, () => {
  const model = join(fixtures, 'vgg_small_tv.onnx');
  for (const cmd of [
    ['ablation', 'label-budget'],
    ['eval', '--encoder', model, '--task', 'knn', '--annotations', 'a.csv', '--store', 's'],
    ['pretrain', '--method', 'simclr', '--store', 's', '--out', join(dir, 'pt')],
    ['qc', 'train', '--encoder', model, '--task', 'knn', '--annotations', 'a.csv', '--store', 's', '--out', 'm.onnx'],
    ['qc', 'apply', '--model', 'm.onnx', '--store', 's'],
    ['encoder', 'verify', '--onnx', model, '--ref', model.replace(/\.onnx$/, '.ref.json')],
    ['bench', 'engine', '--no-torch', '--size', '32', '--batch', '2', '--steps', '1'],
  ]) {
    assertCudaMissing(qcbench(...cmd, '--provider', 'cuda'), /key: +--provider/);
  }
});

test('an unknown --provider is a usage error with did-you-mean', () => {
  const r = qcbench('encoder', 'verify', '--provider', 'cuda12', '--onnx', 'x.onnx', '--ref', 'x.ref.json');
  assert.equal(r.code, 2);
  assert.match(r.err, /error QCB_USAGE: unknown execution provider 'cuda12'/);
  assert.match(r.err, /did you mean 'cuda'/);
});

test('--provider cpu runs (encoder verify of a fixture passes)', () => {
  const model = join(fixtures, 'vgg_small_tv.onnx');
  const r = qcbench(
    'encoder',
    'verify',
    '--provider',
    'cpu',
    '--onnx',
    model,
    '--ref',
    model.replace(/\.onnx$/, '.ref.json'),
    '--threads',
    '1',
  );
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^PASS/m);
});

test("the runner honours the protocol's runtime.threads", () => {
  const { file, workdir } = protocol('threads', '{ threads: 1, execution_provider: cpu }');
  const r = qcbench('run', file, '--max-cells', '0', '--no-report');
  assert.equal(r.code, 0, r.err);
  const log = readFileSync(join(workdir, 'results', 'threads', 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const start = log.find((e) => /^run threads: /.test(e.msg ?? e.message ?? ''));
  assert.ok(start, JSON.stringify(log));
  assert.equal(start.threads, 1);
});
