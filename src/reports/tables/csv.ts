/**
 * CSV writers of the report's tables, in long form for pandas / R: Tables 1–3 of Masud et al. 2022 (one line per
 * encoder, column group and metric), the all-results table, every cell (per seed) and the recall per artefact type.
 * Pure functions of the model in model.ts.
 */
import { csvCell } from '../../util/csv.js';
import type { CellRecord } from '../../results/schema.js';
import type { Aggregate } from '../aggregate.js';
import { METRICS, type Reference } from '../reference.js';
import { degenerateText, groupPaperFigure, type RecallTable, type TableModel } from './model.js';

/**
 * One CSV field of the report's tables: numbers rounded to 6 decimals so files do not change with the last bits of a
 * float, an empty field for a missing or non-finite value, quoting by the project's one CSV field writer.
 */
export function csvField(v: string | number | undefined): string {
  if (v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
  return csvCell(typeof v === 'number' ? Number(v.toFixed(6)) : v);
}

/** The columns naming a group (encoder, task, data, training images), in every long-form CSV in this order. */
const GROUP_COLUMNS = ['encoder', 'encoder_label', 'kind', 'task', 'train_set', 'test_set', 'budget'] as const;

/** Columns of tables/table{1,2,3}.csv (the paper's Tables 1–3 in long form). */
export const TABLE_CSV_HEADER = [
  'table',
  ...GROUP_COLUMNS,
  'metric',
  'status',
  'seeds',
  'n_done',
  'mean',
  'sd',
  'min',
  'max',
  'paper',
  'paper_train_images',
  'diff',
  'note',
] as const;

/** Table 1, 2 or 3 of the paper as CSV in long form: one line per (encoder, column group, metric). */
export function tableCsv(t: TableModel): string {
  const lines = [TABLE_CSV_HEADER.join(',')];
  for (const r of t.rows) {
    r.cells.forEach((c, i) => {
      const col = t.columnGroups[Math.floor(i / METRICS.length)];
      const g = c.group;
      const s = g?.stats[c.metric];
      const note: string[] = [];
      if (c.skip) note.push(`skipped: ${c.skip.reason}${c.skip.fix ? ` (fix: ${c.skip.fix})` : ''}`);
      if (c.degenerateSeeds) note.push(degenerateText(c));
      if (c.failures.length) note.push(`failed: ${c.failures.join(' ')}`);
      if (c.pendingSeeds) note.push(`${c.pendingSeeds} pending`);
      lines.push(
        [
          t.id,
          r.encoder.encoder,
          r.encoder.label,
          r.encoder.kind ?? '',
          col.task,
          g?.key.train_set ?? '',
          col.testSet,
          col.budget,
          c.metric,
          c.status,
          c.seeds,
          c.n,
          c.mean,
          c.sd,
          s?.min,
          s?.max,
          c.paper,
          c.paper === undefined ? undefined : (c.paperBudget ?? col.budget),
          c.diff,
          note.join('; '),
        ]
          .map(csvField)
          .join(','),
      );
    });
  }
  return `${lines.join('\n')}\n`;
}

/** Columns of tables/all-results.csv (every group, beside the paper's Tables 1–3 where it has the setting). */
export const GROUPS_CSV_HEADER = [
  ...GROUP_COLUMNS,
  'seeds',
  'done',
  'failed',
  'skipped',
  'pending',
  ...METRICS.flatMap((m) => [`${m}_mean`, `${m}_sd`, `${m}_paper`]),
] as const;

/** Every group of the run (all tasks, budgets and test sets), one line each, with the paper's figures. */
export function groupsCsv(agg: Aggregate, ref: Reference): string {
  const lines = [GROUPS_CSV_HEADER.join(',')];
  for (const g of agg.groups) {
    const vals: (string | number | undefined)[] = [
      g.key.encoder,
      g.label,
      g.kind ?? '',
      g.key.task,
      g.key.train_set,
      g.key.test_set,
      g.key.budget,
      g.seeds.length,
      g.done.length,
      g.failed.length,
      g.skipped.length,
      g.pending.length,
    ];
    for (const m of METRICS) vals.push(g.stats[m].mean, g.stats[m].sd, groupPaperFigure(ref, g, m));
    lines.push(vals.map(csvField).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** One line per cell (per seed): the raw numbers behind Tables 1–3 and every other table. */
export function cellsCsv(cells: readonly CellRecord[]): string {
  const head = [
    'id',
    ...GROUP_COLUMNS,
    'seed',
    'status',
    'accuracy',
    'f1',
    'auc',
    'accuracy_ci_lo',
    'accuracy_ci_hi',
    'f1_ci_lo',
    'f1_ci_hi',
    'auc_ci_lo',
    'auc_ci_hi',
    'n_train',
    'n_test',
    'error_code',
    'skip_reason',
    'fix',
  ];
  const lines = [head.join(',')];
  for (const c of cells) {
    const m = c.metrics;
    lines.push(
      [
        c.id,
        c.key.encoder,
        c.encoder_label,
        c.encoder_kind,
        c.key.task,
        c.key.train_set,
        c.key.test_set,
        c.key.budget,
        c.key.seed,
        c.status,
        m?.accuracy,
        m?.f1,
        m?.auc,
        m?.ci95?.accuracy[0],
        m?.ci95?.accuracy[1],
        m?.ci95?.f1[0],
        m?.ci95?.f1[1],
        m?.ci95?.auc[0],
        m?.ci95?.auc[1],
        m?.n_train,
        m?.n_test,
        c.error?.code,
        c.skip?.reason,
        c.skip?.fix_command ?? c.error?.fix,
      ]
        .map(csvField)
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** CSV of the recall-per-artefact-type table in long form: one line per group and artefact type. */
export function recallCsv(r: RecallTable): string {
  const lines = [
    'encoder,encoder_label,task,train_set,test_set,budget,artefact_type,seeds,recall_mean,recall_sd,images',
  ];
  for (const { group: g, recall } of r.rows) {
    for (const t of r.types) {
      const x = recall[t];
      if (!x) continue;
      lines.push(
        [
          g.key.encoder,
          g.label,
          g.key.task,
          g.key.train_set,
          g.key.test_set,
          g.key.budget,
          t,
          x.n,
          x.mean,
          x.sd,
          x.images,
        ]
          .map(csvField)
          .join(','),
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
