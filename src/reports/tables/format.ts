/**
 * Number formats shared by every writer of Tables 1–3 (Markdown, CSV notes, LaTeX, HTML): two decimals as the paper
 * prints them, so our figures and the paper's line up digit for digit.
 */
import type { TableCell } from './model.js';

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
