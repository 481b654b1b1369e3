/**
 * Tables 1–3 of Masud et al. 2022 rebuilt from a results directory, with the paper's figure and the difference beside
 * each of our cells, rendered as Markdown, CSV and LaTeX (and, by html.ts, as HTML). Pure: no timestamps, fixed
 * number formats, deterministic order, so the same results always give byte-identical files.
 *
 * - Table 1: kNN and linear layer on the frozen encoder, in-domain test, the run's largest budget (paper: 350).
 * - Table 2: fine-tuning, in-domain test, every budget (paper: 350/100/50/25/10), largest first.
 * - Table 3: fine-tuning, shifted test set (paper: trained on BBBC022, tested on BBBC021), largest budget.
 * Every group outside these (other tasks, budgets, test sets) is in the "all results" table.
 */
import type { CellRecord, TaskName } from '../results/schema.js';
import type { Aggregate, EncoderInfo, Group } from './aggregate.js';
import { cmp } from './load.js';
import {
  KIND_LABELS,
  METRIC_LABELS,
  METRICS,
  type MetricName,
  PAPER_LABELS,
  type PaperTestSet,
  type Reference,
} from './reference.js';

export type CellStatus = 'done' | 'partial' | 'skipped' | 'failed' | 'pending' | 'absent';

/** One shown cell: our mean ± sd over seeds beside the paper's figure. */
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
  /** Footnote number of the skip reason (1-based), when skipped. */
  footnote?: number;
  group?: Group;
}

export interface TableColumnGroup {
  title: string;
  task: TaskName;
  budget: number;
  testSet: string;
}

export interface TableRow {
  encoder: EncoderInfo;
  /** cells[g * 3 + m] for column group g and metric m (Acc, F1, AUC). */
  cells: TableCell[];
}

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

const TASK_TITLES = {
  knn: 'kNN (k = 5)',
  linear: 'Linear layer',
  finetune: 'Fine-tuned',
  quadratic: 'Quadratic head',
} satisfies Record<TaskName, string>;

export function taskTitle(t: TaskName): string {
  return (TASK_TITLES as Record<string, string>)[t] ?? t;
}

/** The training set most cells use: tables are built for it (other training sets appear in the all-results table). */
export function primaryTrainSet(agg: Aggregate): string {
  const count = new Map<string, number>();
  for (const g of agg.groups) count.set(g.key.train_set, (count.get(g.key.train_set) ?? 0) + g.seeds.length);
  return [...count.entries()].sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]))[0]?.[0] ?? 'bbbc022';
}

/** Builds the models of Tables 1–3 (only those with at least one group in the run). */
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
  return {
    id: spec.id,
    title: spec.title,
    caption: spec.caption,
    notes: spec.notes.filter((n) => n !== ''),
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
  const label = (PAPER_LABELS as Record<string, string>)[encoder];
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

/** One cell from a group (or its absence) and the paper's figure. */
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
  if (g.skipped.length) {
    const sk = g.skipped[0].skip;
    base.skip = { reason: sk?.reason ?? 'no reason recorded', ...(sk?.fix_command ? { fix: sk.fix_command } : {}) };
  }
  if (s.n > 0) {
    base.status = s.n === g.seeds.length ? 'done' : 'partial';
    if (paper) base.diff = s.mean - paper.percent;
  } else if (g.failed.length) base.status = 'failed';
  else if (g.skipped.length) base.status = 'skipped';
  else base.status = 'pending';
  return base;
}

function errorCode(c: CellRecord): string {
  return c.error?.code ?? 'unknown error';
}

function seedsText(agg: Aggregate): string {
  const n = agg.seeds.length;
  return `Ours: mean ± sd over ${n} seed${n === 1 ? '' : 's'} (${agg.seeds.join(', ')}) in percent, support-weighted over the two classes; in brackets the paper's figure and the difference (ours − paper). "—" = the paper has no such row.`;
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

// ───────────────────────────── formatting ─────────────────────────────

/** Fixed two decimals, as the paper; "—" for NaN. */
export function fmt(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(2);
}

/** Signed difference with a typographic minus (Markdown / HTML) or ASCII (CSV / LaTeX math). */
export function fmtDiff(x: number | undefined, ascii = false): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  const s = Math.abs(x).toFixed(2);
  if (s === '0.00') return '0.00';
  return `${x < 0 ? (ascii ? '-' : '−') : '+'}${s}`;
}

/** "97.12 ± 0.43", or "97.12" with a single seed. */
export function fmtOurs(c: TableCell): string {
  return Number.isFinite(c.sd) ? `${fmt(c.mean)} ± ${fmt(c.sd)}` : fmt(c.mean);
}

/** Plain-text cell (Markdown): ours (paper, Δ), or the status with the paper's figure. */
export function cellText(c: TableCell): string {
  const paper = c.paper === undefined ? '—' : fmt(c.paper);
  const extra: string[] = [];
  if (c.status === 'partial') {
    extra.push(`${c.n}/${c.seeds} seeds`);
    if (c.failures.length) extra.push(`failed: ${c.failures.join(', ')}`);
    if (c.skip) extra.push(`skipped [${c.footnote}]`);
    if (c.pendingSeeds) extra.push(`${c.pendingSeeds} pending`);
  }
  switch (c.status) {
    case 'done':
    case 'partial':
      return `${fmtOurs(c)} (${paper}, ${fmtDiff(c.diff)})${extra.length ? `; ${extra.join('; ')}` : ''}`;
    case 'skipped':
      return `skipped: ${c.skip?.reason} [${c.footnote}] (paper ${paper})`;
    case 'failed':
      return `failed: ${c.failures.join(', ')} (paper ${paper})`;
    case 'pending':
      return `pending (paper ${paper})`;
    default:
      return `not run (paper ${paper})`;
  }
}

const mdEscape = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

/** Markdown: title, notes, a pipe table (rows = encoders, columns = task/budget × Acc/F1/AUC), footnotes. */
export function tableMarkdown(t: TableModel): string {
  const out: string[] = [`## ${t.title}`, '', t.caption, ''];
  for (const n of t.notes) out.push(`> ${n}`, '>');
  if (t.notes.length) out.pop();
  if (t.notes.length) out.push('');
  const head = ['Encoder', 'Kind'];
  for (const g of t.columnGroups) for (const m of METRICS) head.push(`${g.title}: ${METRIC_LABELS[m]}`);
  out.push(`| ${head.join(' | ')} |`);
  out.push(`|${head.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`);
  for (const r of t.rows) {
    // a skip reason is spelled out once per row; further cells with the same reason only carry its footnote mark
    const shown = new Set<number>();
    const texts = r.cells.map((c) => {
      if (c.status !== 'skipped' || c.footnote === undefined) return cellText(c);
      if (shown.has(c.footnote)) return `skipped [${c.footnote}] (paper ${c.paper === undefined ? '—' : fmt(c.paper)})`;
      shown.add(c.footnote);
      return cellText(c);
    });
    const cells = [r.encoder.label, r.encoder.kind ? KIND_LABELS[r.encoder.kind] : '?', ...texts];
    out.push(`| ${cells.map(mdEscape).join(' | ')} |`);
  }
  if (t.footnotes.length) {
    out.push('');
    for (const f of t.footnotes) {
      // a fix that is one command is code; a sentence with its own `code` spans stays prose
      const fix = f.fix ? (f.fix.includes('`') ? mdEscape(f.fix) : `\`${f.fix}\``) : '';
      out.push(`[${f.n}] skipped: ${mdEscape(f.reason)}${fix ? `. Fix: ${fix}` : ''}`);
      out.push('');
    }
    out.pop();
  }
  out.push('');
  return out.join('\n');
}

/** RFC 4180 field quoting. */
export function csvField(v: string | number | undefined): string {
  if (v === undefined) return '';
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(Number(v.toFixed(6))) : '') : v;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const TABLE_CSV_HEADER = [
  'table',
  'encoder',
  'encoder_label',
  'kind',
  'task',
  'train_set',
  'test_set',
  'budget',
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

/** CSV in long form: one line per (encoder, column group, metric). */
export function tableCsv(t: TableModel): string {
  const lines = [TABLE_CSV_HEADER.join(',')];
  for (const r of t.rows) {
    r.cells.forEach((c, i) => {
      const col = t.columnGroups[Math.floor(i / METRICS.length)];
      const g = c.group;
      const s = g?.stats[c.metric];
      const note: string[] = [];
      if (c.skip) note.push(`skipped: ${c.skip.reason}${c.skip.fix ? ` (fix: ${c.skip.fix})` : ''}`);
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

/** Unicode that pdfLaTeX does not take as input, spelled in LaTeX. */
const TEX_UNICODE: Record<string, string> = {
  '±': '$\\pm$',
  '−': '$-$',
  '—': '---',
  '–': '--',
  Δ: '$\\Delta$',
  '×': '$\\times$',
  '≈': '$\\approx$',
  '…': '\\ldots{}',
  '→': '$\\to$',
  '≥': '$\\geq$',
  '≤': '$\\leq$',
};

/** Escapes LaTeX special characters in text (and spells the Unicode symbols used in notes), for pdfLaTeX. */
export function texEscape(s: string): string {
  return s
    .replace(/[\\{}$&#^_%~]/g, (ch) =>
      ch === '\\'
        ? '\\textbackslash{}'
        : ch === '~'
          ? '\\textasciitilde{}'
          : ch === '^'
            ? '\\textasciicircum{}'
            : `\\${ch}`,
    )
    .replace(/[±−—–Δ×≈…→≥≤]/g, (ch) => TEX_UNICODE[ch]);
}

function texCell(c: TableCell): string {
  const paper = c.paper === undefined ? '--' : fmt(c.paper);
  const small = (s: string) => `{\\scriptsize(${s})}`;
  switch (c.status) {
    case 'done':
    case 'partial': {
      const ours = Number.isFinite(c.sd) ? `$${fmt(c.mean)} \\pm ${fmt(c.sd)}$` : `$${fmt(c.mean)}$`;
      const diff = c.diff === undefined ? '' : `, $${fmtDiff(c.diff, true)}$`;
      const mark = c.status === 'partial' ? `\\textsuperscript{${c.n}/${c.seeds}}` : '';
      return `${ours}${mark} ${small(`${paper}${diff}`)}`;
    }
    case 'skipped':
      return `\\emph{skipped}\\textsuperscript{${c.footnote}} ${small(paper)}`;
    case 'failed':
      return `\\emph{failed: ${texEscape(c.failures.join(', '))}} ${small(paper)}`;
    case 'pending':
      return `\\emph{pending} ${small(paper)}`;
    default:
      return `\\emph{not run} ${small(paper)}`;
  }
}

/** LaTeX (booktabs + graphicx): a `table*` with grouped column headers, notes and footnotes. */
export function tableLatex(t: TableModel): string {
  const nData = t.columnGroups.length * METRICS.length;
  const out: string[] = [
    '% Generated by qcbench report. Requires \\usepackage{booktabs,graphicx}.',
    '\\begin{table*}[t]',
    '\\centering',
    `\\caption{${texEscape(t.title.replace(/^Table \d+\.\s*/, ''))}. ${texEscape(t.caption)}}`,
    `\\label{tab:qcbench-${t.id}}`,
    '\\resizebox{\\textwidth}{!}{%',
    `\\begin{tabular}{ll${'c'.repeat(nData)}}`,
    '\\toprule',
  ];
  const groupHead = t.columnGroups.map((g) => `\\multicolumn{3}{c}{${texEscape(g.title)}}`);
  out.push(` & & ${groupHead.join(' & ')} \\\\`);
  out.push(t.columnGroups.map((_, i) => `\\cmidrule(lr){${3 + 3 * i}-${5 + 3 * i}}`).join(' '));
  const metricHead = t.columnGroups.flatMap(() => METRICS.map((m) => METRIC_LABELS[m]));
  out.push(`Encoder & Kind & ${metricHead.join(' & ')} \\\\`);
  out.push('\\midrule');
  for (const r of t.rows) {
    const kind = r.encoder.kind ? KIND_LABELS[r.encoder.kind] : '?';
    out.push(`${texEscape(r.encoder.label)} & ${texEscape(kind)} & ${r.cells.map(texCell).join(' & ')} \\\\`);
  }
  out.push('\\bottomrule', '\\end{tabular}}', '');
  const notes = [
    ...t.notes,
    ...t.footnotes.map((f) => `${f.n}: skipped: ${f.reason}${f.fix ? `. Fix: ${f.fix}` : ''}`),
  ];
  if (notes.length) out.push(`\\par\\smallskip{\\footnotesize ${notes.map(texEscape).join(' \\\\ ')}}`);
  out.push('\\end{table*}', '');
  return out.join('\n');
}

// ───────────────────────────── all groups ─────────────────────────────

export const GROUPS_CSV_HEADER = [
  'encoder',
  'encoder_label',
  'kind',
  'task',
  'train_set',
  'test_set',
  'budget',
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
    for (const m of METRICS) {
      const p = ref.get(
        (PAPER_LABELS as Record<string, string>)[g.key.encoder] ?? '',
        g.key.task,
        g.paperTestSet,
        g.key.budget,
        m,
      );
      vals.push(g.stats[m].mean, g.stats[m].sd, p?.percent);
    }
    lines.push(vals.map(csvField).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** Markdown of every group: a long table (one line per encoder × task × budget × test set). */
export function groupsMarkdown(agg: Aggregate, ref: Reference): string {
  const out = [
    '## All results',
    '',
    "Every group of cells in the run (mean ± sd over finished seeds, percent; the paper's figure in brackets where it has the same setting).",
    '',
    '| Encoder | Kind | Task | Train | Test | Images | Seeds | Acc | F1 | AUC | Status |',
    '| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const g of agg.groups) {
    const metricCells = METRICS.map((m) => {
      const p = ref.get(
        (PAPER_LABELS as Record<string, string>)[g.key.encoder] ?? '',
        g.key.task,
        g.paperTestSet,
        g.key.budget,
        m,
      );
      const c = makeCell(g, m, p ? { percent: p.percent, budget: g.key.budget } : undefined);
      if (c.n === 0) return '—';
      return `${fmtOurs(c)}${p ? ` (${fmt(p.percent)})` : ''}`;
    });
    const status: string[] = [];
    if (g.done.length) status.push(`${g.done.length} done`);
    if (g.failed.length)
      status.push(`${g.failed.length} failed (${[...new Set(g.failed.map(errorCode))].sort().join(', ')})`);
    if (g.skipped.length) status.push(`${g.skipped.length} skipped (${g.skipped[0].skip?.reason ?? 'no reason'})`);
    if (g.pending.length) status.push(`${g.pending.length} pending`);
    const row = [
      g.label,
      g.kind ? KIND_LABELS[g.kind] : '?',
      taskTitle(g.key.task),
      g.key.train_set,
      g.key.test_set,
      String(g.key.budget),
      String(g.seeds.length),
      ...metricCells,
      status.join('; '),
    ];
    out.push(`| ${row.map(mdEscape).join(' | ')} |`);
  }
  out.push('');
  return out.join('\n');
}

/** One line per cell (per seed): the raw numbers behind every table. */
export function cellsCsv(cells: readonly CellRecord[]): string {
  const head = [
    'id',
    'encoder',
    'encoder_label',
    'kind',
    'task',
    'train_set',
    'test_set',
    'budget',
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

// ───────────────────────────── recall per artefact type ─────────────────────────────

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
      const s = meanSdOf(per.map((x) => x.recall));
      recall[t] = { mean: s.mean, sd: s.sd, n: s.n, images: per.reduce((a, x) => a + x.n, 0) };
    }
    rows.push({ group: g, recall });
  }
  return { types: sorted, rows };
}

function meanSdOf(v: number[]): { mean: number; sd: number; n: number } {
  const n = v.length;
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const sd = n < 2 ? Number.NaN : Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  return { mean, sd, n };
}

/** Markdown of the recall-per-artefact-type table. */
export function recallMarkdown(r: RecallTable): string {
  const out = [
    '## Recall of abnormal images per artefact type',
    '',
    'Share of abnormal test images of each type that the classifier flagged (percent, mean ± sd over finished seeds; in brackets the number of such images over all seeds). A QC filter lets the missed share through.',
    '',
    `| Encoder | Task | Train | Test | Images | ${r.types.map(mdEscape).join(' | ')} |`,
    `| --- | --- | --- | --- | ---: |${r.types.map(() => ' ---: |').join('')}`,
  ];
  for (const { group: g, recall } of r.rows) {
    const cells = r.types.map((t) => {
      const x = recall[t];
      if (!x) return '—';
      return `${Number.isFinite(x.sd) ? `${fmt(x.mean)} ± ${fmt(x.sd)}` : fmt(x.mean)} (${x.images})`;
    });
    out.push(
      `| ${[g.label, taskTitle(g.key.task), g.key.train_set, g.key.test_set, String(g.key.budget), ...cells].map(mdEscape).join(' | ')} |`,
    );
  }
  out.push('');
  return out.join('\n');
}

/** CSV of the recall table in long form: one line per group and artefact type. */
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
