import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ends, shortPretrain } from './_pretrain-case.js';

test('deepclusterv2: a short pretraining on generated crops lowers the loss', async () => {
  const { res, cleanup } = await shortPretrain('deepclusterv2', { hyper: { num_prototypes: 8 } });
  try {
    const l = res.record.loss;
    assert.equal(l.length, 10); // 5 epochs × 2 steps
    assert.ok(l.every((p) => Number.isFinite(p.loss)));
    const { first, last } = ends(l);
    assert.ok(last < first, `deepclusterv2 loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
    assert.equal(res.record.method, 'deepclusterv2');
    assert.ok(res.record.images_per_second > 0);
  } finally {
    cleanup();
  }
});
