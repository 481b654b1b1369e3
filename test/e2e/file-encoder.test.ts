/**
 * A protocol whose `encoders:` include an ONNX file by path (`{ name, onnx, kind, label }`, the path relative to the
 * protocol file) runs kNN and linear cells on the tiny screen to a report that shows the file's label; the cells are
 * identified by the file's content (moving it keeps the ids, changing its bytes changes them); `validate` refuses a
 * missing file, a file that is not ONNX and a graph without N×D features (exit 2); shipped names cannot be taken.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { attr, type Graph } from '../../src/engine/ir/graph.js';
import { exportOnnx } from '../../src/engine/onnx/export.js';
import { QcbError } from '../../src/errors.js';
import { protocolHash } from '../../src/protocol/resolve.js';
import { loadProtocol } from '../../src/runner/catalog.js';
import { expandCells } from '../../src/runner/cells.js';
import { makeTinyScreen, tinyDataYaml } from './_tiny-screen.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin', 'qcbench.js');
const RESNET = '/work/shared/fixtures/onnx/resnet18_tv.onnx';
const base = mkdtempSync(join(tmpdir(), 'qcb-file-enc-'));
after(() => rmSync(base, { recursive: true, force: true }));

/** A protocol on the tiny screen with the file encoder `entry` (YAML flow mapping) beside the random control. */
function protocol(file: string, entry: string, extra = ''): string {
  writeFileSync(
    join(base, file),
    `version: 1
name: tiny-file
seeds: [0]
encoders: [random-resnet18, ${entry}]
${tinyDataYaml(['s'])}tasks:
  linear: { epochs: 4, milestones: [2] }
metrics: { bootstrap: 20 }
evaluations:
  - tasks: [knn, linear]
    budgets: [8]
${extra}`,
  );
  return join(base, file);
}

function qcbench(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: base,
    encoding: 'utf8',
    env: { ...process.env, CI: '1', QCBENCH_LOG_QUIET: '0' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const ids = (file: string) => expandCells(loadProtocol(file)).map((c) => c.id);

before(async () => {
  await makeTinyScreen(base);
});

test('an ONNX encoder by relative path runs kNN and linear cells to a report with its label', () => {
  const rel = relative(base, RESNET);
  assert.ok(rel.startsWith('..'), rel);
  const file = protocol('tiny.yaml', `{ name: my-resnet, onnx: ${rel}, kind: tl, label: My ResNet18 }`);
  const p = loadProtocol(file);
  assert.deepEqual(p.encoders, ['random-resnet18', 'my-resnet']);
  assert.deepEqual(p.encoder_files, { 'my-resnet': { onnx: RESNET, kind: 'tl', label: 'My ResNet18' } });
  const v = qcbench('validate', file);
  assert.equal(v.code, 0, v.err);
  assert.match(v.err, /encoder 'my-resnet': .*resnet18_tv\.onnx loads, 512-d features/);
  const r = qcbench('run', file, '--workdir', join(base, 'work'), '--threads', '1');
  assert.equal(r.code, 0, r.err);
  const results = join(base, 'work', 'results', 'tiny-file');
  const cells = readdirSync(join(results, 'cells'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(results, 'cells', f), 'utf8')));
  const mine = cells.filter((c) => c.key.encoder === 'my-resnet');
  assert.equal(mine.length, 2);
  for (const c of mine) {
    assert.equal(c.status, 'done', JSON.stringify(c.error));
    assert.equal(c.encoder_label, 'My ResNet18');
    assert.equal(c.encoder_kind, 'tl');
    assert.equal(c.metrics.n_test, 12);
  }
  assert.deepEqual(mine.map((c) => c.key.task).sort(), ['knn', 'linear']);
  const report = readdirSync(join(results, 'report'));
  assert.ok(report.includes('index.html'), report.join(', '));
  assert.match(readFileSync(join(results, 'report', 'index.html'), 'utf8'), /My ResNet18/);
});

test('cells are identified by the file content: moving it keeps the ids, changing its bytes changes them', () => {
  const rel = relative(base, RESNET);
  const first = protocol('a.yaml', `{ name: my-resnet, onnx: ${rel}, kind: tl, label: My ResNet18 }`);
  mkdirSync(join(base, 'models'), { recursive: true });
  copyFileSync(RESNET, join(base, 'models', 'r18.onnx'));
  const moved = protocol('b.yaml', '{ name: my-resnet, onnx: models/r18.onnx, kind: tl, label: My ResNet18 }');
  assert.deepEqual(ids(moved), ids(first));
  assert.equal(protocolHash(loadProtocol(moved)), protocolHash(loadProtocol(first)));
  // the moved file's cells are the ones the first test computed: a run of it finds them all done
  const r = qcbench('run', moved, '--workdir', join(base, 'work'), '--threads', '1');
  assert.equal(r.code, 0, r.err);
  const log = readFileSync(join(base, 'work', 'results', 'tiny-file', 'log.jsonl'), 'utf8');
  assert.ok(existsSync(join(base, 'work', 'results', 'tiny-file', 'run.json')));
  assert.equal(log.split('\n').filter((l) => l.includes('"msg":"done ')).length, 4, 'no cell computed twice');
  appendFileSync(join(base, 'models', 'r18.onnx'), Buffer.from([0]));
  const changed = ids(moved);
  const before = ids(first);
  // the random control's cells keep their ids; the file encoder's change
  assert.equal(changed.filter((id) => before.includes(id)).length, 2);
  assert.equal(changed.length, 4);
});

test('validate refuses a missing file, a file that is not ONNX and a graph without N×D features (exit 2)', () => {
  const missing = protocol('missing.yaml', '{ name: mine, onnx: models/nope.onnx, label: Mine }');
  let r = qcbench('validate', missing, '--json');
  assert.equal(r.code, 2);
  let e = JSON.parse(r.out);
  assert.equal(e.code, 'QCB_FILE_NOT_FOUND');
  assert.equal(e.file, join(base, 'models', 'nope.onnx'));
  assert.match(e.fix, /relative to the protocol file/);

  writeFileSync(join(base, 'not.onnx'), 'this is not an ONNX file\n');
  r = qcbench('validate', protocol('not.yaml', '{ name: mine, onnx: not.onnx }'), '--json');
  assert.equal(r.code, 2);
  e = JSON.parse(r.out);
  assert.equal(e.code, 'QCB_ONNX_PARSE');
  assert.equal(e.file, join(base, 'not.onnx'));
  assert.match(e.message, /encoder 'mine'/);
  assert.ok(e.fix);

  // N×3×H×W → N×3×H: neither features, logits nor a feature map
  const g: Graph = {
    name: 'wrong',
    opset: 13,
    inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 3, 'H', 'W'] }],
    outputs: [{ name: 'y', dtype: 'float32' }],
    initializers: new Map(),
    values: new Map(),
    nodes: [
      {
        opType: 'ReduceMean',
        domain: '',
        name: 'r',
        inputs: ['x'],
        outputs: ['y'],
        attrs: { axes: attr.ints([3]), keepdims: attr.int(0) },
      },
    ],
  };
  writeFileSync(join(base, 'wrong.onnx'), exportOnnx(g));
  r = qcbench('validate', protocol('wrong.yaml', '{ name: mine, onnx: wrong.onnx }'), '--json');
  assert.equal(r.code, 2);
  e = JSON.parse(r.out);
  assert.equal(e.code, 'QCB_ONNX_GRAPH');
  assert.equal(e.file, join(base, 'wrong.onnx'));
  assert.match(e.message, /rank 3/);
  // run refuses it up front too, writing no results
  r = qcbench('run', join(base, 'wrong.yaml'), '--workdir', join(base, 'wrong-work'));
  assert.equal(r.code, 2);
  assert.equal(existsSync(join(base, 'wrong-work', 'results')), false);
});

test('the entry is checked as protocol data: safe name, no registry name, known kind, known keys', () => {
  const cases: [string, RegExp][] = [
    ['{ name: ../x, onnx: not.onnx }', /encoders\[1\]\.name/],
    ['{ name: resnet18, onnx: not.onnx }', /registry encoder/],
    ['{ name: mine, onnx: not.onnx, kind: imagenet }', /unknown encoder kind 'imagenet'/],
    ['{ name: mine, onnx: not.onnx, weights: x }', /unknown key 'encoders\[1\]\.weights'/],
    ['{ name: mine }', /missing required key 'encoders\[1\]\.onnx'/],
  ];
  for (const [entry, msg] of cases) {
    const file = protocol('bad.yaml', entry);
    assert.throws(
      () => loadProtocol(file),
      (err: unknown) => err instanceof QcbError && err.exitCode === 2 && msg.test(err.message),
      entry,
    );
  }
  // the name may be listed in an evaluation's encoders; twice in encoders it is refused
  const ok = protocol(
    'eval.yaml',
    '{ name: mine, onnx: not.onnx }',
    '  - tasks: [knn]\n    budgets: [8]\n    encoders: [mine]\n',
  );
  assert.deepEqual(loadProtocol(ok).evaluations[1].encoders, ['mine']);
  assert.throws(
    () => loadProtocol(protocol('twice.yaml', '{ name: mine, onnx: not.onnx }, mine')),
    (err: unknown) => err instanceof QcbError && /repeats the encoder name 'mine'/.test(err.message),
  );
});
