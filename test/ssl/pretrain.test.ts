import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveEncoder } from '../../src/encoders/registry.js';
import { resnet18Graph } from '../../src/encoders/resnet18.js';
import { loadSession, ortF32 } from '../../src/engine/runtime/session.js';
import { randu } from '../../src/engine/ir/builder.js';
import { importOnnx } from '../../src/engine/onnx/import.js';
import { QcbError } from '../../src/errors.js';
import { exportBackbone } from '../../src/ssl/pretrain.js';
import { shortPretrain, testCrops } from './_pretrain-case.js';

test('pretraining resumes from its last checkpoint to the same result; the export is a working encoder', async () => {
  const settings = { epochs: 2, batchSize: 8, maxImagesPerEpoch: 16, lr: 0.02 } as const;
  // uninterrupted run
  const full = await shortPretrain('simclr', settings);
  // interrupted run: fails at the first step of epoch 2, after epoch 1's checkpoint
  const dir = mkdtempSync(join(tmpdir(), 'qcb-ssl-resume-'));
  try {
    await assert.rejects(
      shortPretrain('simclr', {
        ...settings,
        outDir: dir,
        onStep: (p) => {
          if (p.epoch === 1) throw new Error('simulated crash');
        },
      }),
      /simulated crash/,
    );
    const resumed = await shortPretrain('simclr', { ...settings, outDir: dir });
    assert.equal(resumed.res.resumedFromEpoch, 0);
    assert.equal(resumed.res.record.loss.length, full.res.record.loss.length);
    resumed.res.record.loss.forEach((p, i) => {
      assert.ok(
        Math.abs(p.loss - full.res.record.loss[i].loss) < 1e-3 * Math.abs(p.loss),
        `step ${i}: ${p.loss} vs ${full.res.record.loss[i].loss}`,
      );
    });
    const a = importOnnx(resumed.res.onnx);
    const b = importOnnx(full.res.onnx);
    for (const k of ['conv1.weight', 'layer4.1.bn2.running_var']) {
      const x = a.initializers.get(k)!.data as Float32Array;
      const y = b.initializers.get(k)!.data as Float32Array;
      let d = 0;
      for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
      assert.ok(d < 1e-4, `${k} differs by ${d}`);
    }

    // the export: input N×3×S×S → features N×512, any batch and crop size, trained weights, readable by the registry
    const init = resnet18Graph({ seed: 1 }).graph.initializers.get('conv1.weight')!.data as Float32Array;
    const trained = b.initializers.get('conv1.weight')!.data as Float32Array;
    assert.ok(
      trained.some((v, i) => Math.abs(v - init[i]) > 1e-6),
      'weights changed by training',
    );
    const sess = await loadSession(readFileSync(full.res.onnx), { noCache: true });
    for (const [n, s] of [
      [3, 32],
      [2, 64],
    ]) {
      const out = await sess.run({ input: ortF32(randu([n, 3, s, s], -1, 1, 4).data as Float32Array, [n, 3, s, s]) }, [
        'features',
      ]);
      assert.deepEqual(out.features.dims, [n, 512]);
      assert.ok((out.features.data as Float32Array).every(Number.isFinite));
    }
    const enc = resolveEncoder(full.res.onnx);
    assert.equal(enc.kind, 'ssl');
    const eg = await enc.load({ cropSize: 32, seed: 1 });
    assert.equal(eg.dim, 512);
    assert.deepEqual(eg.preprocess?.mean, [0.485, 0.456, 0.406]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    full.cleanup();
  }
});

test('a diverging pretraining stops with a run-failure code naming the method and the last good checkpoint', async () => {
  await assert.rejects(
    shortPretrain('vicreg', { lr: 1e4, warmupEpochs: 0, epochs: 3, batchSize: 8, maxImagesPerEpoch: 16 }),
    (e: unknown) =>
      e instanceof QcbError &&
      (e.code === 'QCB_NAN_LOSS' || e.code === 'QCB_DIVERGED') &&
      e.exitCode === 1 &&
      /vicreg/.test(e.message) &&
      /checkpoint/.test(e.context.fix ?? ''),
  );
});

test('pretraining at lr 1e6 fails with QCB_DIVERGED naming the step and "none", and writes no encoder or record', async () => {
  // SimCLR's loss stays finite here (it falls to ln(2N−1): the projections collapse) while BN statistics blow up to
  // ~1e25 and the exported encoder's features become NaN: the epoch-end check, not the loss, catches it.
  const dir = mkdtempSync(join(tmpdir(), 'qcb-ssl-diverge-'));
  try {
    await assert.rejects(
      shortPretrain('simclr', { lr: 1e6, epochs: 2, batchSize: 8, maxImagesPerEpoch: 16, outDir: dir }),
      (e: unknown) => {
        assert.ok(e instanceof QcbError, String(e));
        assert.ok(e.code === 'QCB_DIVERGED' || e.code === 'QCB_NAN_LOSS', e.code);
        assert.equal(e.exitCode, 1);
        assert.match(e.message, /simclr pretraining diverged at step \d+ of \d+/);
        assert.match(e.message, /last good checkpoint: none/);
        assert.match(e.context.fix ?? '', /pretrain\.lr/);
        return true;
      },
    );
    const left = readdirSync(dir);
    for (const f of ['encoder.onnx', 'pretrain.json', 'loss.csv', 'checkpoint.qcbckpt'])
      assert.ok(!left.includes(f), `${f} was written: ${left}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exporting a collapsed (all-zero) encoder is refused with QCB_DIVERGED; an untrained one exports', async () => {
  const c = testCrops();
  const n = 16;
  const per = 3 * c.size * c.size;
  const batch = {
    data: Float32Array.from(c.data.subarray(0, n * per), (v) => (v / 255 - 0.45) / 0.225),
    n,
    size: c.size,
  };
  const { graph } = resnet18Graph({ seed: 1 });
  const zero = new Map([...graph.initializers].map(([k, t]) => [k, { ...t, data: new Float32Array(t.data.length) }]));
  const dir = mkdtempSync(join(tmpdir(), 'qcb-ssl-collapse-'));
  try {
    const bad = join(dir, 'zero.onnx');
    await assert.rejects(
      exportBackbone(bad, zero, 1, {}, batch),
      (e: unknown) => e instanceof QcbError && e.code === 'QCB_DIVERGED' && /collapsed/.test(e.message),
    );
    assert.ok(!existsSync(bad), 'nothing written');
    const good = join(dir, 'untrained.onnx');
    await exportBackbone(good, new Map(graph.initializers), 1, {}, batch);
    assert.ok(existsSync(good));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
