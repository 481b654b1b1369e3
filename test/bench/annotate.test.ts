import assert from 'node:assert/strict';
import { test } from 'node:test';
import { intensityFeatures } from '../../src/annotate/intensity.js';
import { type BinaryLabel, simulateAnnotation } from '../../src/bench/annotate.js';
import { synthCrops } from '../downstream/synth-crops.js';

test('the annotation simulation counts looks to the targets and to F1 levels, for both strategies', () => {
  const d = synthCrops(120, 48, 6);
  const f = intensityFeatures(d.crops);
  const truth = d.labels as BinaryLabel[];
  const o = { batch: 8, targets: { normal: 15, abnormal: 15 }, heldOut: 10, clusters: 6, f1Levels: [0.5, 1.01] };
  for (const strategy of ['proposals', 'random'] as const) {
    const r = simulateAnnotation(f, truth, d.types, strategy, o);
    assert.deepEqual(r, simulateAnnotation(f, truth, d.types, strategy, o), 'deterministic by seed');
    assert.deepEqual(r.pool, { normal: 50, abnormal: 50 });
    assert.ok(
      r.looks_to_targets !== null && r.looks_to_targets >= 30 && r.looks_to_targets <= 100,
      `${r.looks_to_targets}`,
    );
    assert.ok(r.collected.normal >= 15 && r.collected.abnormal >= 15);
    assert.ok(r.looks_to_all_types !== null && r.looks_to_all_types <= 100);
    assert.equal(r.looks_to_f1['1.01'], null, 'an F1 above 1 is never reached');
    assert.ok(r.curve.length > 0 && r.curve.every(([, v]) => v >= 0 && v <= 1));
    assert.ok(r.f1_at_targets !== null);
  }
});
