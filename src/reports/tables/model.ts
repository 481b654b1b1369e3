/**
 * The table model of the report: Tables 1–3 of Masud et al. 2022 rebuilt from a results directory, with the paper's
 * figure and the difference beside each of our cells, and the recall of abnormal images per artefact type. The
 * writers (markdown.ts, csv.ts, latex.ts, and ../html.ts) are pure functions of this model; keeping all choices of
 * rows, columns, budgets and notes here means the formats cannot disagree. Deterministic order and no timestamps, so
 * the same results always give byte-identical files.
 *
 * - Table 1 (§4.1): kNN and linear layer on the frozen encoder, in-domain test, the run's largest budget
 *   (paper: 350).
 * - Table 2 (§4.2): fine-tuning, in-domain test, every budget (paper: 350/100/50/25/10), largest first.
 * - Table 3 (§4.3): fine-tuning, shifted test set (paper: trained on BBBC022, tested on BBBC021), largest
 *   budget.
 * Every group outside these (other tasks, budgets, test sets) is in the "all results" table.
 */
import { meanSd } from '../../metrics/summary.js';
import type { CellRecord, TaskName } from '../../results/schema.js';
import type { Aggregate, EncoderInfo, Group } from '../aggregate.js';
import { CATALOG } from '../../runner/catalog.js';
import { cmp } from '../load.js';
import { METRICS, type MetricName, PAPER_LABELS, type PaperTestSet, type Reference } from '../reference.js';

/** What a cell of Tables 1–3 shows: our figure (all or some seeds finished) or why there is none. */
export type CellStatus = 'done' | 'partial' | 'skipped' | 'failed' | 'pending' | 'absent' | 'degenerate';

/** One shown cell of Tables 1–3: our mean ± sd over seeds beside the paper's figure. */
export interface TableCell {
  status: CellStatus;
  metric: MetricName;
  /** Our mean / sd over finished seeds (NaN when none); n = finished seeds. */
  mean: number;
  sd: number;
  n: number;
  /** Number of seeds of the group (all statuses). */
  seeds: number;
  paper?: number;
  /** Training images of the paper's figure when it differs from ours (the paper only has 350 for Tables 1 and 3). */
  paperBudget?: number;
  /** ours − paper, when both exist. */
  diff?: number;
  /** Skip reason and fix, failure codes, pending count. */
  skip?: { reason: string; fix?: string };
  failures: string[];
  pendingSeeds: number;
  /** Seeds that finished with one predicted class for every test crop (not in the mean; status `degenerate` if all). */
  degenerateSeeds: number;
  /** Footnote number of the skip reason (1-based), when skipped. */
  footnote?: number;
  group?: Group;
}

/** A column group of Tables 1–3 (a task, budget or test set), spanning one column per metric (Acc, F1, AUC). */
export interface TableColumnGroup {
  title: string;
  task: TaskName;
  budget: number;
  testSet: string;
}

/** One encoder's row of Tables 1–3. */
export interface TableRow {
  encoder: EncoderInfo;
  /** cells[g * 3 + m] for column group g and metric m (Acc, F1, AUC). */
  cells: TableCell[];
}

/** Table 1, 2 or 3 of the paper as rebuilt from a run; every writer renders this and nothing else. */
export interface TableModel {
  id: 'table1' | 'table2' | 'table3';
  title: string;
  caption: string;
  notes: string[];
  columnGroups: TableColumnGroup[];
  rows: TableRow[];
  /** Skip reasons with their fix commands, numbered as referenced by cells. */
  footnotes: { n: number; reason: string; fix?: string }[];
}

/** The column title of a downstream task: its registry label (the paper's Table 1 names, §3.3), else its name. */
export function taskTitle(t: TaskName): string {
  return CATALOG.tasks[t]?.label ?? t;
}

/** The training set most cells use: Tables 1–3 are built for it (other training sets appear in the all-results table). */
export function primaryTrainSet(agg: Aggregate): string {
  const count = new Map<string, number>();
  for (const g of agg.groups) count.set(g.key.train_set, (count.get(g.key.train_set) ?? 0) + g.seeds.length);
  return [...count.entries()].sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]))[0]?.[0] ?? 'bbbc022';
}

/** Builds the models of Tables 1–3 (§4.1–4.3; only those with at least one group in the run). */
export function buildTables(agg: Aggregate, ref: Reference): TableModel[] {
  const train = primaryTrainSet(agg);
  const inDomain = agg.groups.filter((g) => g.key.train_set === train && !g.shift);
  const shifted = agg.groups.filter((g) => g.key.train_set === train && g.shift);
  const maxBudget = (gs: Group[]) => Math.max(...gs.map((g) => g.key.budget));
  const tables: TableModel[] = [];
  const seedsNote = seedsText(agg);
  const dataNotes = dataNote(agg, train);

  // Table 1
  const t1cols: TableColumnGroup[] = [];
  for (const task of ['knn', 'linear'] as const) {
    const gs = inDomain.filter((g) => g.key.task === task);
    if (gs.length) t1cols.push({ title: taskTitle(task), task, budget: maxBudget(gs), testSet: train });
  }
  if (t1cols.length) {
    tables.push(
      makeTable(agg, ref, {
        id: 'table1',
        title: 'Table 1. kNN or a single linear layer on a frozen encoder',
        caption: `Classification with kNN or a linear layer on the frozen encoder, trained on ${budgetsText(t1cols)} images of ${train}, tested on ${train}.`,
        notes: [seedsNote, ...dataNotes, ...budgetNote(t1cols, ref, 'bbbc022')],
        columnGroups: t1cols,
        pick: (col) => inDomain.filter((g) => g.key.task === col.task && g.key.budget === col.budget),
        paperTest: 'bbbc022',
      }),
    );
  }

  // Table 2
  const ft = inDomain.filter((g) => g.key.task === 'finetune');
  if (ft.length) {
    const budgets = [...new Set(ft.map((g) => g.key.budget))].sort((a, b) => b - a);
    const cols = budgets.map((b) => ({
      title: `${b} training images`,
      task: 'finetune' as const,
      budget: b,
      testSet: train,
    }));
    tables.push(
      makeTable(agg, ref, {
        id: 'table2',
        title: 'Table 2. Fine-tuning with a decreasing number of training images',
        caption: `Linear layer on a fine-tuned (non-frozen) encoder trained on ${budgets.join(' / ')} images of ${train}, tested on ${train}.`,
        notes: [seedsNote, ...dataNotes, ...budgetNote(cols, ref, 'bbbc022')],
        columnGroups: cols,
        pick: (col) => ft.filter((g) => g.key.budget === col.budget),
        paperTest: 'bbbc022',
      }),
    );
  }

  // Table 3
  const sh = shifted.filter((g) => g.key.task === 'finetune');
  if (sh.length) {
    const testSets = [...new Set(sh.map((g) => g.key.test_set))].sort();
    const cols = testSets.map((t) => {
      const b = maxBudget(sh.filter((g) => g.key.test_set === t));
      return { title: `Tested on ${t}`, task: 'finetune' as const, budget: b, testSet: t };
    });
    tables.push(
      makeTable(agg, ref, {
        id: 'table3',
        title: 'Table 3. Out-of-domain test',
        caption: `Linear layer on a fine-tuned encoder trained on ${budgetsText(cols)} images of ${train}, tested on ${testSets.join(', ')} (domain shift).`,
        notes: [seedsNote, ...dataNotes, ...budgetNote(cols, ref, 'bbbc021')],
        columnGroups: cols,
        pick: (col) => sh.filter((g) => g.key.test_set === col.testSet && g.key.budget === col.budget),
        paperTest: 'bbbc021',
      }),
    );
  }
  return tables;
}

interface TableSpec {
  id: TableModel['id'];
  title: string;
  caption: string;
  notes: string[];
  columnGroups: TableColumnGroup[];
  pick: (col: TableColumnGroup) => Group[];
  paperTest: PaperTestSet;
}

function makeTable(agg: Aggregate, ref: Reference, spec: TableSpec): TableModel {
  const footnotes: TableModel['footnotes'] = [];
  const footnoteOf = (reason: string, fix?: string): number => {
    const f = footnotes.find((x) => x.reason === reason && x.fix === fix);
    if (f) return f.n;
    footnotes.push({ n: footnotes.length + 1, reason, fix });
    return footnotes.length;
  };
  const picked = spec.columnGroups.map((c) => spec.pick(c));
  // Rows: every encoder with a group in this table, plus the paper's encoders the run does not have at all
  // (shown as "not run" so the reader sees what is missing).
  const present = new Set(picked.flat().map((g) => g.key.encoder));
  const rows: TableRow[] = [];
  for (const enc of agg.encoders) {
    if (!present.has(enc.encoder)) continue;
    const cells: TableCell[] = [];
    spec.columnGroups.forEach((col, gi) => {
      const g = picked[gi].find((x) => x.key.encoder === enc.encoder);
      for (const m of METRICS) {
        const cell = makeCell(g, m, paperFigure(ref, enc.encoder, col.task, spec.paperTest, col.budget, m));
        if (cell.skip) cell.footnote = footnoteOf(cell.skip.reason, cell.skip.fix);
        cells.push(cell);
      }
    });
    rows.push({ encoder: enc, cells });
  }
  const degenerate = rows.some((r) => r.cells.some((c) => c.degenerateSeeds > 0));
  return {
    id: spec.id,
    title: spec.title,
    caption: spec.caption,
    notes: [...spec.notes, ...(degenerate ? [DEGENERATE_NOTE] : [])].filter((n) => n !== ''),
    columnGroups: spec.columnGroups,
    rows,
    footnotes,
  };
}

/**
 * The paper's figure for one of our cells: exact training-set size, or, when the paper reports a single size for
 * that task and test set (Tables 1 and 3: 350), that one (flagged by `budget` ≠ ours).
 */
export function paperFigure(
  ref: Reference,
  encoder: string,
  task: TaskName,
  paperTest: PaperTestSet,
  budget: number,
  metric: MetricName,
): { percent: number; budget: number } | undefined {
  const label = paperLabel(encoder);
  if (!label) return undefined;
  const exact = ref.get(label, task, paperTest, budget, metric);
  if (exact) return { percent: exact.percent, budget };
  const budgets = ref.budgets(task, paperTest);
  if (budgets.length === 1) {
    const r = ref.get(label, task, paperTest, budgets[0], metric);
    if (r) return { percent: r.percent, budget: budgets[0] };
  }
  return undefined;
}

/**
 * The paper's figure for a group of the all-results table: only the exact setting (task, test set, training images),
 * since that table lists every group and a figure for another budget would read as a like-for-like comparison.
 */
export function groupPaperFigure(ref: Reference, g: Group, metric: MetricName): number | undefined {
  return ref.get(paperLabel(g.key.encoder) ?? '', g.key.task, g.paperTestSet, g.key.budget, metric)?.percent;
}

/** The paper's row label of one of our encoders (undefined for encoders the paper does not have). */
function paperLabel(encoder: string): string | undefined {
  return (PAPER_LABELS as Record<string, string | undefined>)[encoder];
}

/** One cell of Tables 1–3 (or of the all-results table) from a group, or its absence, and the paper's figure. */
export function makeCell(
  g: Group | undefined,
  metric: MetricName,
  paper: { percent: number; budget: number } | undefined,
): TableCell {
  const base: TableCell = {
    status: 'absent',
    metric,
    mean: Number.NaN,
    sd: Number.NaN,
    n: 0,
    seeds: 0,
    failures: [],
    pendingSeeds: 0,
    degenerateSeeds: 0,
    ...(paper ? { paper: paper.percent } : {}),
    group: g,
  };
  if (!g) return base;
  if (paper && paper.budget !== g.key.budget) base.paperBudget = paper.budget;
  const s = g.stats[metric];
  base.mean = s.mean;
  base.sd = s.sd;
  base.n = s.n;
  base.seeds = g.seeds.length;
  base.failures = [...new Set(g.failed.map(errorCode))].sort();
  base.pendingSeeds = g.pending.length;
  base.degenerateSeeds = g.degenerate.length;
  if (g.skipped.length) {
    const sk = g.skipped[0].skip;
    base.skip = { reason: sk?.reason ?? 'no reason recorded', ...(sk?.fix_command ? { fix: sk.fix_command } : {}) };
  }
  if (s.n > 0) {
    base.status = s.n === g.seeds.length ? 'done' : 'partial';
    if (paper) base.diff = s.mean - paper.percent;
  } else if (g.degenerate.length) base.status = 'degenerate';
  else if (g.failed.length) base.status = 'failed';
  else if (g.skipped.length) base.status = 'skipped';
  else base.status = 'pending';
  return base;
}

/** The note of a table with degenerate seeds (only then, so tables without them are unchanged). */
export const DEGENERATE_NOTE =
  'Degenerate: a seed whose test predictions are all one class (a constant predictor, e.g. a diverged or collapsed model); its metrics are left out of the mean ± sd and the cell says how many seeds were.';

/** The text every format shows for a cell's degenerate seeds. */
export function degenerateText(c: TableCell): string {
  return `${c.degenerateSeeds} degenerate (one class predicted, not in the mean)`;
}

/** A failed cell's error code, as failure lists in every format show it. */
export function errorCode(c: CellRecord): string {
  return c.error?.code ?? 'unknown error';
}

function seedsText(agg: Aggregate): string {
  const n = agg.seeds.length;
  // one seed has no spread to show: say so rather than promise an sd the cells cannot have
  const ours =
    n === 1 ? `one seed (${agg.seeds[0]}), so no sd,` : `mean ± sd over ${n} seeds (${agg.seeds.join(', ')})`;
  return `Ours: ${ours} in percent, support-weighted over the two classes; in brackets the paper's figure and the difference (ours − paper). "—" = the paper has no such row.`;
}

/** Header note when the run's data are not the paper's. */
function dataNote(agg: Aggregate, train: string): string[] {
  const shiftSets = agg.testSets.filter((t) => t !== train);
  const same = train.toLowerCase() === 'bbbc022' && shiftSets.every((t) => t.toLowerCase() === 'bbbc021');
  if (same) return [];
  return [
    `Data differ from the paper: this run trained and tested on ${train}${shiftSets.length ? ` (shifted test: ${shiftSets.join(', ')})` : ''}, the paper on BBBC022 (shifted test: BBBC021). The paper's figures are shown for orientation only; they are not expected to match.`,
  ];
}

function budgetNote(cols: TableColumnGroup[], ref: Reference, paperTest: PaperTestSet): string[] {
  const notes: string[] = [];
  for (const c of cols) {
    const paperBudgets = ref.budgets(c.task, paperTest);
    if (paperBudgets.length === 1 && paperBudgets[0] !== c.budget) {
      notes.push(
        `${c.title}: this run used ${c.budget} training images; the paper's figures beside are for ${paperBudgets[0]}.`,
      );
    }
  }
  return notes;
}

function budgetsText(cols: TableColumnGroup[]): string {
  return [...new Set(cols.map((c) => c.budget))].join(' / ');
}

/** Recall of abnormal images per artefact type, per group: the failure modes behind the paper's Tables 1–3. */
export interface RecallTable {
  /** Artefact types found in any finished cell, sorted. */
  types: string[];
  rows: { group: Group; recall: Record<string, { mean: number; sd: number; n: number; images: number }> }[];
}

/**
 * Recall of the abnormal class per artefact type (out of focus, debris, …), mean ± sd over the finished seeds of each
 * group; `images` is the number of abnormal test images of that type summed over seeds. Undefined when no cell
 * recorded artefact types.
 */
export function buildRecallTable(agg: Aggregate): RecallTable | undefined {
  const types = new Set<string>();
  for (const g of agg.groups)
    for (const c of g.done) for (const t of Object.keys(c.metrics?.recall_by_type ?? {})) types.add(t);
  if (!types.size) return undefined;
  const sorted = [...types].sort();
  const rows: RecallTable['rows'] = [];
  for (const g of agg.groups) {
    if (!g.done.some((c) => c.metrics?.recall_by_type)) continue;
    const recall: RecallTable['rows'][number]['recall'] = {};
    for (const t of sorted) {
      const per = g.done.map((c) => c.metrics?.recall_by_type?.[t]).filter((x) => x !== undefined);
      if (!per.length) continue;
      const s = meanSd(per.map((x) => x.recall));
      recall[t] = { mean: s.mean, sd: s.sd, n: s.n, images: per.reduce((a, x) => a + x.n, 0) };
    }
    rows.push({ group: g, recall });
  }
  return { types: sorted, rows };
}
