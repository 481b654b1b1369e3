import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveTask, runTask } from '../../src/downstream/registry.js';
import { resolveEncoder } from '../../src/encoders/registry.js';

test('the quadratic task separates a class boundary the linear probe cannot (same frozen features)', async () => {
  // Features on a sphere boundary: abnormal when far from the centre in any direction (not linearly separable).
  const D = 6;
  const make = (n: number, seed: number) => {
    let s = seed;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const data = new Float32Array(n * D);
    const labels: string[] = [];
    for (let i = 0; i < n; i++) {
      let r2 = 0;
      for (let j = 0; j < D; j++) {
        const v = rnd();
        data[i * D + j] = v;
        r2 += v * v;
      }
      labels.push(r2 > D / 3 ? 'abnormal' : 'normal');
    }
    return { data, labels };
  };
  const tr = make(300, 1);
  const te = make(200, 2);
  const eg = await resolveEncoder('random-resnet18').load({ cropSize: 32, seed: 0 });
  const empty = { data: new Uint8Array(0), n: 0, channels: 3, size: 32 };
  const ctx = (settings: Record<string, unknown>) => ({
    eg,
    preprocess: { mean: [0, 0, 0], std: [1, 1, 1] },
    train: { crops: empty, labels: tr.labels, ids: tr.labels.map((_, i) => `t${i}`) },
    test: { crops: empty, labels: te.labels, ids: te.labels.map((_, i) => `e${i}`) },
    seed: 0,
    settings,
    features: { train: { data: tr.data, rows: 300, cols: D }, test: { data: te.data, rows: 200, cols: D } },
    threads: 1,
  });
  const acc = (pred: string[]) => pred.filter((p, i) => p === te.labels[i]).length / pred.length;
  const q = await runTask(resolveTask('quadratic'), ctx({ steps: 300, lr: 0.05 }));
  const l = await runTask(resolveTask('linear'), ctx({ epochs: 60, milestones: [40], lr: 0.01 }));
  assert.equal(q.score.length, 200);
  assert.ok(q.score.every((s) => s >= 0 && s <= 1));
  assert.ok(acc(q.pred) > 0.85, `quadratic head accuracy ${acc(q.pred)}`);
  assert.ok(acc(l.pred) < 0.8, `linear probe accuracy ${acc(l.pred)}`);
});
