import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ends, pretrainAgainstControl, shortPretrain } from './_pretrain-case.js';

test('barlow_twins: a short pretraining on generated crops lowers the loss', async () => {
  const { res, cleanup } = await shortPretrain('barlow_twins', {});
  try {
    const l = res.record.loss;
    assert.equal(l.length, 10); // 5 epochs × 2 steps
    assert.ok(l.every((p) => Number.isFinite(p.loss)));
    const { first, last } = ends(l);
    assert.ok(last < first, `barlow_twins loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
    assert.equal(res.record.method, 'barlow_twins');
    assert.ok(res.record.images_per_second > 0);
  } finally {
    cleanup();
  }
});

test('barlow_twins: 40 pretraining steps on a small synthetic crop store beat the untrained control with kNN (k 5), Euclidean and cosine', async (t) => {
  const r = await pretrainAgainstControl('barlow_twins', {});
  const { first, last } = ends(
    r.loss.filter((p) => p.epoch >= 1),
    4,
  );
  assert.ok(last < first, `barlow_twins loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
  const msg = `barlow_twins kNN ${JSON.stringify(r.ssl)} vs random-resnet18 ${JSON.stringify(r.control)}`;
  t.diagnostic(msg);
  assert.ok(r.ssl.euclidean > r.control.euclidean, msg);
  assert.ok(r.ssl.cosine > r.control.cosine, msg);
});
