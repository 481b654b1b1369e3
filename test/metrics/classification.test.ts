import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '../../src/util/random.js';
import {
  accuracy,
  confusionMatrix,
  evaluate,
  recallByType,
  rocAuc,
  weightedF1,
  weightedRocAuc,
} from '../../src/metrics/classification.js';
import type { Prediction } from '../../src/results/schema.js';

const C = ['normal', 'abnormal'] as const;
const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

test('confusion, accuracy and weighted F1 on a hand-computed case', () => {
  // 4 abnormal, 2 normal; one abnormal missed, both normals flagged.
  const t = ['abnormal', 'abnormal', 'abnormal', 'abnormal', 'normal', 'normal'];
  const p = ['abnormal', 'abnormal', 'abnormal', 'normal', 'abnormal', 'abnormal'];
  assert.deepEqual(confusionMatrix(t, p, C), [
    [0, 2],
    [1, 3],
  ]);
  close(accuracy(t, p), 50);
  // F1_normal = 0 (no tp); F1_abnormal = 2·3/(2·3+2+1) = 2/3; weighted = (2·0 + 4·2/3)/6 = 4/9.
  close(weightedF1(t, p, C), 400 / 9);
});

test('weighted F1 of a second case differs from accuracy as sklearn computes it', () => {
  // sklearn: f1_score([1,1,1,0,0,0,0,0],[1,0,0,0,0,0,0,1], average='weighted')
  const t = ['a', 'a', 'a', 'n', 'n', 'n', 'n', 'n'];
  const p = ['a', 'n', 'n', 'n', 'n', 'n', 'n', 'a'];
  // class a: tp1 fp1 fn2 → F1 = 2/5; class n: tp4 fp2 fn1 → F1 = 8/11; weighted = (3·0.4 + 5·8/11)/8
  close(weightedF1(t, p, ['n', 'a']), (100 * (3 * 0.4 + (5 * 8) / 11)) / 8);
  close(accuracy(t, p), 62.5);
});

test('ROC AUC counts ties between classes as one half (midranks)', () => {
  const pos = [true, true, true, false, false];
  const s = [0.9, 0.5, 0.5, 0.5, 0.1];
  // pairs (pos, neg): (.9,.5)=1 (.9,.1)=1 (.5,.5)=½ (.5,.1)=1 twice → 5/6
  close(rocAuc(pos, s), 5 / 6);
  close(rocAuc([true, false], [0.3, 0.3]), 0.5);
  close(rocAuc([true, true, false, false], [0.9, 0.8, 0.2, 0.1]), 1);
  close(rocAuc([true, true, false, false], [0.1, 0.2, 0.8, 0.9]), 0);
  assert.ok(Number.isNaN(rocAuc([true, true], [0.1, 0.2])));
});

test('AUC equals the pairwise definition and the weighted AUC equals the plain AUC for two classes', () => {
  const rng = mulberry32(7);
  for (let rep = 0; rep < 5; rep++) {
    const n = 60;
    const pos = Array.from({ length: n }, () => rng() < 0.4);
    // rounded scores create many ties
    const s = pos.map((p) => Math.round((rng() + (p ? 0.3 : 0)) * 10) / 10);
    let num = 0;
    let den = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++)
        if (pos[i] && !pos[j]) {
          den++;
          num += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
        }
    close(rocAuc(pos, s), num / den, 1e-12);
    const labels = pos.map((p) => (p ? 'abnormal' : 'normal'));
    close(weightedRocAuc(labels, s, C), (100 * num) / den, 1e-9);
  }
});

test('recall per artefact type counts only abnormal images with a type', () => {
  const t = ['abnormal', 'abnormal', 'abnormal', 'normal', 'abnormal'];
  const p = ['abnormal', 'normal', 'abnormal', 'abnormal', 'abnormal'];
  const types = ['blur', 'blur', 'debris', undefined, undefined];
  assert.deepEqual(recallByType(t, p, types, 'abnormal'), {
    blur: { recall: 50, n: 2 },
    debris: { recall: 100, n: 1 },
  });
});

test('evaluate fills CellMetrics with intervals that contain the estimate and are reproducible', () => {
  const rng = mulberry32(3);
  const preds: Prediction[] = [];
  for (let i = 0; i < 130; i++) {
    const abnormal = i % 2 === 0;
    const score = Math.min(1, Math.max(0, (abnormal ? 0.65 : 0.35) + (rng() - 0.5) * 0.6));
    preds.push({
      crop_id: `c${i}`,
      label: abnormal ? 'abnormal' : 'normal',
      pred: score >= 0.5 ? 'abnormal' : 'normal',
      score,
      ...(abnormal ? { artefact_type: i % 4 === 0 ? 'blur' : 'debris' } : {}),
    });
  }
  const m = evaluate(preds, { bootstrap: 300, seed: 1, nTrain: 350 });
  assert.deepEqual(m.classes, ['normal', 'abnormal']);
  assert.equal(m.n_test, 130);
  assert.equal(m.n_train, 350);
  assert.equal(
    m.confusion.flat().reduce((a, b) => a + b, 0),
    130,
  );
  close(m.accuracy, (100 * (m.confusion[0][0] + m.confusion[1][1])) / 130);
  assert.ok(m.ci95);
  for (const k of ['accuracy', 'f1', 'auc'] as const) {
    const [lo, hi] = m.ci95[k];
    assert.ok(lo <= m[k] && m[k] <= hi, `${k}: ${lo} ≤ ${m[k]} ≤ ${hi}`);
    assert.ok(hi - lo > 1 && hi - lo < 40, `${k} interval width ${hi - lo}`);
  }
  assert.deepEqual(Object.keys(m.recall_by_type ?? {}), ['blur', 'debris']);
  assert.deepEqual(evaluate(preds, { bootstrap: 300, seed: 1, nTrain: 350 }), m);
  assert.notDeepEqual(evaluate(preds, { bootstrap: 300, seed: 2, nTrain: 350 }).ci95, m.ci95);
});

test('evaluate rejects more than two classes with a QcbError naming the labels', () => {
  const preds: Prediction[] = ['x', 'y', 'z'].map((l, i) => ({ crop_id: String(i), label: l, pred: l, score: 0.5 }));
  assert.throws(
    () => evaluate(preds, { bootstrap: 0 }),
    (e: Error & { code?: string }) => e.code === 'QCB_ANNOTATIONS',
  );
});
