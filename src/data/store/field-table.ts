/**
 * The store's field table, `STORE/fields.csv`: one row per field the crop pipeline was given, whatever came of it —
 * crops cut (`ok`), no nucleus found (`no_nuclei`), nuclei found but every crop dropped at the border (`no_crops`), or
 * an image that could not be read (`unreadable`, with the error code and message). So a field with no crops (an empty
 * well, a field far out of focus, the lamp off) is still known to whatever reads the store (`qcbench qc apply`).
 *
 * When extraction was given a field measurer (see {@link FieldMeasurer}), each row also holds whole-field image
 * quality measures per channel, in CellProfiler's column naming `ImageQuality_<Measure>_<channel>`, computed on the
 * raw field (before any intensity normalisation) where the image is already decoded, so no later step re-reads the
 * images. The table is appended field by field (in field order) and cut back to the last checkpoint on resume.
 *
 * ```
 * field_id, plate, well, site, status, crops, nuclei, code, message, ImageQuality_<Measure>_<channel>…
 * ```
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { QcbError } from '../../errors.js';
import { csvLine } from '../../util/csv.js';
import { parseCsvRecords } from '../datasets/csv-parse.js';
import type { ImageData, SkippedField } from '../types.js';

export const FIELD_TABLE = 'fields.csv';

/** What came of a field in the crop pipeline. */
export const FIELD_STATUSES = ['ok', 'no_nuclei', 'no_crops', 'unreadable'] as const;
export type FieldStatus = (typeof FIELD_STATUSES)[number];

const FIXED = ['field_id', 'plate', 'well', 'site', 'status', 'crops', 'nuclei', 'code', 'message'] as const;

/** One field of the store's field table. */
export interface FieldRecord {
  field_id: string;
  plate: string;
  well: string;
  /** NaN when unknown (a table line a reader could not place). */
  site: number;
  status: FieldStatus;
  /** Crops cut from the field. */
  crops: number;
  /** Nuclei found (or imported centres); 0 for an unreadable field. */
  nuclei: number;
  /** Error code and message of an unreadable field ('' otherwise). */
  code: string;
  message: string;
  /** `ImageQuality_<Measure>_<channel>` → value (absent when not measured, e.g. unreadable). */
  measures: Record<string, number>;
}

/**
 * Whole-field image-quality measures, computed in the crop pipeline's workers on each decoded channel image.
 * The crop pipeline (data/) does not import the measures (metrics/ sits above it): a caller passes the URL of a
 * module exporting `fieldMeasurer: FieldMeasurer`, which the workers import, since a function cannot be sent to a
 * worker thread.
 */
export interface FieldMeasurer {
  /** Recorded in the store's params (which measures, which version). */
  id: string;
  /** Measure names, in column order. */
  measures: readonly string[];
  /**
   * Measures of one single-channel image (H×W, raw bit depth), keyed by the names in `measures` (NaN: not measured
   * for this channel); `dna` marks the channel nuclei are found on.
   */
  measure(img: ImageData, o: { dna: boolean }): Record<string, number>;
}

const measurers = new Map<string, Promise<FieldMeasurer>>();

/** Imports (once per thread) the measurer of the module at `url`. */
export function loadFieldMeasurer(url: string): Promise<FieldMeasurer> {
  let p = measurers.get(url);
  if (!p) {
    p = import(url).then((m: { fieldMeasurer?: FieldMeasurer }) => {
      if (!m.fieldMeasurer)
        throw new QcbError('QCB_INTERNAL', `${url} exports no fieldMeasurer`, { fix: 'report this bug' });
      return m.fieldMeasurer;
    });
    measurers.set(url, p);
  }
  return p;
}

/** The measure column of a measure and channel (CellProfiler's MeasureImageQuality naming). */
export function measureColumn(measure: string, channel: string): string {
  return `ImageQuality_${measure}_${channel}`;
}

/** The table's header: fixed columns, then each measure for each channel (channel-major). */
export function fieldTableColumns(measures: readonly string[], channels: readonly string[]): string[] {
  return [...FIXED, ...channels.flatMap((c) => measures.map((m) => measureColumn(m, c)))];
}

/** One line of the table (with its line break); measure columns a record lacks are empty. */
export function fieldTableLine(r: FieldRecord, columns: readonly string[]): string {
  const cells = columns.map((c) => {
    if (c in r && c !== 'measures') {
      const v = r[c as keyof FieldRecord] as string | number;
      return typeof v === 'number' && !Number.isFinite(v) ? '' : typeof v === 'string' ? v.replace(/[\r\n]+/g, ' ') : v;
    }
    const m = r.measures[c];
    return m === undefined || !Number.isFinite(m) ? '' : m;
  });
  return `${csvLine(cells)}\n`;
}

/**
 * Reads STORE/fields.csv, or returns undefined for a store made before the table existed.
 * @throws QCB_STORE for a table whose header lacks the fixed columns
 */
export function readFieldTable(storePath: string): { columns: string[]; fields: FieldRecord[] } | undefined {
  const file = join(storePath, FIELD_TABLE);
  if (!existsSync(file)) return undefined;
  const [head, ...rows] = parseCsvRecords(readFileSync(file, 'utf8')).filter((r) => r.cells.join('') !== '');
  const columns = head?.cells ?? [];
  if (FIXED.some((c, i) => columns[i] !== c)) {
    throw new QcbError('QCB_STORE', `${FIELD_TABLE} does not start with the columns ${FIXED.join(',')}`, {
      file,
      fix: 'the store was modified: recreate it with `qcbench data crops`',
    });
  }
  const fields = rows.map(({ cells }) => {
    const measures: Record<string, number> = {};
    for (let j = FIXED.length; j < columns.length; j++) if (cells[j]) measures[columns[j]] = Number(cells[j]);
    return {
      field_id: cells[0],
      plate: cells[1],
      well: cells[2],
      site: cells[3] === '' ? Number.NaN : Number(cells[3]),
      status: cells[4] as FieldStatus,
      crops: Number(cells[5]),
      nuclei: Number(cells[6]),
      code: cells[7] ?? '',
      message: cells[8] ?? '',
      measures,
    };
  });
  return { columns, fields };
}

/**
 * Appends rows to STORE/fields.csv. `resumeBytes` (the length recorded at the last checkpoint) cuts a resumed table
 * back to it; without it the table starts fresh with its header. Rows are buffered until `sync()`, which writes and
 * fsyncs them and returns the byte length to record in the checkpoint (no file stays open between batches).
 */
export class FieldTableWriter {
  private readonly file: string;
  private bytes = 0;
  private pending = '';

  constructor(
    storePath: string,
    readonly columns: readonly string[],
    resumeBytes?: number,
  ) {
    this.file = join(storePath, FIELD_TABLE);
    if (resumeBytes !== undefined && existsSync(this.file)) {
      const fd = openSync(this.file, 'r+');
      try {
        ftruncateSync(fd, resumeBytes);
      } finally {
        closeSync(fd);
      }
      this.bytes = resumeBytes;
    } else {
      closeSync(openSync(this.file, 'w'));
      this.pending = `${csvLine(columns)}\n`;
      this.sync();
    }
  }

  append(r: FieldRecord): void {
    this.pending += fieldTableLine(r, this.columns);
  }

  /** Writes the buffered rows and flushes them to disk; returns the table's byte length. */
  sync(): number {
    const fd = openSync(this.file, 'r+');
    try {
      const b = Buffer.from(this.pending);
      let off = 0;
      while (off < b.length) off += writeSync(fd, b, off, b.length - off, this.bytes + off);
      fsyncSync(fd);
      this.bytes += b.length;
      this.pending = '';
    } finally {
      closeSync(fd);
    }
    return this.bytes;
  }
}

/** The row of a field a reader or the extraction could not read (reason `unreadable`). */
export function unreadableField(s: SkippedField): FieldRecord {
  return {
    field_id: s.field_id,
    plate: s.plate ?? '',
    well: s.well ?? '',
    site: s.site ?? Number.NaN,
    status: 'unreadable',
    crops: 0,
    nuclei: 0,
    code: s.code,
    message: s.message,
    measures: {},
  };
}
