import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  formatAnnotations,
  LABEL_BUDGETS,
  makeAnnotationsFromGroundTruth,
  PAPER_SAMPLING,
  parseAnnotations,
  readAnnotations,
  sampleLabelBudget,
} from '../../src/data/annotations.js';
import { defaultSyntheticAnnotationFile } from '../../src/data/synth/default-annotations.js';
import { QUICK_SCREENS, screenGroundTruth } from '../../src/data/synth/index.js';
import { QcbError } from '../../src/errors.js';

const annotationsDir = new URL('../../annotations/', import.meta.url);
const HEADER = 'crop_id,label,artefact_type,split,source';

function expectError(text: string, check: { line?: number; column?: string; fix?: RegExp }) {
  assert.throws(
    () => parseAnnotations(text, 'a.csv'),
    (e: unknown) => {
      assert.ok(e instanceof QcbError, String(e));
      assert.equal(e.code, 'QCB_ANNOTATIONS');
      assert.equal(e.context.file, 'a.csv');
      if (check.line !== undefined) assert.match(String(e.context.key), new RegExp(`line ${check.line}\\b`));
      if (check.column) assert.match(String(e.context.key), new RegExp(`column ${check.column}`));
      if (check.fix) assert.match(String(e.context.fix), check.fix);
      return true;
    },
  );
}

test('parses a valid file with comments; normal rows may leave artefact_type empty', () => {
  const rows = parseAnnotations(
    [
      '# a comment',
      HEADER,
      '90001_B02_s1_171_75,abnormal,dead,train,synthetic-ground-truth',
      '20585_A01_s1_300_20,normal,,test,manual:jdoe',
      'Week4_27481_G10_s2_640_512,abnormal,other,test,manual:jdoe',
    ].join('\n'),
    'a.csv',
  );
  assert.equal(rows.length, 3);
  assert.deepEqual(rows[1], {
    crop_id: '20585_A01_s1_300_20',
    label: 'normal',
    artefact_type: 'none',
    split: 'test',
    source: 'manual:jdoe',
  });
  assert.equal(rows[2].artefact_type, 'other');
});

test('bad input names file, line, column and fix', () => {
  expectError('crop_id,label,split,source\nx_s1_1_2,normal,train,m', { fix: /header line/ });
  // line numbers count the comment line
  expectError(`# c\n${HEADER}\n90001_B02_s1_1_2,abnormla,dead,train,manual:a`, {
    line: 3,
    column: 'label',
    fix: /did you mean 'abnormal'/,
  });
  expectError(`${HEADER}\n90001_B02_s1_1_2,normal,none,training,manual:a`, {
    line: 2,
    column: 'split',
    fix: /did you mean 'train'/,
  });
  expectError(`${HEADER}\n90001_B02_1_2,normal,none,train,manual:a`, { line: 2, column: 'crop_id' });
  expectError(`${HEADER}\n90001_B02_s1_1_2,normal,blur,train,manual:a`, { line: 2, column: 'artefact_type' });
  expectError(`${HEADER}\n90001_B02_s1_1_2,abnormal,blurry,train,manual:a`, {
    line: 2,
    column: 'artefact_type',
    fix: /blur/,
  });
  expectError(`${HEADER}\n90001_B02_s1_1_2,abnormal,blur,train,manual:a\n90001_B02_s1_1_2,normal,none,test,manual:a`, {
    line: 3,
    column: 'crop_id',
    fix: /line 2/,
  });
  expectError(`${HEADER}\n90001_B02_s1_1_2,abnormal,blur,train,`, { line: 2, column: 'source' });
  expectError(`${HEADER}\n90001_B02_s1_1_2,abnormal,blur,train`, { line: 2 });
  expectError(`${HEADER}\n`, {});
});

test('paper sampling: 240 + 240, 350 train / 130 test, 50% normal in each, deterministic by seed; errors when short', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-ann-'));
  try {
    const gt = join(dir, 'ground_truth.csv');
    const screen = QUICK_SCREENS.u2os;
    writeFileSync(gt, screenGroundTruth(screen));
    const opts = { ...PAPER_SAMPLING, seed: 5, cropSize: 128, field: { width: screen.width, height: screen.height } };
    const a = makeAnnotationsFromGroundTruth(gt, opts);
    assert.equal(a.length, 480);
    const count = (split: string, label: string) => a.filter((r) => r.split === split && r.label === label).length;
    assert.deepEqual(
      [count('train', 'normal'), count('train', 'abnormal'), count('test', 'normal'), count('test', 'abnormal')],
      [175, 175, 65, 65],
    );
    assert.equal(new Set(a.map((r) => r.crop_id)).size, 480);
    // crops lie fully inside the field, so every border policy keeps them
    for (const r of a) {
      const [x, y] = r.crop_id.split('_').slice(-2).map(Number);
      assert.ok(x >= 64 && y >= 64 && x + 64 <= screen.width && y + 64 <= screen.height, r.crop_id);
    }
    // labels agree with the ground truth
    const truth = new Map(
      readFileSync(gt, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => {
          const c = l.split(',');
          return [c[0], c[6]];
        }),
    );
    assert.ok(a.every((r) => truth.get(r.crop_id) === r.label));
    assert.deepEqual(makeAnnotationsFromGroundTruth(gt, opts), a);
    assert.notDeepEqual(makeAnnotationsFromGroundTruth(gt, { ...opts, seed: 6 }), a);
    // round trip through the file format
    const file = join(dir, 'ann.csv');
    writeFileSync(file, formatAnnotations(a, ['test']));
    assert.deepEqual(
      new Set(readAnnotations(file).map((r) => JSON.stringify(r))),
      new Set(a.map((r) => JSON.stringify(r))),
    );

    assert.throws(
      () => makeAnnotationsFromGroundTruth(gt, { ...opts, abnormal: 5000, normal: 5000, train: 5000, test: 5000 }),
      (e: unknown) => e instanceof QcbError && e.code === 'QCB_ANNOTATIONS' && /only \d+ abnormal/.test(e.message),
    );
    assert.throws(
      () => makeAnnotationsFromGroundTruth(gt, { ...opts, train: 351, test: 129 }),
      (e: unknown) => e instanceof QcbError && e.code === 'QCB_ANNOTATIONS' && e.context.file === gt,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('label budgets: class-balanced, from the train split, nested for one seed, different across seeds', () => {
  const rows = readAnnotations(new URL('synthetic-u2os.csv', annotationsDir).pathname);
  const testIds = new Set(rows.filter((r) => r.split === 'test').map((r) => r.crop_id));
  let prev: Set<string> | undefined;
  for (const budget of [...LABEL_BUDGETS].reverse()) {
    const s = sampleLabelBudget(rows, budget, 3);
    assert.equal(s.length, budget);
    const abn = s.filter((r) => r.label === 'abnormal').length;
    assert.equal(abn, Math.ceil(budget / 2));
    assert.ok(s.every((r) => !testIds.has(r.crop_id)));
    const ids = new Set(s.map((r) => r.crop_id));
    if (prev)
      for (const id of prev) assert.ok(ids.has(id), `budget ${budget} does not contain the smaller budget's ${id}`);
    prev = ids;
  }
  assert.notDeepEqual(sampleLabelBudget(rows, 10, 3), sampleLabelBudget(rows, 10, 4));
  assert.throws(
    () => sampleLabelBudget(rows, 400, 1),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ANNOTATIONS',
  );
});

test('shipped annotation files are valid and regenerate identically from the deterministic quick screens', () => {
  for (const domain of ['u2os', 'mcf7'] as const) {
    const path = new URL(`synthetic-${domain}.csv`, annotationsDir).pathname;
    const rows = readAnnotations(path);
    assert.equal(rows.length, domain === 'u2os' ? 480 : 200);
    assert.equal(defaultSyntheticAnnotationFile(domain), readFileSync(path, 'utf8'), `${path} is stale: regenerate it`);
  }
  const mcf7 = readAnnotations(new URL('synthetic-mcf7.csv', annotationsDir).pathname);
  assert.ok(mcf7.every((r) => r.split === 'test'));
  assert.equal(mcf7.filter((r) => r.label === 'normal').length, 100);
});
