/**
 * `encoder_settings.<encoder>`: an encoder that declares settings (resnet18-fractaldb, FRACTALDB_SETTINGS) gets them
 * as protocol keys, checked against its declaration; written keys enter its identity and reach its pretraining.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { protocolHash } from '../../src/protocol/resolve.js';
import { encoderId, expandCells } from '../../src/runner/cells.js';
import { runProtocol } from '../../src/runner/run.js';
import { createStages } from '../../src/runner/stages.js';
import { Logger } from '../../src/util/log.js';
import { makeTinyScreen, TINY_SYNTH } from '../e2e/_tiny-screen.js';
import { protocolFixture, refusal } from './_protocol.js';

const BASE = `version: 1
name: enc
seeds: [0]
encoders: [resnet18-fractaldb, random-resnet18]
data:
  crop_size: 32
  pretrain_on: s
  datasets:
    s: { format: synthetic, root: screen, annotations: ann.csv, channels: [Ph_golgi, Mito, Hoechst], synth: ${TINY_SYNTH} }
pretrain: { per_seed: false }
metrics: { bootstrap: 5 }
evaluations:
  - { tasks: [knn], budgets: [8], encoders: [resnet18-fractaldb] }
`;

const resolveWith = protocolFixture(BASE, 'qcb-encset-');
const issue = refusal;

test('encoder_settings: written keys change only that encoder’s id; none written keeps ids and hash', () => {
  const base = resolveWith();
  const empty = resolveWith('encoder_settings: { resnet18-fractaldb: {} }\n');
  assert.equal(protocolHash(empty), protocolHash(base));
  assert.equal(encoderId(empty, 'resnet18-fractaldb', 0), encoderId(base, 'resnet18-fractaldb', 0));
  const set = resolveWith('encoder_settings:\n  resnet18-fractaldb: { categories: 4, epochs: 1, milestones: [] }\n');
  assert.deepEqual(set.encoder_settings['resnet18-fractaldb'], { categories: 4, epochs: 1, milestones: [] });
  assert.notEqual(protocolHash(set), protocolHash(base));
  assert.notEqual(encoderId(set, 'resnet18-fractaldb', 0), encoderId(base, 'resnet18-fractaldb', 0));
  assert.equal(encoderId(set, 'random-resnet18', 0), encoderId(base, 'random-resnet18', 0));
  const ids = (p: typeof base) => expandCells(p).map((c) => c.id);
  assert.notDeepEqual(ids(set), ids(base), 'the FractalDB cells are new cells');
});

test('encoder_settings are checked against the encoder’s declaration', () => {
  const refused: [string, RegExp][] = [
    ['resnet18-fractaldb: { categories: 1 }', /QCB_PROTOCOL_VALUE.*categories/],
    ['resnet18-fractaldb: { categoris: 8 }', /QCB_PROTOCOL_KEY.*categoris/],
    ['resnet18-fractaldb: { lr: 0 }', /QCB_PROTOCOL_VALUE.*lr/],
    // an encoder that declares no settings has no block
    ['vgg16: { width: 8 }', /QCB_PROTOCOL_KEY.*vgg16/],
  ];
  for (const [block, re] of refused)
    assert.match(
      issue(() => resolveWith(`encoder_settings: { ${block} }\n`)),
      re,
    );
});

test('encoder_settings reach the FractalDB pretraining of a run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-encset-'));
  await makeTinyScreen(dir);
  const p = resolveWith(
    'encoder_settings:\n  resnet18-fractaldb: { categories: 3, instances: 2, epochs: 1, milestones: [], width: 4, batch_size: 6 }\n',
    dir,
  );
  const s = await runProtocol(p, createStages(), { log: new Logger({ quiet: true }), threads: 1 }, 'test');
  assert.equal(s.failed, 0);
  const cache = join(p.workdir, 'cache', 'fractaldb');
  const records = readdirSync(cache).filter((f) => f.endsWith('.json'));
  assert.equal(records.length, 1);
  const rec = JSON.parse(readFileSync(join(cache, records[0]), 'utf8'));
  assert.equal(rec.settings.categories, 3);
  assert.equal(rec.settings.instances, 2);
  assert.equal(rec.settings.width, 4);
  assert.equal(rec.settings.lr, 0.01, 'unset keys take the encoder’s defaults');
});
