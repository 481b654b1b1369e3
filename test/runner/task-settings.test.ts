/**
 * `evaluations[].task_settings.<task>`: a block's own task settings over `tasks.<task>` (a small label budget needs
 * more fine-tuning epochs than the full one). Written keys act and enter that block's cell ids; none written keeps
 * every id and the protocol hash; a task the block does not run, or a schedule past its epochs, is refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { protocolHash } from '../../src/protocol/resolve.js';
import { expandCells } from '../../src/runner/cells.js';
import { runProtocol } from '../../src/runner/run.js';
import { createStages } from '../../src/runner/stages.js';
import { Logger } from '../../src/util/log.js';
import { makeTinyScreen, TINY_SYNTH } from '../e2e/_tiny-screen.js';
import { protocolFixture, refusal } from './_protocol.js';

const BASE = `version: 1
name: tasks
seeds: [0]
encoders: [random-resnet18]
data:
  crop_size: 32
  pretrain_on: s
  datasets:
    s: { format: synthetic, root: screen, annotations: ann.csv, channels: [Ph_golgi, Mito, Hoechst], synth: ${TINY_SYNTH} }
pretrain: { per_seed: false }
metrics: { bootstrap: 5 }
tasks:
  linear: { epochs: 2, milestones: [1] }
evaluations:
  - { name: big, tasks: [linear], budgets: [12] }
`;

const resolveWith = protocolFixture(BASE, 'qcb-tasks-');
const issue = refusal;

const SMALL =
  '  - { name: small, tasks: [linear], budgets: [6], task_settings: { linear: { epochs: 5, milestones: [4] } } }\n';

test('task_settings: written keys act on that block only; none written keeps ids and hash', () => {
  const base = resolveWith();
  const empty = resolveWith('  - { name: small, tasks: [linear], budgets: [6], task_settings: { linear: {} } }\n');
  const plain = resolveWith('  - { name: small, tasks: [linear], budgets: [6] }\n');
  assert.equal(protocolHash(empty), protocolHash(plain), 'an empty override is no override');
  assert.deepEqual(
    expandCells(empty).map((c) => c.id),
    expandCells(plain).map((c) => c.id),
  );
  const set = resolveWith(SMALL);
  assert.notEqual(protocolHash(set), protocolHash(plain));
  const cells = expandCells(set);
  const big = cells.find((c) => c.key.budget === 12)!;
  const small = cells.find((c) => c.key.budget === 6)!;
  assert.equal((big.settings.task as { epochs: number }).epochs, 2);
  assert.deepEqual((small.settings.task as { milestones: number[] }).milestones, [4]);
  assert.equal((small.settings.task as { epochs: number }).epochs, 5);
  assert.equal((small.settings.task as { lr: number }).lr, base.tasks.linear.lr, 'unwritten keys inherit tasks.linear');
  assert.equal(big.id, expandCells(base)[0].id, 'the other block keeps its cell ids');
  assert.notEqual(small.id, expandCells(plain).find((c) => c.key.budget === 6)!.id);
});

test('task_settings are checked: known keys, the block’s own tasks, milestones before the last epoch', () => {
  const refused: [string, RegExp][] = [
    ['{ linear: { epoch: 5 } }', /QCB_PROTOCOL_KEY.*epoch/],
    ['{ linear: { lr: 0 } }', /QCB_PROTOCOL_VALUE.*lr/],
    ['{ finetune: { epochs: 5 } }', /QCB_PROTOCOL_VALUE.*does not run finetune/],
    ['{ linear: { epochs: 3, milestones: [4] } }', /QCB_PROTOCOL_VALUE.*task_settings\.linear\.milestones/],
    // the inherited milestones [1] are checked against the block's epochs too
    ['{ linear: { epochs: 1 } }', /QCB_PROTOCOL_VALUE.*milestones\[0\] = 1/],
  ];
  for (const [block, re] of refused)
    assert.match(
      issue(() => resolveWith(`  - { name: small, tasks: [linear], budgets: [6], task_settings: ${block} }\n`)),
      re,
    );
});

test('task_settings reach the training of a run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-tasks-'));
  await makeTinyScreen(dir);
  const p = resolveWith(SMALL, dir);
  const s = await runProtocol(p, createStages(), { log: new Logger({ quiet: true }), threads: 1 }, 'test');
  assert.equal(s.failed, 0);
  const models = join(p.workdir, 'cache', 'models');
  const curves = readdirSync(models, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(models, f), 'utf8')).loss_curve as number[] | undefined)
    .map((c) => c?.length)
    .sort();
  assert.deepEqual(curves, [2, 5], 'one epoch per loss value: 2 epochs for budget 12, 5 for budget 6');
});
