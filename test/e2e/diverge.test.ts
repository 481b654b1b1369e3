/**
 * End to end through the real CLI: a protocol whose SSL pretraining diverges (`pretrain.lr: 1e6`) records that
 * method's cells as failed with the divergence code, caches no encoder and writes no pretraining record, computes the
 * other encoder's cells, and exits 1 (a run that diverged is a failure, not a result).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeTinyScreen, tinyDataYaml } from './_tiny-screen.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const base = mkdtempSync(join(tmpdir(), 'qcb-e2e-diverge-'));
const protocol = join(base, 'diverge.yaml');

before(async () => {
  await makeTinyScreen(base);
  writeFileSync(
    protocol,
    `version: 1
name: diverge
seeds: [0]
encoders: [simclr, random-resnet18]
${tinyDataYaml()}
pretrain:
  epochs: 1
  batch_size: 8
  max_images_per_epoch: 16
  projector_dim: 64
  lr: 1e6
tasks:
  linear: { epochs: 4, milestones: [2] }
  finetune: { epochs: 2, milestones: [1] }
metrics: { bootstrap: 20 }
evaluations:
  - tasks: [knn, linear, finetune]
    budgets: [8]
`,
  );
});

after(() => rmSync(base, { recursive: true, force: true }));

test('pretrain.lr 1e6: the SSL cells fail with the divergence code, nothing is cached as done, the run exits 1', () => {
  const workdir = join(base, '.qcbench');
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin', 'qcbench.js'), 'run', protocol, '--workdir', workdir, '--threads', '1', '--no-report'],
    { cwd: base, encoding: 'utf8', env: { ...process.env, QCBENCH_LOG_QUIET: '1', CI: 'true' }, timeout: 300_000 },
  );
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 1, out);
  const results = join(workdir, 'results', 'diverge');
  const cells = readdirSync(join(results, 'cells')).map((f) =>
    JSON.parse(readFileSync(join(results, 'cells', f), 'utf8')),
  );
  assert.equal(cells.length, 6);
  for (const c of cells.filter((x) => x.key.encoder === 'simclr')) {
    assert.equal(c.status, 'failed', JSON.stringify(c));
    assert.ok(['QCB_DIVERGED', 'QCB_NAN_LOSS'].includes(c.error.code), c.error.code);
    assert.match(c.error.message, /simclr pretraining diverged at step \d+/);
    assert.match(c.error.fix, /pretrain\.lr/);
  }
  for (const c of cells.filter((x) => x.key.encoder === 'random-resnet18'))
    assert.equal(c.status, 'done', JSON.stringify(c));
  // nothing of the diverged pretraining is cached as done or recorded
  const encoders = join(workdir, 'cache', 'encoders');
  const cached = existsSync(encoders) ? readdirSync(encoders, { recursive: true }).map(String) : [];
  assert.ok(!cached.some((f) => f.endsWith('encoder.onnx') || f.endsWith('pretrain.json')), cached.join(', '));
  const records = join(results, 'pretrain');
  assert.deepEqual(existsSync(records) ? readdirSync(records) : [], []);
});
