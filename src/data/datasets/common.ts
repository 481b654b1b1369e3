import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { QcbError } from '../../errors.js';
import { checkId } from '../../util/ids.js';
import { logger } from '../../util/log.js';
import type { Field, FieldSet, SkippedField } from '../types.js';
import type { CsvTable } from './csv-parse.js';

/** Options every dataset reader takes. */
export interface ReaderOptions {
  /** Folder the tables' image paths are relative to (and where tables are looked for). */
  root: string;
  /** Explicit table file(s); default: discovered in `root`. */
  tables?: string[];
  /** Channel names in crop-channel order (default: the reader's default mapping). */
  channels?: string[];
  /** The nuclear stain (default: the reader's DNA channel). */
  dnaChannel?: string;
  /** Throw on the first missing channel file instead of listing the field as skipped. */
  strict?: boolean;
  /** Check that every channel file exists (default true). */
  checkFiles?: boolean;
}

/** A dataset reader: a table layout → fields. */
export type DatasetReader = (opts: ReaderOptions) => FieldSet;

/**
 * Resolves an image path from a table. Tables record the acquisition folder (`20585/`, `Week4/Week4_27481`) but
 * downloads are often unpacked differently, so we try, in order: root/pathName/file, root/<last folder of
 * pathName>/file, root/file. The first that exists wins; when none does, the first candidate is returned.
 */
export function resolveImagePath(
  root: string,
  pathName: string,
  fileName: string,
): { path: string; exists: boolean; tried: string[] } {
  if (isAbsolute(fileName)) return { path: fileName, exists: existsSync(fileName), tried: [fileName] };
  const tried: string[] = [];
  const add = (p: string) => {
    if (!tried.includes(p)) tried.push(p);
  };
  if (pathName) {
    add(isAbsolute(pathName) ? join(pathName, fileName) : resolve(root, pathName, fileName));
    const last = basename(pathName.replace(/[\\/]+$/, ''));
    if (last) add(resolve(root, last, fileName));
  }
  add(resolve(root, fileName));
  for (const p of tried) if (existsSync(p)) return { path: p, exists: true, tried };
  return { path: tried[0], exists: false, tried };
}

/** The error (or skipped entry) for a channel file that does not exist. */
export function channelMissing(
  table: string,
  line: number,
  fieldId: string,
  channel: string,
  tried: string[],
): QcbError {
  return new QcbError('QCB_CHANNEL_MISSING', `field ${fieldId}: ${channel} image not found (table line ${line})`, {
    file: tried[0],
    key: `${table}:${line} ${channel}`,
    value: tried.length > 1 ? tried : undefined,
    fix: 'point --root at the folder the table paths are relative to, or drop the channel with --channels; without --strict such fields are skipped and listed in skipped.csv',
  });
}

/**
 * Adds a field after checking its channel files: a missing file throws in strict mode and is recorded in `skipped`
 * otherwise.
 */
export function acceptField(
  field: Field,
  missing: { channel: string; tried: string[] }[],
  table: string,
  line: number,
  opts: ReaderOptions,
  out: { fields: Field[]; skipped: SkippedField[] },
): void {
  if (missing.length === 0) {
    out.fields.push(field);
    return;
  }
  const err = channelMissing(table, line, field.field_id, missing[0].channel, missing[0].tried);
  if (opts.strict) throw err;
  out.skipped.push({
    field_id: field.field_id,
    file: missing[0].tried[0],
    row: line,
    code: err.code,
    message: err.message,
    plate: field.plate,
    well: field.well,
    site: field.site,
  });
}

/** Checks `channels` against the available names (QCB_UNKNOWN_NAME-style error under QCB_USAGE). */
export function checkChannels(requested: string[], available: readonly string[], what: string): void {
  for (const c of requested) {
    if (!available.includes(c)) {
      throw new QcbError('QCB_USAGE', `unknown ${what} channel '${c}'`, {
        key: '--channels',
        value: c,
        allowed: available.join(', '),
        fix: `choose channels among ${available.join(', ')}`,
      });
    }
  }
  if (requested.length === 0)
    throw new QcbError('QCB_USAGE', 'no channels selected', { key: '--channels', fix: 'name at least one channel' });
}

/**
 * The root, channels and DNA channel of a reader with a fixed channel set: the options' choice or the dataset's
 * defaults, checked against the dataset's channels (the DNA channel must be among the selected).
 */
export function readerChannels(
  opts: ReaderOptions,
  available: readonly string[],
  defaults: string[],
  defaultDna: string,
  dataset: string,
): { root: string; channels: string[]; dnaChannel: string } {
  const root = resolve(opts.root);
  const channels = opts.channels ?? defaults;
  checkChannels(channels, available, dataset);
  const dnaChannel = opts.dnaChannel ?? defaultDna;
  checkChannels([dnaChannel], channels, 'DNA (must be one of the selected)');
  return { root, channels, dnaChannel };
}

/** CSV files directly in `dir` (and one level below) whose name matches `re`. */
export function findTables(dir: string, re: RegExp): string[] {
  const out: string[] = [];
  const scan = (d: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory() && depth > 0) scan(p, depth - 1);
      else if (st.isFile() && re.test(n)) out.push(p);
    }
  };
  scan(dir, 1);
  return out;
}

/** Well and site from an ImageXpress file name (`…_B02_s3_w1….tif`). */
export function wellSiteFromName(fileName: string): { well?: string; site?: number } {
  const m = /(?:^|_)([A-P]\d{2})_s(\d+)(?:_w|\.|_)/i.exec(fileName);
  return m ? { well: m[1].toUpperCase(), site: Number(m[2]) } : {};
}

/**
 * Tables under `root` (as {@link findTables}) whose header line contains `marker`: how a reader tells its own image
 * tables from the other CSV files a download ships with.
 */
export function findTablesWithHeader(root: string, re: RegExp, marker: string): string[] {
  return findTables(root, re).filter((f) =>
    readFileSync(f, 'utf8').slice(0, 20_000).split(/\r?\n/)[0].includes(marker),
  );
}

/**
 * The fields a reader has taken so far, by field id, with the table line each came from. Two rows for one field
 * (one `field_id`; one plate/well/site in the BBBC tables) would give every crop of that field twice under the same
 * crop id, so the second row is refused with QCB_CSV_VALUE naming the file, both lines, the id and the fix — in every
 * mode, as it is a wrong table, not a missing file. The one exception is a BBBC row naming exactly the same image
 * files (`files`): the BBBC downloads ship overlapping tables (a plate table and the whole-screen export), and a
 * repeat of the same acquisition is the same field, read once.
 */
export class FieldRows {
  private readonly rows = new Map<string, { table: string; line: number; files?: string }>();

  /**
   * Takes field `id` from `table`:`line`. Returns true for a new field, false for an identical repeat (same `files`,
   * when given) that the caller leaves out; throws QCB_CSV_VALUE for any other repeat. `key` names the column(s)
   * the id is made of.
   */
  take(id: string, table: string, line: number, key: string, files?: string): boolean {
    const prev = this.rows.get(id);
    if (!prev) {
      this.rows.set(id, { table, line, files });
      return true;
    }
    if (files !== undefined && prev.files === files) return false;
    const first = prev.table === table ? `line ${prev.line}` : `${prev.table}:${prev.line}`;
    throw new QcbError('QCB_CSV_VALUE', `field ${id} is on two rows: ${first} and line ${line} of ${table}`, {
      file: table,
      key: `lines ${prev.line} and ${line}, column ${key}`,
      value: id,
      allowed: 'one row per field',
      fix:
        files === undefined
          ? `remove one of the two rows, or give them different ${key} values (each field's crops are named by it)`
          : `remove one of the two rows, or correct its ${key} (they name different images of one field)`,
    });
  }
}

/**
 * Checks that `value`, read from a table row from the first of `columns` that is not empty there, is a safe id
 * (src/util/ids.ts; QCB_CSV_VALUE naming that column and the line).
 */
export function checkRowId(
  value: string,
  values: Record<string, string>,
  columns: string[],
  table: string,
  line: number,
): void {
  checkId(value, { file: table, key: columns.find((c) => values[c]) ?? columns.join(' / '), line });
}

/** Logs every malformed line of `t` (read from `table`) and lists it in `skipped`. */
export function skipMalformedLines(t: CsvTable, table: string, skipped: SkippedField[]): void {
  for (const m of t.malformed) {
    logger.warn('skipping malformed table line', { file: table, line: m.line, reason: m.reason });
    skipped.push({
      field_id: '',
      file: table,
      row: m.line,
      code: 'QCB_CSV_VALUE',
      message: `malformed line: ${m.reason}`,
    });
  }
}

/** Logs a table line that names no usable field and lists it in `skipped` with `message`. */
export function skipTableLine(table: string, line: number, message: string, skipped: SkippedField[]): void {
  logger.warn('skipping table line', { file: table, line, reason: message });
  skipped.push({ field_id: '', file: table, row: line, code: 'QCB_CSV_VALUE', message });
}

/**
 * Resolves the image file of every channel of one table row (see {@link resolveImagePath}); `location(c)` gives the
 * row's folder and file name for channel `c`. Missing files are listed (with the paths tried) unless `checkFiles`
 * is false, ready for {@link acceptField}.
 */
export function resolveChannelPaths(
  root: string,
  channels: readonly string[],
  location: (channel: string) => { pathName: string; fileName: string },
  checkFiles: boolean | undefined,
): { paths: Record<string, string>; missing: { channel: string; tried: string[] }[] } {
  const paths: Record<string, string> = {};
  const missing: { channel: string; tried: string[] }[] = [];
  for (const c of channels) {
    const { pathName, fileName } = location(c);
    const r = resolveImagePath(root, pathName, fileName);
    paths[c] = r.path;
    if (checkFiles !== false && !r.exists) missing.push({ channel: c, tried: r.tried });
  }
  return { paths, missing };
}
