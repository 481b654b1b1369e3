import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { command } from '../../src/cli/encoder-verify.js';
import { QcbError } from '../../src/errors.js';
import { Logger } from '../../src/util/log.js';

const fixtures = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));
const ctx = { log: new Logger({ quiet: true }) };

/** Runs the command in a child process (as the CLI would) and returns its exit code and stdout. */
function runCapture(args: string[]): Promise<{ code: number; out: string }> {
  const src = fileURLToPath(new URL('../../src/cli/encoder-verify.ts', import.meta.url));
  const script = `import { command } from ${JSON.stringify(src)}; import { Logger } from ${JSON.stringify(fileURLToPath(new URL('../../src/util/log.ts', import.meta.url)))};
    process.exitCode = await command.run(process.argv.slice(1), { log: new Logger({ quiet: true }) });`;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args],
      { maxBuffer: 1 << 24 },
      (err, stdout) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout });
      },
    );
  });
}

// The engine's acceptance test: features and gradients of three torchvision encoders match PyTorch.
for (const name of ['resnet18_tv', 'vgg_small_tv', 'convnext_small_tv']) {
  test(`encoder verify passes for ${name} (features ≤ 1e-4, gradients ≤ 1e-3)`, async () => {
    const { code, out } = await runCapture([
      '--onnx',
      join(fixtures, `${name}.onnx`),
      '--ref',
      join(fixtures, `${name}.ref.json`),
      '--json',
    ]);
    const r = JSON.parse(out);
    assert.equal(code, 0, out);
    assert.equal(r.ok, true);
    assert.ok(r.features <= 1e-4 && r.gradInput <= 1e-3 && r.weights <= 1e-3);
    assert.equal(r.items.filter((i: { name: string }) => i.name.startsWith('weight:')).length, 3);
    assert.equal(r.engine, 'onnxruntime');
  });
}

// The independent check: the same imported graph in the TF.js interpreter, gradients by TF.js's own autodiff (none
// of the engine's gradient rules). ConvNeXt's fixture is the quickest of the three on the pure-JS CPU backend.
test('encoder verify --engine tfjs passes for convnext_small_tv and names the TF.js backend', async () => {
  const args = [
    '--onnx',
    join(fixtures, 'convnext_small_tv.onnx'),
    '--ref',
    join(fixtures, 'convnext_small_tv.ref.json'),
  ];
  const { code, out } = await runCapture([...args, '--engine', 'tfjs']);
  assert.equal(code, 0, out);
  assert.match(out, /^engine\s+tfjs \(backend (cpu|tensorflow)\)$/m);
  assert.match(out, /^PASS\s+features/m);
  const checks = out.split('\n').filter((l) => /^(ok|FAIL)\s/.test(l));
  assert.equal(checks.length, 5, out); // features, grad_input, 3 weight gradients
  assert.ok(
    checks.every((l) => l.startsWith('ok')),
    out,
  );
});

test('verify: an unknown --engine is a usage error (exit 2) with did-you-mean', async () => {
  const args = ['--onnx', join(fixtures, 'vgg_small_tv.onnx'), '--ref', join(fixtures, 'vgg_small_tv.ref.json')];
  await assert.rejects(
    command.run([...args, '--engine', 'tfsj'], ctx),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_USAGE' &&
      e.exitCode === 2 &&
      e.context.key === '--engine' &&
      /did you mean 'tfjs'/.test(e.context.fix!),
  );
  // through the real CLI: the process exits 2 and names the engines
  const bin = fileURLToPath(new URL('../../bin/qcbench.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, 'encoder', 'verify', ...args, '--engine', 'onnx'], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /QCB_USAGE/);
  assert.match(r.stderr, /onnxruntime/);
});

test('verify exits 1 with QCB_VERIFY_FAILED when the reference disagrees', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-verify-'));
  const ref = JSON.parse(readFileSync(join(fixtures, 'vgg_small_tv.ref.json'), 'utf8'));
  const b = Buffer.from(ref.grad_input.data, 'base64');
  const f = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  for (let i = 0; i < f.length; i += 7) f[i] += 0.5;
  ref.grad_input.data = Buffer.from(f.buffer).toString('base64');
  const bad = join(dir, 'bad.ref.json');
  writeFileSync(bad, JSON.stringify(ref));
  const { code, out } = await runCapture(['--onnx', join(fixtures, 'vgg_small_tv.onnx'), '--ref', bad]);
  assert.equal(code, 1);
  assert.match(out, /FAIL\s+grad_input/);
  assert.match(out, /ok\s+features/);
});

test('verify reports bad input with exit code 2: missing options, files, malformed reference', async () => {
  await assert.rejects(
    command.run(['--onnx', join(fixtures, 'vgg_small_tv.onnx')], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE' && e.exitCode === 2,
  );
  await assert.rejects(
    command.run(['--onnx', join(fixtures, 'nope.onnx'), '--ref', join(fixtures, 'vgg_small_tv.ref.json')], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_FILE_NOT_FOUND',
  );
  const dir = mkdtempSync(join(tmpdir(), 'qcb-verify-'));
  const broken = join(dir, 'broken.ref.json');
  writeFileSync(broken, '{"input": {"shape": [1], "data": "AAAA"}}');
  await assert.rejects(
    command.run(['--onnx', join(fixtures, 'vgg_small_tv.onnx'), '--ref', broken], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_REFERENCE' && e.exitCode === 2,
  );
});
