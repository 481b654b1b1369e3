import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Reference } from '../../src/reports/reference.js';
import { csvField } from '../../src/reports/tables/csv.js';
import { fmtDiff } from '../../src/reports/tables/format.js';
import { texEscape } from '../../src/reports/tables/latex.js';
import { paperFigure } from '../../src/reports/tables/model.js';

test('LaTeX escaping covers special characters and the Unicode used in notes', () => {
  assert.equal(
    texEscape('QCB_NAN_LOSS 50% & $x #1 {a} ~ ^ \\'),
    'QCB\\_NAN\\_LOSS 50\\% \\& \\$x \\#1 \\{a\\} \\textasciitilde{} \\textasciicircum{} \\textbackslash{}',
  );
  assert.equal(texEscape('97.1 ± 0.4 (ours − paper) — Δ'), '97.1 $\\pm$ 0.4 (ours $-$ paper) --- $\\Delta$');
});

test('CSV fields are quoted per RFC 4180 and numbers are stable', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField(1 / 3), '0.333333');
  assert.equal(csvField(Number.NaN), '');
  assert.equal(csvField(undefined), '');
  // leading / trailing blanks are quoted, since CSV readers (ours included) trim unquoted fields
  assert.equal(csvField(' padded '), '" padded "');
});

test('differences carry their sign; −0.00 prints as 0.00', () => {
  assert.equal(fmtDiff(1.234), '+1.23');
  assert.equal(fmtDiff(-1.236), '−1.24');
  assert.equal(fmtDiff(-1.236, true), '-1.24');
  assert.equal(fmtDiff(-0.001), '0.00');
  assert.equal(fmtDiff(undefined), '—');
});

test('paper figures: exact budget, else the single budget the paper has for that task, else none', () => {
  const row = (task: string, test_set: string, train_images: number, percent: number) => ({
    table: 't',
    encoder: 'SimCLR',
    kind: 'SSL',
    task,
    test_set,
    train_images,
    metric: 'f1',
    percent,
  });
  const ref = new Reference(
    [row('knn', 'bbbc022', 350, 89.63), row('finetune', 'bbbc022', 350, 98.21), row('finetune', 'bbbc022', 10, 84.61)],
    'mem',
  );
  assert.deepEqual(paperFigure(ref, 'simclr', 'knn', 'bbbc022', 350, 'f1'), { percent: 89.63, budget: 350 });
  assert.deepEqual(paperFigure(ref, 'simclr', 'knn', 'bbbc022', 64, 'f1'), { percent: 89.63, budget: 350 });
  assert.deepEqual(paperFigure(ref, 'simclr', 'finetune', 'bbbc022', 10, 'f1'), { percent: 84.61, budget: 10 });
  assert.equal(paperFigure(ref, 'simclr', 'finetune', 'bbbc022', 64, 'f1'), undefined);
  assert.equal(paperFigure(ref, 'random-resnet18', 'knn', 'bbbc022', 350, 'f1'), undefined);
});

test('the shipped reference table loads all 192 figures; a CSV without a column is a QcbError naming it', async () => {
  const { loadReference } = await import('../../src/reports/reference.js');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const ref = loadReference(fileURLToPath(new URL('../../../shared/reference/masud2022_tables.csv', import.meta.url)));
  assert.equal(ref.rows.length, 192);
  assert.equal(ref.get('ConvNext', 'linear', 'bbbc022', 350, 'accuracy')?.percent, 98.47);
  assert.equal(ref.get('VICReg', 'finetune', 'bbbc021', 350, 'accuracy')?.percent, 37.95);
  assert.deepEqual(ref.budgets('finetune', 'bbbc022'), [10, 25, 50, 100, 350]);
  const dir = mkdtempSync(join(tmpdir(), 'qcb-ref-'));
  try {
    const f = join(dir, 'ref.csv');
    writeFileSync(f, 'table,encoder,kind,task,test_set,train_images,metric\ntable1,VGG16,TL,knn,bbbc022,350,f1\n');
    assert.throws(
      () => loadReference(f),
      (e: Error & { code?: string; context?: { key?: string; file?: string } }) =>
        e.code === 'QCB_CSV_COLUMNS' && e.context?.key === 'percent' && e.context.file === f,
    );
    writeFileSync(
      f,
      'table,encoder,kind,task,test_set,train_images,metric,percent\ntable1,VGG16,TL,knn,bbbc022,350,f1,n/a\n',
    );
    assert.throws(
      () => loadReference(f),
      (e: Error & { code?: string }) => e.code === 'QCB_CSV_VALUE',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
