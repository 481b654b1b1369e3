import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { command as pretrainCmd } from '../../src/cli/pretrain.js';
import { CropStoreWriter } from '../../src/data/store/crop-store.js';
import { QcbError } from '../../src/errors.js';
import { SSL_WEIGHT_DECAY } from '../../src/protocol/defaults.js';
import { quietLog, testCrops } from './_pretrain-case.js';

/** A real crop store (src/data/store) of the generated test crops, with ids and an annotation file. */
async function makeStore(dir: string) {
  const c = testCrops();
  const path = join(dir, 'store');
  const w = await CropStoreWriter.create(path, {
    channels: ['Hoechst', 'Ph_golgi', 'Mito'],
    size: c.size,
    dataset: 'synthetic-test',
  });
  const metas = c.labels.map((_, i) => ({
    crop_id: `P1_A01_s1_${i}_${i}`,
    plate: 'P1',
    well: 'A01',
    site: 1,
    field_id: 'P1_A01_s1',
    x: i,
    y: i,
    area: 0,
    source_files: 'synthetic',
    metadata: {},
  }));
  await w.append(c.data, metas);
  await w.finish();
  const ann = [
    'crop_id,label,artefact_type,split,source',
    ...c.labels.map(
      (l, i) =>
        `P1_A01_s1_${i}_${i},${l},${l === 'abnormal' ? 'other' : 'none'},${i % 2 ? 'test' : 'train'},synthetic-ground-truth`,
    ),
  ];
  writeFileSync(join(dir, 'ann.csv'), `${ann.join('\n')}\n`);
  return { path, annotations: join(dir, 'ann.csv') };
}

test('qcbench pretrain: store in, encoder + record + checkpoint out, kNN monitor; bad input is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-ssl-cli-'));
  try {
    const s = await makeStore(dir);
    const out = join(dir, 'out');
    const code = await pretrainCmd.run(
      [
        '--method',
        'vicreg',
        '--store',
        s.path,
        '--out',
        out,
        '--epochs',
        '1',
        '--batch',
        '8',
        '--max-images',
        '16',
        '--set',
        'proj_hidden_dim=128',
        '--set',
        'proj_output_dim=32',
        '--monitor',
        s.annotations,
        '--augment',
        'rot90,flip',
      ],
      { log: quietLog },
    );
    assert.equal(code, 0);
    for (const f of ['encoder.onnx', 'pretrain.json', 'checkpoint.qcbckpt', 'loss.csv'])
      assert.ok(existsSync(join(out, f)), f);
    const rec = JSON.parse(readFileSync(join(out, 'pretrain.json'), 'utf8'));
    assert.equal(rec.schema, 'qcbench.pretrain/1');
    assert.equal(rec.method, 'vicreg');
    assert.equal(rec.loss.length, 2);
    assert.equal(rec.settings.hyper.proj_output_dim, 32);
    assert.equal(rec.settings.hyper.sim_loss_weight, 25);
    // one weight decay for the protocol, pretrain() and the CLI (src/protocol/defaults.ts)
    assert.equal(rec.settings.weight_decay, SSL_WEIGHT_DECAY);
    assert.match(pretrainCmd.usage, new RegExp(`--weight-decay X +\\(${SSL_WEIGHT_DECAY}`));
    // --augment picks the paper's augmentations by name; the others are off
    assert.equal(rec.settings.augment.rot90, true);
    assert.equal(rec.settings.augment.flip, 0.5);
    assert.equal(rec.settings.augment.transpose, 0);
    assert.equal(rec.settings.augment.shiftScaleP, 0);
    assert.deepEqual(
      rec.knn_monitor.map((k: { epoch: number }) => k.epoch),
      [-1, 0],
    );
    for (const k of rec.knn_monitor) assert.ok(k.accuracy >= 0 && k.accuracy <= 100);

    const usage = async (args: string[], code: string) =>
      assert.rejects(
        pretrainCmd.run(args, { log: quietLog }),
        (e: unknown) => e instanceof QcbError && e.code === code && e.exitCode === 2,
      );
    await usage(['--method', 'simclrr', '--store', s.path, '--out', out], 'QCB_UNKNOWN_NAME');
    await usage(['--method', 'simclr', '--out', out], 'QCB_USAGE');
    await usage(['--method', 'simclr', '--store', join(dir, 'nope'), '--out', out], 'QCB_STORE');
    await usage(['--method', 'simclr', '--store', s.path, '--out', out, '--set', 'temp=0.1'], 'QCB_USAGE');
    await usage(['--method', 'simclr', '--store', s.path, '--out', out, '--channels', 'DAPI'], 'QCB_STORE');
    await usage(['--method', 'simclr', '--store', s.path, '--out', out, '--augment', 'rot90,blur'], 'QCB_USAGE');
    // other settings into a folder holding a checkpoint: refused, not silently mixed
    await usage(
      ['--method', 'vicreg', '--store', s.path, '--out', out, '--epochs', '1', '--batch', '8', '--max-images', '16'],
      'QCB_USAGE',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
