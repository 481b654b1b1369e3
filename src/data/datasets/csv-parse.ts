import { readFileSync } from 'node:fs';
import { QcbError } from '../../errors.js';

/**
 * A tolerant CSV parser (RFC 4180 plus what real screening tables contain): quoted fields with `""` escapes and
 * embedded commas/newlines, CRLF or LF, a UTF-8 BOM, blank lines. Rows whose column count differs from the header are
 * not silently mis-aligned: they are returned in `malformed` with their line number so readers can report and skip
 * them (real BBBC022 tables have a few such lines).
 */

export interface CsvTable {
  file: string;
  header: string[];
  /** Well-formed rows as column → value maps, with their 1-based line number (header = line 1). */
  rows: { line: number; values: Record<string, string> }[];
  /** Rows with the wrong number of cells or an unterminated quote. */
  malformed: { line: number; reason: string; text: string }[];
}

/** Splits CSV text into records of cells; each record carries the line it starts on. */
export function parseCsvRecords(
  text: string,
): { line: number; cells: string[]; unterminated?: boolean; text: string }[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: { line: number; cells: string[]; unterminated?: boolean; text: string }[] = [];
  let i = 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const startLine = line;
    const start = i;
    const cells: string[] = [];
    let cell = '';
    let inQuotes = false;
    let quoted = false;
    let done = false;
    while (i < n && !done) {
      const ch = text[i];
      if (inQuotes) {
        if (ch === '"') {
          if (text[i + 1] === '"') {
            cell += '"';
            i += 2;
            continue;
          }
          inQuotes = false;
          i++;
          continue;
        }
        if (ch === '\n') line++;
        cell += ch;
        i++;
        continue;
      }
      if (ch === '"' && cell.trim() === '' && !quoted) {
        inQuotes = true;
        quoted = true;
        cell = '';
        i++;
      } else if (ch === ',') {
        cells.push(quoted ? cell : cell.trim());
        cell = '';
        quoted = false;
        i++;
      } else if (ch === '\r' || ch === '\n') {
        i += ch === '\r' && text[i + 1] === '\n' ? 2 : 1;
        line++;
        done = true;
      } else {
        cell += ch;
        i++;
      }
    }
    cells.push(quoted ? cell : cell.trim());
    const rec = { line: startLine, cells, text: text.slice(start, i).replace(/\r?\n$/, '') };
    if (inQuotes) out.push({ ...rec, unterminated: true });
    else if (!(cells.length === 1 && cells[0] === '')) out.push(rec);
  }
  return out;
}

/** Parses CSV text with a header row. */
export function parseCsv(text: string, file: string): CsvTable {
  const recs = parseCsvRecords(text);
  if (recs.length === 0) {
    throw new QcbError('QCB_CSV_COLUMNS', 'CSV file is empty (no header row)', {
      file,
      fix: 'write a header row with the column names',
    });
  }
  const header = recs[0].cells;
  const rows: CsvTable['rows'] = [];
  const malformed: CsvTable['malformed'] = [];
  for (const r of recs.slice(1)) {
    if (r.unterminated) {
      malformed.push({ line: r.line, reason: 'unterminated quote', text: r.text.slice(0, 200) });
      continue;
    }
    // A trailing empty cell from a trailing comma is tolerated.
    const cells =
      r.cells.length === header.length + 1 && r.cells[header.length] === '' ? r.cells.slice(0, -1) : r.cells;
    if (cells.length !== header.length) {
      malformed.push({
        line: r.line,
        reason: `${cells.length} cells, header has ${header.length}`,
        text: r.text.slice(0, 200),
      });
      continue;
    }
    const values: Record<string, string> = {};
    for (let k = 0; k < header.length; k++) values[header[k]] = cells[k];
    rows.push({ line: r.line, values });
  }
  return { file, header, rows, malformed };
}

/** Reads and parses a CSV file (QCB_FILE_NOT_FOUND when absent). */
export function readCsv(file: string): CsvTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `cannot read CSV: ${(e as NodeJS.ErrnoException).code ?? e}`, {
      file,
      fix: 'check the path',
      cause: e,
    });
  }
  return parseCsv(text, file);
}

/** Throws QCB_CSV_COLUMNS naming the missing columns and the columns found. */
export function requireColumns(t: CsvTable, required: string[], fix: string): void {
  const have = new Set(t.header);
  const missing = required.filter((c) => !have.has(c));
  if (missing.length > 0) {
    throw new QcbError('QCB_CSV_COLUMNS', `CSV lacks required column(s) ${missing.join(', ')}`, {
      file: t.file,
      key: missing.join(', '),
      value: t.header.length > 30 ? [...t.header.slice(0, 30), `… (${t.header.length} columns)`] : t.header,
      allowed: required.join(', '),
      fix,
    });
  }
}
