/**
 * Writing CSV: one quoting rule for every table qcbench writes, so that pandas, R and qcbench's own reader
 * (src/data/datasets/csv-parse.ts) read back exactly the text that was written.
 */

/**
 * One CSV field (RFC 4180): quoted, with inner quotes doubled, when it contains `,` `"` `\n` or `\r`, or starts or
 * ends with whitespace (qcbench's reader trims unquoted fields, so padding survives only inside quotes); otherwise
 * the text as is. Numbers are written with `String`.
 */
export function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One CSV line (without the line break): the fields quoted by {@link csvCell} and joined with commas. */
export function csvLine(cells: readonly (string | number)[]): string {
  return cells.map(csvCell).join(',');
}
