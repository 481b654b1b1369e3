/**
 * "A method is one file plus one registry line": on a copy of the package, a toy SSL method is added as
 * src/ssl/toy.ts and one entry in src/ssl/registry.ts — nothing else — and then `qcbench validate` accepts it in
 * `encoders:` and `pretrain.methods`, `qcbench run` pretrains it and evaluates it with kNN, and the report lists it.
 * The unmodified package refuses the name with "did you mean".
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeTinyScreen, tinyDataYaml } from './e2e/_tiny-screen.js';

const ROOT = new URL('../', import.meta.url).pathname;
const base = mkdtempSync(join(tmpdir(), 'qcb-toy-'));
const pkg = join(base, 'pkg');
const work = join(base, 'work');

/** The whole new method: an invariance loss with a variance hinge (VICReg's first two terms), MLP projector. */
const TOY_FILE = `/** Toy SSL method for the registry test: mean squared view difference plus a variance hinge. */
import { MLP2 } from './projector.js';
import type { SslMethod } from './types.js';

export const toy: SslMethod = {
  name: 'toy',
  label: 'Toy SSL',
  description: 'ResNet18 pretrained with a toy invariance loss',
  paper: 'none: a registry test',
  family: 'non-contrastive',
  defaults: { weight: 1, proj_hidden_dim: 64, proj_output_dim: 32 },
  sources: { weight: 'test', proj_hidden_dim: 'test', proj_output_dim: 'test' },
  projector: MLP2,
  buildLoss({ b, z1, z2, hp }) {
    const d = b.sub(z1, z2);
    const inv = b.reduceMean(b.mul(d, d), undefined, false);
    const zc = b.sub(z1, b.reduceMean(z1, [0], true));
    const v = b.reduceMean(b.mul(zc, zc), [0], false);
    const hinge = b.reduceMean(b.relu(b.sub(b.scalar(1), b.sqrt(b.add(v, b.scalar(1e-4))))), undefined, false);
    return { loss: b.add(b.mul(inv, b.scalar(hp.weight)), hinge), feeds: [], params: [], outputs: [] };
  },
};
`;

const PROTOCOL = `version: 1
name: toy
seeds: [0]
encoders: [toy]
${tinyDataYaml()}pretrain:
  epochs: 1
  batch_size: 8
  max_images_per_epoch: 8
  projector_dim: 64
  methods: { toy: { weight: 2 } }
metrics: { bootstrap: 20 }
evaluations:
  - tasks: [knn]
    budgets: [8]
`;

function qcbench(root: string, args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'qcbench.js'), ...args], {
    cwd: work,
    encoding: 'utf8',
    env: { ...process.env, QCBENCH_LOG_QUIET: '1', CI: 'true' },
    timeout: 300_000,
  });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

before(async () => {
  // the package as installed: sources, entry point, manifest; its dependencies by link
  for (const d of ['src', 'bin']) cpSync(join(ROOT, d), join(pkg, d), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir');
  await makeTinyScreen(work);
  writeFileSync(join(work, 'toy.yaml'), PROTOCOL);
});

after(() => rmSync(base, { recursive: true, force: true }));

test('without its registry line the toy method is refused, with the closest names', () => {
  const r = qcbench(ROOT, ['validate', join(work, 'toy.yaml')]);
  assert.equal(r.code, 2, r.out);
  assert.match(r.out, /QCB_UNKNOWN_NAME|QCB_PROTOCOL/);
  assert.match(r.out, /toy/);
});

test('one file + one registry line: the toy method validates, pretrains, is evaluated and appears in the report', () => {
  writeFileSync(join(pkg, 'src', 'ssl', 'toy.ts'), TOY_FILE);
  const registry = join(pkg, 'src', 'ssl', 'registry.ts');
  const text = readFileSync(registry, 'utf8');
  const added = text
    .replace("import { swav } from './swav.js';", "import { swav } from './swav.js';\nimport { toy } from './toy.js';")
    .replace(/\n {2}swav,\n\}/, '\n  swav,\n  toy,\n}');
  assert.notEqual(added, text, 'the registry has the shape this test edits');
  assert.equal(added.split('\n').length - text.split('\n').length, 2, 'an import and one registry line');
  writeFileSync(registry, added);

  const v = qcbench(pkg, ['validate', join(work, 'toy.yaml')]);
  assert.equal(v.code, 0, v.out);

  const r = qcbench(pkg, ['run', join(work, 'toy.yaml'), '--workdir', join(work, '.qcbench'), '--threads', '1']);
  assert.equal(r.code, 0, r.out);
  const results = join(work, '.qcbench', 'results', 'toy');
  const cells = readdirSync(join(results, 'cells')).map((f) =>
    JSON.parse(readFileSync(join(results, 'cells', f), 'utf8')),
  );
  assert.equal(cells.length, 1);
  assert.equal(cells[0].status, 'done', JSON.stringify(cells[0]));
  assert.equal(cells[0].key.encoder, 'toy');
  assert.equal(cells[0].encoder_kind, 'ssl');
  assert.ok(cells[0].pretrain, 'the cell names the pretraining it used');
  assert.ok(Number.isFinite(cells[0].metrics.accuracy));
  const report = join(results, 'report');
  assert.ok(existsSync(join(report, 'index.html')));
  const all = readFileSync(join(report, 'tables', 'all-results.csv'), 'utf8');
  assert.match(all, /Toy SSL/, 'the toy encoder is a row of the report');
  assert.match(all, /toy/);
});
