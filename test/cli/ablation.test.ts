/**
 * `qcbench ablation domain-shift --protocol BASE`: the shifted data sets come from the base protocol (its own shift,
 * or its pretrain_on and its other annotated data set), not from full.yaml's BBBC022 / BBBC021; a base with one data
 * set is refused with a coded error and nothing is written.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ablationProtocolFile } from '../../src/cli/ablation.js';
import { loadProtocol } from '../../src/runner/catalog.js';
import { expandCells } from '../../src/runner/cells.js';
import { qcbench, ROOT } from './_cli.js';

const PROTOCOLS = join(ROOT, 'protocols');

test('ablation domain-shift on quick.yaml: trains on synthetic-u2os, tests on it and on synthetic-mcf7', () => {
  const work = mkdtempSync(join(tmpdir(), 'qcb-ablation-'));
  // --max-cells 0: the run resolves the derived protocol and lists its cells, and computes none
  const r = qcbench(
    'ablation',
    'domain-shift',
    '--protocol',
    'protocols/quick.yaml',
    '--max-cells',
    '0',
    '--no-report',
    '--workdir',
    join(work, 'w'),
    '--json',
  );
  assert.equal(r.code, 0, r.err);
  const summary = JSON.parse(r.out) as { total: number; computed: number };
  assert.equal(summary.computed, 0);
  const file = join(work, 'w', 'ablations', 'quick-domain-shift.yaml');
  assert.ok(existsSync(file), 'the derived protocol is written under --workdir');
  const p = loadProtocol(file);
  assert.deepEqual(
    p.evaluations.map((ev) => [ev.name, ev.tasks, ev.budgets, ev.train_set, ev.test_set]),
    [
      ['in-domain', ['finetune'], [100], 'synthetic-u2os', 'synthetic-u2os'],
      ['domain-shift', ['finetune'], [100], 'synthetic-u2os', 'synthetic-mcf7'],
    ],
  );
  const cells = expandCells(p);
  assert.equal(summary.total, cells.length);
  // quick's own domain-shift cells are the ablation's: a quick run's results are reused
  const quick = new Set(expandCells(loadProtocol(join(PROTOCOLS, 'quick.yaml'))).map((c) => c.id));
  const shifted = cells.filter((c) => c.key.test_set === 'synthetic-mcf7');
  assert.ok(shifted.length > 0 && shifted.every((c) => quick.has(c.id)));
});

test('ablation domain-shift on full.yaml derives the shipped domain-shift.yaml cells', () => {
  const work = mkdtempSync(join(tmpdir(), 'qcb-ablation-'));
  const derived = ablationProtocolFile('domain-shift', join(PROTOCOLS, 'full.yaml'), work);
  const ids = (f: string) => expandCells(loadProtocol(f)).map((c) => c.id);
  assert.deepEqual(ids(derived), ids(join(PROTOCOLS, 'domain-shift.yaml')));
});

test('ablation domain-shift on a base with one data set: QCB_ABLATION_BASE, exit 2, nothing written', () => {
  const work = mkdtempSync(join(tmpdir(), 'qcb-ablation-'));
  const base = join(work, 'one.yaml');
  // (JSON is YAML)
  const one = {
    version: 1,
    name: 'one',
    encoders: ['random-resnet18'],
    data: { crop_size: 32, pretrain_on: 's', datasets: { s: { format: 'synthetic', annotations: 'ann.csv' } } },
    evaluations: [{ tasks: ['finetune'], budgets: [10] }],
  };
  writeFileSync(base, JSON.stringify(one, null, 2));
  const r = qcbench('ablation', 'domain-shift', '--protocol', base, '--workdir', join(work, 'w'), '--no-report');
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /QCB_ABLATION_BASE/);
  assert.match(r.err, /one\.yaml/);
  assert.match(r.err, /data\.datasets/);
  assert.match(r.err, /add the shifted screen under data\.datasets/);
  assert.ok(!existsSync(join(work, 'w')) || !readdirSync(join(work, 'w')).includes('ablations'), 'nothing written');
});
