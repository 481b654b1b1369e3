/**
 * Every `pretrain.*` protocol key reaches the pretraining stage and the encoder's content hash: knn_monitor,
 * projector_dim, augmentations, schedule, optimizer (every accepted pretraining key acts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { Annotation } from '../../src/data/annotations.js';
import { DEFAULT_AUGMENT } from '../../src/data/augment/transforms.js';
import { SSL_WEIGHT_DECAY } from '../../src/protocol/defaults.js';
import { protocolHash } from '../../src/protocol/resolve.js';
import { loadProtocol } from '../../src/runner/catalog.js';
import { encoderId, encoderSeed, expandCells, sslHyper } from '../../src/runner/cells.js';
import { sslPretrainOptions } from '../../src/runner/stages.js';
import { sslAugment } from '../../src/ssl/augment.js';
import { memoryCropSource } from '../../src/ssl/pretrain.js';

const BASE = `version: 1
name: keys
seeds: [0]
encoders: [simclr, deepclusterv2, random-resnet18]
data:
  crop_size: 32
  pretrain_on: s
  datasets:
    s: { format: synthetic, annotations: ann.csv }
evaluations:
  - tasks: [knn]
    budgets: [10]
`;

function resolveWith(pretrain = '') {
  const d = mkdtempSync(join(tmpdir(), 'qcb-keys-'));
  const f = join(d, 'p.yaml');
  writeFileSync(f, pretrain ? `${BASE}pretrain:\n${pretrain}` : BASE);
  return loadProtocol(f, { env: {}, cwd: d });
}

test('knn_monitor, projector_dim and augmentations change the SSL encoder hash and nothing else', () => {
  const base = resolveWith();
  const variants = {
    knn_monitor: resolveWith('  knn_monitor: true\n'),
    projector_dim: resolveWith('  projector_dim: 1024\n'),
    augmentations: resolveWith('  augmentations: [rot90, flip]\n'),
    schedule: resolveWith('  schedule: constant\n'),
    method_width: resolveWith('  methods: { simclr: { proj_hidden_dim: 512 } }\n'),
  };
  const id = (p: typeof base, e: 'simclr' | 'deepclusterv2' | 'random-resnet18') => encoderId(p, e, 0);
  for (const [k, p] of Object.entries(variants)) {
    assert.notEqual(id(p, 'simclr'), id(base, 'simclr'), `${k} changes the SSL encoder`);
    assert.equal(id(p, 'random-resnet18'), id(base, 'random-resnet18'), `${k} leaves the untrained control alone`);
    const cells = (q: typeof base) =>
      expandCells(q)
        .filter((c) => c.key.encoder === 'simclr')
        .map((c) => c.trainId);
    assert.notDeepEqual(cells(p), cells(base), `${k} changes the trained models of SSL cells`);
  }
  // a per-method width only touches that method
  assert.equal(id(variants.method_width, 'deepclusterv2'), id(base, 'deepclusterv2'));
  // the augmentation list is a set
  assert.equal(
    id(resolveWith('  augmentations: [flip, rot90]\n'), 'simclr'),
    id(variants.augmentations, 'simclr'),
    'order of the augmentation list does not matter',
  );
  // the loss-logging interval does not shape the encoder
  assert.equal(id(resolveWith('  log_every: 3\n'), 'simclr'), id(base, 'simclr'));
});

test('projector_dim is every method’s hidden width unless the method sets its own', () => {
  const base = resolveWith();
  assert.equal(base.pretrain.projector_dim, 2048);
  assert.equal(sslHyper(base, 'simclr').proj_hidden_dim, 2048);
  const p = resolveWith('  projector_dim: 256\n  methods: { swav: { proj_hidden_dim: 64 } }\n');
  assert.equal(sslHyper(p, 'simclr').proj_hidden_dim, 256);
  assert.equal(sslHyper(p, 'deepclusterv2').proj_hidden_dim, 256);
  assert.equal(sslHyper(p, 'deepclusterv2').proj_output_dim, 128, 'output widths stay per method');
  assert.equal(sslHyper(p, 'swav').proj_hidden_dim, 64, 'the method’s own width wins');
  assert.equal(sslHyper(p, 'swav').num_prototypes, 500);
});

test('a resolved protocol’s pretrain keys, the kNN monitor included, reach the pretraining options', async () => {
  const S = 8;
  const n = 12;
  const crops = new Uint8Array(n * 3 * S * S).map((_, i) => (i * 37) % 251);
  const source = memoryCropSource(crops, n, 3, S, 'memory');
  const annotations: Annotation[] = Array.from({ length: 8 }, (_, i) => ({
    crop_id: `c${i + 2}`,
    label: i % 2 ? 'abnormal' : 'normal',
    split: i < 5 ? 'train' : 'test',
  })) as Annotation[];
  const index = new Map(Array.from({ length: n }, (_, i) => [`c${i}`, i]));
  const data = { source, index, annotations, annotationsFile: 'ann.csv' };

  const off = await sslPretrainOptions(resolveWith(), 'simclr', data);
  assert.equal(off.monitor, undefined, 'no monitor unless asked for');
  assert.equal(off.weightDecay, SSL_WEIGHT_DECAY);
  assert.equal(off.optimizer, 'sgd');
  assert.equal(off.schedule, 'warmup_cosine');
  assert.equal(off.hyper?.proj_hidden_dim, 2048);
  assert.deepEqual(
    { ...DEFAULT_AUGMENT, ...off.augment },
    DEFAULT_AUGMENT,
    'all five augmentations: the default views',
  );

  const p = resolveWith(
    '  knn_monitor: true\n  projector_dim: 512\n  augmentations: [rot90, shift]\n  schedule: constant\n  optimizer: lars\n',
  );
  const on = await sslPretrainOptions(p, 'simclr', data);
  assert.ok(on.monitor, 'knn_monitor: true gives the pretraining a monitor');
  assert.deepEqual(on.monitor.train, [0, 1, 2, 3, 4]);
  assert.deepEqual(on.monitor.test, [5, 6, 7]);
  assert.equal(on.monitor.crops.n, 8);
  assert.deepEqual(
    Array.from(on.monitor.crops.data.subarray(0, 3 * S * S)),
    Array.from(crops.subarray(2 * 3 * S * S, 3 * 3 * S * S)),
    'monitor rows are the annotated crops of the source',
  );
  assert.equal(on.hyper?.proj_hidden_dim, 512);
  assert.equal(on.schedule, 'constant');
  assert.equal(on.optimizer, 'lars');
  assert.deepEqual(on.augment, sslAugment(['rot90', 'shift']));
  assert.equal(on.augment?.flip, 0);
  assert.equal(on.augment?.transpose, 0);
  assert.deepEqual(on.augment?.scale, [1, 1]);
  assert.equal(on.augment?.shift, DEFAULT_AUGMENT.shift);
});

test('the protocol refuses what SSL pretraining cannot do, with the allowed values', () => {
  assert.throws(
    () => resolveWith('  optimizer: adamw\n'),
    (e: Error & { context?: { allowed?: string } }) =>
      /optimizer/.test(e.message) && /sgd, lars/.test(String(e.context?.allowed)),
  );
  assert.throws(() => resolveWith('  augmentations: [rot90, blur]\n'), /blur/);
});

test('pretrain.per_seed: each seed pretrains and initialises its own encoders; false shares one (the paper’s)', async () => {
  const twoSeeds = (perSeed?: boolean) => {
    const d = mkdtempSync(join(tmpdir(), 'qcb-seeds-'));
    const f = join(d, 'p.yaml');
    const text = BASE.replace('seeds: [0]', 'seeds: [0, 1]').replace(
      'encoders: [simclr, deepclusterv2, random-resnet18]',
      'encoders: [simclr, random-resnet18, resnet18-fractaldb, soq-cnn, resnet18]',
    );
    writeFileSync(f, perSeed === undefined ? text : `${text}pretrain:\n  per_seed: ${perSeed}\n`);
    return loadProtocol(f, { env: {}, cwd: d });
  };
  const encoderIds = (p: ReturnType<typeof twoSeeds>, encoder: string) =>
    new Set(
      expandCells(p)
        .filter((c) => c.key.encoder === encoder)
        .map((c) => c.encoderId),
    );
  const on = twoSeeds(true);
  assert.equal(twoSeeds().pretrain.per_seed, true, 'the default is one pretraining per seed');
  assert.equal(protocolHash(twoSeeds()), protocolHash(on));
  // two seeds: two SSL encoders, so two pretrainings (cache/encoders/<encoderId>), each seeded by its cell's seed
  assert.equal(encoderIds(on, 'simclr').size, 2);
  assert.deepEqual([encoderSeed(on, 'simclr', 0), encoderSeed(on, 'simclr', 1)], [0, 1]);
  assert.notEqual(encoderId(on, 'simclr', 0), encoderId(on, 'simclr', 1));
  const S = 8;
  const source = memoryCropSource(new Uint8Array(4 * 3 * S * S), 4, 3, S, 'memory');
  const data = { source, index: new Map<string, number>(), annotations: [], annotationsFile: 'ann.csv' };
  assert.equal((await sslPretrainOptions(on, 'simclr', data, encoderSeed(on, 'simclr', 1) ?? 0)).seed, 1);
  // the seeded encoders initialise per seed too; ImageNet weights are files, not seeded
  for (const e of ['random-resnet18', 'resnet18-fractaldb', 'soq-cnn']) assert.equal(encoderIds(on, e).size, 2, e);
  assert.equal(encoderIds(on, 'resnet18').size, 1);
  assert.equal(encoderSeed(on, 'resnet18', 1), null);

  const off = twoSeeds(false);
  for (const e of ['simclr', 'random-resnet18', 'resnet18-fractaldb', 'soq-cnn', 'resnet18'])
    assert.equal(encoderIds(off, e).size, 1, `${e}: one encoder for every seed`);
  assert.deepEqual([encoderSeed(off, 'simclr', 0), encoderSeed(off, 'simclr', 1)], [0, 0]);
  assert.equal((await sslPretrainOptions(off, 'simclr', data, encoderSeed(off, 'simclr', 1) ?? 0)).seed, 0);
  assert.notEqual(protocolHash(off), protocolHash(on));
});

test('the shipped protocols keep the single pretraining (per_seed: false) and so their ids', () => {
  for (const f of ['full', 'quick', 'label-budget', 'domain-shift', 'second-order', 'quick-sgd']) {
    const p = loadProtocol(fileURLToPath(new URL(`../../protocols/${f}.yaml`, import.meta.url)), {
      env: { QCBENCH_DATA: '/nonexistent', QCBENCH_ANNOTATIONS: '/nonexistent' },
    });
    assert.equal(p.pretrain.per_seed, false, f);
    const ssl = expandCells(p).filter((c) => c.key.encoder === 'simclr');
    if (ssl.length) assert.equal(new Set(ssl.map((c) => c.encoderId)).size, 1, f);
  }
});
