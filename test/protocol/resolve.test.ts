import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { QcbError } from '../../src/errors.js';
import * as D from '../../src/protocol/defaults.js';
import { deepMerge, expandEnv, ProtocolError, protocolHash } from '../../src/protocol/resolve.js';
import { LINEAR } from '../../src/downstream/linear.js';
import { ENCODERS, loadProtocol } from '../../src/runner/catalog.js';

const PROTOCOLS = new URL('../../protocols/', import.meta.url).pathname;
const tmp = () => mkdtempSync(join(tmpdir(), 'qcb-protocol-'));

function write(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const MINIMAL = `version: 1
name: tiny
encoders: [simclr, random-resnet18]
data:
  pretrain_on: s
  datasets:
    s: { format: synthetic, annotations: ann.csv }
evaluations:
  - tasks: [knn, linear]
    budgets: [10]
`;

test('every shipped protocol resolves', () => {
  const files = readdirSync(PROTOCOLS).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 4, 'protocols/ holds the full, ablation and quick protocols');
  for (const f of files) {
    const p = loadProtocol(join(PROTOCOLS, f), { env: {} });
    assert.equal(p.version, 1, f);
    assert.ok(p.evaluations.length > 0, f);
    for (const e of p.encoders) assert.ok(e in ENCODERS, `${f}: ${e}`);
  }
});

test('full protocol covers Tables 1-3 with the paper defaults', () => {
  const p = loadProtocol(join(PROTOCOLS, 'full.yaml'), { env: {} });
  assert.deepEqual(p.encoders.slice(0, 8), [
    'vgg16',
    'resnet18',
    'convnext_tiny',
    'simclr',
    'barlow_twins',
    'vicreg',
    'deepclusterv2',
    'swav',
  ]);
  assert.ok(p.encoders.includes('random-resnet18'));
  assert.ok(p.seeds.length >= 3);
  assert.equal(p.data.crop_size, 128);
  assert.equal(p.tasks.knn.k, 5);
  assert.deepEqual(p.tasks.linear.milestones, [40, 70, 120]);
  assert.equal(p.tasks.linear.epochs, 150);
  assert.equal(p.tasks.finetune.epochs, 50);
  assert.equal(p.pretrain.methods.simclr.temperature, 0.07);
  assert.equal(p.pretrain.methods.swav.queue_size, 2560);
  assert.equal(p.pretrain.methods.deepclusterv2.num_prototypes, 500);
  const budgets = new Set(p.evaluations.flatMap((e) => e.budgets));
  for (const b of D.LABEL_BUDGETS) assert.ok(budgets.has(b), `budget ${b}`);
  assert.ok(p.evaluations.some((e) => e.test_set === 'bbbc021' && e.train_set === 'bbbc022'));
});

test('extends merges maps key by key and replaces lists', () => {
  const lb = loadProtocol(join(PROTOCOLS, 'label-budget.yaml'), { env: {} });
  const full = loadProtocol(join(PROTOCOLS, 'full.yaml'), { env: {} });
  assert.equal(lb.name, 'label-budget');
  assert.deepEqual(lb.encoders, full.encoders);
  assert.deepEqual(
    lb.evaluations.map((e) => e.budgets),
    [[350, 100, 50, 25, 10]],
  );
  assert.equal(
    lb.data.datasets.bbbc022.root,
    full.data.datasets.bbbc022.root,
    'base paths stay relative to the base file',
  );
  assert.deepEqual(
    lb.source.chain.map((f) => f.split('/').pop()),
    ['label-budget.yaml', 'full.yaml'],
  );
  assert.deepEqual(deepMerge({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } }), { a: { b: 1, c: [3] } });
});

test('defaults are filled from named constants, overrides win', () => {
  const d = tmp();
  const p = loadProtocol(write(d, 'p.yaml', `${MINIMAL}tasks:\n  linear: { epochs: 20, milestones: [10] }\n`), {
    env: {},
    cwd: d,
  });
  assert.equal(p.tasks.linear.epochs, 20);
  assert.equal(p.tasks.linear.lr, LINEAR.lr);
  assert.deepEqual(p.seeds, [...D.SEEDS]);
  assert.equal(p.pretrain.batch_size, D.PRETRAIN.batch_size);
  assert.equal(p.evaluations[0].train_set, 's');
  assert.equal(p.evaluations[0].test_set, 's');
  assert.equal(p.data.datasets.s.annotations, join(d, 'ann.csv'), 'relative to the protocol file');
  assert.equal(p.results, join(d, '.qcbench', 'results', 'tiny'));
  assert.equal(p.data.datasets.s.root, join(d, '.qcbench', 'data', 's'));
});

test('environment variables expand, with defaults; a missing one is named', () => {
  assert.equal(
    expandEnv('${A}/x/${B:-def}', { A: '/data' }, () => assert.fail()),
    '/data/x/def',
  );
  const d = tmp();
  const text = MINIMAL.replace('annotations: ann.csv', 'annotations: "${QCB_TEST_ANN}/a.csv"');
  const p = loadProtocol(write(d, 'p.yaml', text), { env: { QCB_TEST_ANN: '/abs' } });
  assert.equal(p.data.datasets.s.annotations, '/abs/a.csv');
  assert.throws(
    () => loadProtocol(write(d, 'q.yaml', text), { env: {} }),
    (e: unknown) => e instanceof ProtocolError && /QCB_TEST_ANN/.test(e.format()),
  );
});

test('a broken protocol lists every problem with file, line, key and fix', () => {
  const d = tmp();
  const file = write(
    d,
    'bad.yaml',
    `version: 1
name: bad
encoders: [simclr, simclrr]
data:
  pretrain_on: s
  datasets:
    s: { format: synthetic }
tasks:
  linear:
    epoch: 10
    lr: -1
evaluations:
  - tasks: [knn, fine-tune]
    budgets: [10]
    test_set: nowhere
`,
  );
  try {
    loadProtocol(file, { env: {} });
    assert.fail('should throw');
  } catch (e) {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.exitCode, 2);
    const byKey = new Map(e.issues.map((i) => [i.path.join('.'), i]));
    const enc = byKey.get('encoders.1');
    assert.equal(enc?.code, 'QCB_UNKNOWN_NAME');
    assert.match(enc?.fix ?? '', /did you mean 'simclr'/);
    assert.equal(enc?.line, 3);
    const key = byKey.get('tasks.linear.epoch');
    assert.equal(key?.code, 'QCB_PROTOCOL_KEY');
    assert.match(key?.fix ?? '', /tasks\.linear\.epochs/);
    assert.equal(key?.line, 10);
    assert.equal(byKey.get('tasks.linear.lr')?.code, 'QCB_PROTOCOL_VALUE');
    assert.match(byKey.get('evaluations.0.tasks.1')?.fix ?? '', /finetune/);
    assert.match(byKey.get('evaluations.0.test_set')?.message ?? '', /not under data\.datasets/);
    const text = e.format();
    assert.match(text, /bad\.yaml:3/);
    assert.match(text, /fix:/);
  }
});

test('missing file, bad YAML, missing version, newer version, extends cycle', () => {
  const d = tmp();
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof QcbError);
      return e.code;
    }
    assert.fail('should throw');
  };
  assert.equal(
    code(() => loadProtocol(join(d, 'nope.yaml'))),
    'QCB_PROTOCOL_NOT_FOUND',
  );
  assert.equal(
    code(() => loadProtocol(write(d, 'y.yaml', 'version: 1\n  name: [x\n'))),
    'QCB_PROTOCOL_YAML',
  );
  assert.equal(
    code(() => loadProtocol(write(d, 'v.yaml', 'name: x\n'))),
    'QCB_PROTOCOL_VERSION',
  );
  assert.equal(
    code(() => loadProtocol(write(d, 'w.yaml', 'version: 9\nname: x\n'))),
    'QCB_PROTOCOL_VERSION',
  );
  write(d, 'a.yaml', 'version: 1\nextends: b.yaml\nname: a\n');
  write(d, 'b.yaml', 'version: 1\nextends: a.yaml\nname: b\n');
  assert.equal(
    code(() => loadProtocol(join(d, 'a.yaml'))),
    'QCB_PROTOCOL_EXTENDS',
  );
  assert.equal(
    code(() => loadProtocol(write(d, 'c.yaml', 'version: 1\nextends: gone.yaml\n'))),
    'QCB_PROTOCOL_EXTENDS',
  );
});

test('protocol hash ignores where the checkout lives but follows settings', () => {
  const d = tmp();
  const a = loadProtocol(write(d, 'p.yaml', MINIMAL), { env: {}, cwd: d });
  const b = loadProtocol(write(d, 'p.yaml', MINIMAL), { env: {}, cwd: tmp() });
  const c = loadProtocol(write(d, 'p.yaml', MINIMAL.replace('budgets: [10]', 'budgets: [12]')), { env: {}, cwd: d });
  assert.equal(protocolHash(a), protocolHash(b));
  assert.notEqual(protocolHash(a), protocolHash(c));
});
