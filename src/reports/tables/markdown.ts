/**
 * Markdown writers of the report's tables: Tables 1–3 of Masud et al. 2022 (rows = encoders, columns = task/budget ×
 * Acc/F1/AUC), the all-results table and the recall per artefact type. Pure functions of the model in model.ts.
 */
import type { Aggregate } from '../aggregate.js';
import { KIND_LABELS, METRIC_LABELS, METRICS, type Reference } from '../reference.js';
import { fmt, fmtDiff, fmtOurs } from './format.js';
import {
  degenerateText,
  errorCode,
  groupPaperFigure,
  makeCell,
  type RecallTable,
  type TableCell,
  type TableModel,
  taskTitle,
} from './model.js';

/** Plain-text cell of Tables 1–3 (Markdown): ours (paper, Δ), or the status with the paper's figure. */
export function cellText(c: TableCell): string {
  const paper = c.paper === undefined ? '—' : fmt(c.paper);
  const extra: string[] = [];
  if (c.status === 'partial') {
    extra.push(`${c.n}/${c.seeds} seeds`);
    if (c.degenerateSeeds) extra.push(degenerateText(c));
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
    case 'degenerate':
      return `degenerate: ${c.degenerateSeeds}/${c.seeds} seeds predicted one class${c.failures.length ? `; failed: ${c.failures.join(', ')}` : ''} (paper ${paper})`;
    case 'failed':
      return `failed: ${c.failures.join(', ')} (paper ${paper})`;
    case 'pending':
      return `pending (paper ${paper})`;
    default:
      return `not run (paper ${paper})`;
  }
}

const mdEscape = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

/** Table 1, 2 or 3 of the paper as Markdown: title, notes, a pipe table (rows = encoders, columns = task/budget × Acc/F1/AUC), footnotes. */
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

/** Markdown of every group, beside the paper's Tables 1–3 where it has the setting: a long table (one line per encoder × task × budget × test set). */
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
      const p = groupPaperFigure(ref, g, m);
      const c = makeCell(g, m, p === undefined ? undefined : { percent: p, budget: g.key.budget });
      if (c.n === 0) return '—';
      return `${fmtOurs(c)}${p === undefined ? '' : ` (${fmt(p)})`}`;
    });
    const status: string[] = [];
    if (g.done.length) status.push(`${g.done.length} done`);
    if (g.degenerate.length) status.push(`${g.degenerate.length} degenerate (one class predicted, not in the mean)`);
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
