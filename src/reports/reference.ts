/**
 * The paper's Tables 1–3 (Masud et al. 2022) as a lookup, and the mapping from qcbench encoder names to the paper's
 * row labels. The reference CSV has columns `table,encoder,kind,task,test_set,train_images,metric,percent`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { QcbError } from '../errors.js';
import { ENCODER_KINDS, type EncoderKind } from '../results/schema.js';

/** qcbench encoder / method names → the paper's row labels (Tables 1–3). */
export const PAPER_LABELS = {
  vgg16: 'VGG16',
  resnet18: 'ResNet18',
  convnext_tiny: 'ConvNext',
  simclr: 'SimCLR',
  barlow_twins: 'Barlow Twins',
  vicreg: 'VICReg',
  deepclusterv2: 'DeepClusterV2',
  swav: 'SwAV',
} satisfies Record<string, string>;

/** Row order of the paper's tables (TL first, then SSL), used to order our rows. */
export const PAPER_ORDER: readonly string[] = Object.values(PAPER_LABELS);

/** Order of encoder kinds after the paper's rows. */
export const KIND_ORDER: readonly EncoderKind[] = ENCODER_KINDS;

/** Short display of an encoder kind. */
export const KIND_LABELS = {
  tl: 'TL',
  ssl: 'SSL',
  control: 'control',
  'supervised-synthetic': 'supervised (synthetic)',
  scratch: 'scratch',
  handcrafted: 'hand-made',
} satisfies Record<EncoderKind, string>;

/** Display label of an encoder: the record's label, else the paper's, else the name itself. */
export function encoderLabel(encoder: string, recordLabel?: string): string {
  if (recordLabel) return recordLabel;
  return (PAPER_LABELS as Record<string, string>)[encoder] ?? encoder;
}

/** The paper's data sets: in-domain test on BBBC022, domain-shift test on BBBC021. */
export type PaperTestSet = 'bbbc022' | 'bbbc021';

export type MetricName = 'accuracy' | 'f1' | 'auc';
export const METRICS: readonly MetricName[] = ['accuracy', 'f1', 'auc'];
export const METRIC_LABELS = { accuracy: 'Acc', f1: 'F1', auc: 'AUC' } satisfies Record<MetricName, string>;

export interface ReferenceRow {
  table: string;
  encoder: string;
  kind: string;
  task: string;
  test_set: string;
  train_images: number;
  metric: string;
  percent: number;
}

/** The reference table with a keyed lookup. */
export class Reference {
  private readonly byKey = new Map<string, ReferenceRow>();
  constructor(
    readonly rows: readonly ReferenceRow[],
    readonly file: string,
  ) {
    for (const r of rows) this.byKey.set(Reference.key(r.encoder, r.task, r.test_set, r.train_images, r.metric), r);
  }

  static key(label: string, task: string, testSet: string, budget: number, metric: string): string {
    return `${label}|${task}|${testSet}|${budget}|${metric}`;
  }

  /** The paper's row for (label, task, test set, training images, metric), if the paper has one. */
  get(label: string, task: string, testSet: string, budget: number, metric: string): ReferenceRow | undefined {
    return this.byKey.get(Reference.key(label, task, testSet, budget, metric));
  }

  /** Training-set sizes the paper reports for a task and test set, ascending. */
  budgets(task: string, testSet: string): number[] {
    const s = new Set(this.rows.filter((r) => r.task === task && r.test_set === testSet).map((r) => r.train_images));
    return [...s].sort((a, b) => a - b);
  }
}

const COLUMNS = ['table', 'encoder', 'kind', 'task', 'test_set', 'train_images', 'metric', 'percent'] as const;

/** Reads the paper's reference CSV; a missing file or column, or a bad number, is a QcbError naming it. */
export function loadReference(file: string): Reference {
  if (!existsSync(file)) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `reference table '${file}' not found`, {
      file,
      key: '--reference',
      fix: 'pass --reference FILE (the paper table CSV; the package ships it as reports/reference/masud2022_tables.csv)',
    });
  }
  const lines = readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '');
  const header = (lines[0] ?? '').split(',').map((h) => h.trim());
  const missing = COLUMNS.filter((c) => !header.includes(c));
  if (missing.length) {
    throw new QcbError('QCB_CSV_COLUMNS', `reference table lacks column(s) ${missing.join(', ')}`, {
      file,
      key: missing[0],
      allowed: COLUMNS.join(','),
      fix: 'use the reference CSV shipped with qcbench or give it the header table,encoder,kind,task,test_set,train_images,metric,percent',
    });
  }
  const col = Object.fromEntries(COLUMNS.map((c) => [c, header.indexOf(c)])) as Record<
    (typeof COLUMNS)[number],
    number
  >;
  const rows: ReferenceRow[] = lines.slice(1).map((line, i) => {
    const f = line.split(',').map((x) => x.trim());
    const num = (c: 'train_images' | 'percent') => {
      const v = Number(f[col[c]]);
      if (f[col[c]] === '' || !Number.isFinite(v)) {
        throw new QcbError('QCB_CSV_VALUE', `reference table row ${i + 2}: '${c}' is not a number`, {
          file,
          key: `${c} (line ${i + 2})`,
          value: f[col[c]],
          fix: 'correct the number in the reference CSV',
        });
      }
      return v;
    };
    return {
      table: f[col.table],
      encoder: f[col.encoder],
      kind: f[col.kind],
      task: f[col.task],
      test_set: f[col.test_set],
      train_images: num('train_images'),
      metric: f[col.metric],
      percent: num('percent'),
    };
  });
  return new Reference(rows, file);
}
