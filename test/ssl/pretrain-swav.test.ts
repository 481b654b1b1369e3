import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ends, pretrainAgainstControl, shortPretrain } from './_pretrain-case.js';

test('swav: a short pretraining on generated crops lowers the loss', async () => {
  // SwAV's loss changes definition twice early on: when the queue has filled (codes are then computed over batch +
  // queue; queue 16 = one batch, full after the first step) and when the prototypes unfreeze after epoch 1. The
  // decrease is measured from the first epoch with both in place (epoch 2) to the end. Its clustering objective is
  // noisier than the others' on 32 crops, so this test holds the data still: one batch of 16 crops, views without
  // augmentation (the loss is then a deterministic function of the weights), and a lower lr than the other tests
  // (at 0.05 the unfrozen prototypes overshoot before the loss falls).
  const noAugment = { rot90: false, flip: 0, transpose: 0, shiftScaleP: 0 };
  const { res, cleanup } = await shortPretrain('swav', {
    hyper: { num_prototypes: 8, queue_size: 16 },
    epochs: 8,
    lr: 0.01,
    maxImagesPerEpoch: 16,
    augment: noAugment,
  });
  try {
    const l = res.record.loss;
    assert.equal(l.length, 8); // 8 epochs × 1 step
    assert.ok(l.every((p) => Number.isFinite(p.loss)));
    const { first, last } = ends(l.filter((p) => p.epoch >= 1));
    assert.ok(last < first, `swav loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
  } finally {
    cleanup();
  }
});

test('swav: 40 pretraining steps on a small synthetic crop store beat the untrained control with kNN (k 5), Euclidean and cosine', async (t) => {
  // 32 prototypes (and a 64-crop queue) for 320 crops: the paper's 500 need more images than clusters
  const r = await pretrainAgainstControl('swav', { num_prototypes: 32, queue_size: 64 });
  const { first, last } = ends(
    r.loss.filter((p) => p.epoch >= 1),
    4,
  );
  assert.ok(last < first, `swav loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
  const msg = `swav kNN ${JSON.stringify(r.ssl)} vs random-resnet18 ${JSON.stringify(r.control)}`;
  t.diagnostic(msg);
  assert.ok(r.ssl.euclidean > r.control.euclidean, msg);
  assert.ok(r.ssl.cosine > r.control.cosine, msg);
});
