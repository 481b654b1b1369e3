import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Annotation, formatAnnotations, readAnnotations } from '../../src/data/annotations.js';
import {
  annotationStats,
  cropPlace,
  defaultTestCount,
  groupOf,
  readAnnotationsToSplit,
  SPLIT_GROUPS,
  splitAnnotations,
} from '../../src/data/annotations-split.js';
import { QcbError } from '../../src/errors.js';
import { Rng } from '../../src/util/random.js';

const ROOT = new URL('../../', import.meta.url).pathname;

/** A screen's worth of annotations: plates × wells × sites fields with a varying number of crops of each class. */
function screenRows(o: { plates: string[]; wells: number; sites: number; seed: number; abnormalRate?: number }) {
  const rng = new Rng(o.seed);
  const rows: Annotation[] = [];
  for (const plate of o.plates)
    for (let w = 0; w < o.wells; w++)
      for (let s = 1; s <= o.sites; s++) {
        const well = `B${String(w + 2).padStart(2, '0')}`;
        // fields differ: some mostly abnormal (a blurred field), most mostly normal
        const rate = rng.chance(0.25) ? 0.9 : (o.abnormalRate ?? 0.35);
        const n = 3 + rng.int(10);
        for (let k = 0; k < n; k++) {
          const abn = rng.chance(rate);
          rows.push({
            crop_id: `${plate}_${well}_s${s}_${10 + k * 20}_${30 + k}`,
            label: abn ? 'abnormal' : 'normal',
            artefact_type: abn ? rng.pick(['blur', 'debris', 'haze']) : 'none',
            split: 'train',
            source: 'manual:test',
          });
        }
      }
  return rows;
}

function sideGroups(rows: Annotation[], group: (typeof SPLIT_GROUPS)[number]) {
  const sides = new Map<string, Set<string>>();
  for (const r of rows) {
    const g = groupOf(r.crop_id, group);
    sides.set(g, (sides.get(g) ?? new Set()).add(r.split));
  }
  return [...sides.values()];
}

test('crop ids give plate, well and site; plates may contain underscores', () => {
  assert.deepEqual(cropPlace('Week4_27481_G10_s2_640_512'), { plate: 'Week4_27481', well: 'G10', site: 2 });
  assert.deepEqual(cropPlace('90001_B02_s1_171_75'), { plate: '90001', well: 'B02', site: 1 });
  assert.equal(groupOf('Week4_27481_G10_s2_640_512', 'field'), 'Week4_27481_G10_s2');
  assert.equal(groupOf('Week4_27481_G10_s2_640_512', 'well'), 'Week4_27481_G10');
  assert.equal(groupOf('Week4_27481_G10_s2_640_512', 'plate'), 'Week4_27481');
  assert.equal(defaultTestCount(480), 130);
});

for (const group of SPLIT_GROUPS) {
  test(`--group ${group}: no ${group} on both sides, test classes balanced to within one crop`, () => {
    // enough groups of the unit to choose from: 40 small plates, or 6 plates × 6 wells × 4 sites
    const rows =
      group === 'plate'
        ? screenRows({ plates: Array.from({ length: 40 }, (_, i) => `P${i}`), wells: 1, sites: 2, seed: 7 })
        : screenRows({ plates: ['P1', 'P2', 'P3', 'P4', 'P5', 'P6'], wells: 6, sites: 4, seed: 7 });
    for (const [test, seed] of [
      [60, 1],
      [61, 2],
      [defaultTestCount(rows.length), 3],
    ] as const) {
      let want = test;
      let res: ReturnType<typeof splitAnnotations>;
      try {
        res = splitAnnotations(rows, { group, test: want, seed });
      } catch (e) {
        // whole plates (wells) rarely add up to exactly N: the refusal names the nearest sizes that balance
        assert.ok(e instanceof QcbError && e.code === 'QCB_ANNOTATIONS', String(e));
        assert.notEqual(group, 'field', 'fields of this screen balance at any size');
        const nearest = (e.context.value as { nearest: number[] }).nearest;
        assert.ok(nearest.length > 0);
        assert.match(String(e.context.fix), new RegExp(`--test ${nearest[0]}`));
        want = nearest[0];
        res = splitAnnotations(rows, { group, test: want, seed });
      }
      assert.equal(res.rows.length, rows.length);
      assert.deepEqual(
        res.rows.map((r) => r.crop_id),
        rows.map((r) => r.crop_id),
      );
      for (const sides of sideGroups(res.rows, group)) assert.equal(sides.size, 1, `${group} on both sides`);
      const t = res.rows.filter((r) => r.split === 'test');
      assert.equal(t.length, want);
      const abn = t.filter((r) => r.label === 'abnormal').length;
      assert.ok(Math.abs(abn - (want - abn)) <= 1, `test ${abn} abnormal vs ${want - abn} normal`);
      assert.deepEqual(res.test, { abnormal: abn, normal: want - abn });
      // labels, types and sources are kept
      for (const [i, r] of res.rows.entries()) assert.equal(r.label, rows[i].label);
    }
  });
}

test('the split is seeded: same seed, same split; another seed, another split', () => {
  const rows = screenRows({ plates: ['P1'], wells: 8, sites: 4, seed: 3 });
  const a = splitAnnotations(rows, { test: 40, seed: 5 }).rows.map((r) => r.split);
  const b = splitAnnotations(rows, { test: 40, seed: 5 }).rows.map((r) => r.split);
  const c = splitAnnotations(rows, { test: 40, seed: 6 }).rows.map((r) => r.split);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('--test all: a domain-shift set, every crop test', () => {
  const rows: Annotation[] = [];
  for (let i = 0; i < 20; i++)
    rows.push({
      crop_id: `W_A0${i % 4}_s1_${i}_${i}`,
      label: i % 2 ? 'abnormal' : 'normal',
      artefact_type: i % 2 ? 'blur' : 'none',
      split: 'train',
      source: 'manual:x',
    });
  const res = splitAnnotations(rows, { test: 'all' });
  assert.ok(res.rows.every((r) => r.split === 'test'));
  assert.deepEqual(res.test, { abnormal: 10, normal: 10 });
});

test('a set that cannot be balanced under the grouping is refused with its counts', () => {
  // two fields, each all of one class except one crop: no union of whole fields gives 5 + 5
  const mk = (field: string, label: 'normal' | 'abnormal', i: number): Annotation => ({
    crop_id: `P1_${field}_s1_${i}_${i}`,
    label,
    artefact_type: label === 'abnormal' ? 'debris' : 'none',
    split: 'train',
    source: 'manual:x',
  });
  const rows = [
    ...Array.from({ length: 12 }, (_, i) => mk('A01', i < 11 ? 'abnormal' : 'normal', i)),
    ...Array.from({ length: 12 }, (_, i) => mk('A02', i < 11 ? 'normal' : 'abnormal', i)),
  ];
  assert.throws(
    () => splitAnnotations(rows, { test: 10, file: 'labels.csv' }),
    (e: unknown) => {
      assert.ok(e instanceof QcbError);
      assert.equal(e.code, 'QCB_ANNOTATIONS');
      assert.equal(e.exitCode, 2);
      assert.equal(e.context.file, 'labels.csv');
      const v = e.context.value as Record<string, unknown>;
      assert.equal(v.abnormal, 12);
      assert.equal(v.normal, 12);
      assert.equal(v.fields, 2);
      assert.deepEqual(v['largest fields'], ['P1_A01_s1: 11 abnormal + 1 normal', 'P1_A02_s1: 1 abnormal + 11 normal']);
      assert.match(e.message, /5 crops of one class and 5 of the other/);
      assert.ok(e.context.fix);
      return true;
    },
  );
  // grouped per crop it would work: the same set split by field into 12 + 12 (both fields) is all test
  assert.deepEqual(splitAnnotations(rows, { test: 24 }).test, { abnormal: 12, normal: 12 });
  // too few of a class for the asked test size
  assert.throws(
    () => splitAnnotations(rows.slice(0, 13), { test: 6 }),
    (e: unknown) => e instanceof QcbError && /1 normal crops|2 normal/.test(e.message),
  );
  assert.throws(
    () => splitAnnotations(rows, { test: 100 }),
    (e: unknown) => e instanceof QcbError && /the set has 24 crops/.test(e.message),
  );
});

test('stats: counts by split, label, type and plate; leakage and imbalance warnings', () => {
  const rows: Annotation[] = [
    { crop_id: 'P1_A01_s1_1_1', label: 'abnormal', artefact_type: 'blur', split: 'train', source: 'm' },
    { crop_id: 'P1_A01_s1_2_2', label: 'normal', artefact_type: 'none', split: 'test', source: 'm' },
    { crop_id: 'P1_A01_s2_3_3', label: 'normal', artefact_type: 'none', split: 'train', source: 'm' },
    { crop_id: 'P2_A01_s1_4_4', label: 'abnormal', artefact_type: 'haze', split: 'test', source: 'm' },
    { crop_id: 'P2_A02_s1_4_4', label: 'abnormal', artefact_type: 'blur', split: 'test', source: 'm' },
  ];
  const s = annotationStats(rows);
  assert.equal(s.crops, 5);
  assert.deepEqual(s.bySplit, { train: { abnormal: 1, normal: 1 }, test: { abnormal: 2, normal: 1 } });
  assert.deepEqual(s.byLabel, { abnormal: 3, normal: 2 });
  assert.deepEqual(s.byType, { blur: { train: 1, test: 1 }, haze: { train: 0, test: 1 } });
  assert.deepEqual(s.byPlate.P1, { train: { abnormal: 1, normal: 1 }, test: { abnormal: 0, normal: 1 } });
  assert.deepEqual(s.byPlate.P2, { train: { abnormal: 0, normal: 0 }, test: { abnormal: 2, normal: 0 } });
  assert.deepEqual(s.leakage.field, { groups: 1, crops: 2, examples: ['P1_A01_s1 (1 train, 1 test)'] });
  assert.equal(s.leakage.well.groups, 1);
  assert.equal(s.leakage.plate.groups, 1);
  assert.equal(s.warnings.filter((w) => w.startsWith('leakage')).length, 3);
  assert.ok(s.warnings.some((w) => /^leakage: 1 field/.test(w)));
  // test 2 vs 1 is within one crop: no imbalance warning; make it 3 vs 1
  assert.ok(!s.warnings.some((w) => w.startsWith('imbalance')));
  const more = [...rows, { ...rows[3], crop_id: 'P2_A03_s1_5_5' }];
  assert.ok(annotationStats(more).warnings.some((w) => /^imbalance: test has 3 abnormal and 1 normal/.test(w)));
  // a clean split has no warnings
  const split = splitAnnotations(screenRows({ plates: ['P1', 'P2', 'P3'], wells: 4, sites: 3, seed: 2 }), {
    test: 30,
    seed: 1,
  });
  const clean = annotationStats(split.rows);
  assert.equal(clean.leakage.field.groups, 0);
  assert.ok(!clean.warnings.some((w) => /^leakage: \d+ field/.test(w)));
  assert.ok(!clean.warnings.some((w) => w.startsWith('imbalance: test')));
});

test('a file without a split column reads (every row train) with its line numbers in errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-split-'));
  try {
    const f = join(dir, 'labels.csv');
    writeFileSync(
      f,
      '# labels\ncrop_id,label,artefact_type,source\nP_A01_s1_1_1,abnormal,blur,manual:x\nP_A01_s2_1_1,normal,,manual:x\n',
    );
    const r = readAnnotationsToSplit(f);
    assert.equal(r.hasSplit, false);
    assert.equal(r.rows.length, 2);
    assert.ok(r.rows.every((x) => x.split === 'train'));
    assert.ok(annotationStats(r.rows, false).warnings.some((w) => /no split column/.test(w)));
    writeFileSync(
      f,
      'crop_id,label,artefact_type,source\nP_A01_s1_1_1,abnormal,blur,manual:x\nP_A01_s2_1_1,bad,,manual:x\n',
    );
    assert.throws(
      () => readAnnotationsToSplit(f),
      (e: unknown) =>
        e instanceof QcbError && e.code === 'QCB_ANNOTATIONS' && /line 3, column label/.test(String(e.context.key)),
    );
    // the shipped paper set (with a split column) reads as readAnnotations does
    const shipped = join(ROOT, 'annotations', 'synthetic-u2os.csv');
    assert.deepEqual(readAnnotationsToSplit(shipped).rows, readAnnotations(shipped));
    // a split of it round-trips through the annotations format
    const res = splitAnnotations(readAnnotations(shipped), { seed: 1 });
    writeFileSync(f, formatAnnotations(res.rows));
    assert.equal(readAnnotations(f).filter((a) => a.split === 'test').length, 130);
    assert.match(readFileSync(f, 'utf8'), /^crop_id,label,artefact_type,split,source\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
