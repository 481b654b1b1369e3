import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { QcbError } from '../../errors.js';
import { checkId } from '../../util/ids.js';
import type { Field, FieldSet, SkippedField } from '../types.js';
import {
  acceptField,
  checkChannels,
  FieldRows,
  findTables,
  type ReaderOptions,
  resolveChannelPaths,
  skipMalformedLines,
  wellSiteFromName,
} from './common.js';
import { parseCsv, requireColumns } from './csv-parse.js';

/**
 * A generic screen: one CSV row per field with a `field_id` column and one `path_<channel>` column per channel
 * (paths relative to the root, or absolute), plus optional `plate`, `well`, `site` and any other metadata columns.
 * Single-channel data is allowed; `dnaChannel` names the nuclear stain.
 */

/** Channel names that are taken as the nuclear stain when `dnaChannel` is not given. */
const DNA_NAMES = ['dna', 'dapi', 'hoechst', 'nuclei', 'nucleus', 'h2b'];

/**
 * Reads a generic field table (default: `fields.csv` in the root, else the only CSV there).
 *
 * `field_id`, `plate`, `well` and `site` become crop ids and file names, so each must be a safe id (letters, digits,
 * `-`, `_`, `.`; src/util/ids.ts), and one `field_id` names one row: a second row with the same `field_id` (in any
 * of the tables) is refused with QCB_CSV_VALUE naming both lines, since its crops would repeat the first's crop ids.
 */
export function readCsvDataset(opts: ReaderOptions): FieldSet {
  const root = resolve(opts.root);
  let tables = opts.tables?.map((t) => resolve(t));
  if (!tables) {
    const all = findTables(root, /\.csv$/i).filter((f) => dirname(f) === root);
    const named = all.filter((f) => /(^|[\\/])fields\.csv$/i.test(f));
    tables = named.length ? named : all.length === 1 ? all : [];
    if (tables.length === 0) {
      throw new QcbError(
        'QCB_FILE_NOT_FOUND',
        all.length
          ? 'several CSV files in the root: which is the field table?'
          : 'no field table (fields.csv) in the root',
        {
          file: root,
          value: all.length ? all : undefined,
          fix: 'name the table with --table FILE (columns field_id, path_<channel>…)',
        },
      );
    }
  }
  let channels: string[] | undefined;
  let dnaChannel = '';
  const fields: Field[] = [];
  const skipped: SkippedField[] = [];
  const taken = new FieldRows();
  for (const table of tables) {
    const t = parseCsv(readFileSync(table, 'utf8'), table);
    const available = t.header.filter((h) => h.startsWith('path_')).map((h) => h.slice(5));
    requireColumns(
      t,
      ['field_id', ...(available.length ? [] : ['path_<channel>'])],
      'write one row per field with a field_id column and one path_<channel> column per channel (e.g. path_dna)',
    );
    if (!channels) {
      channels = opts.channels ?? available;
      checkChannels(channels, available, 'CSV');
      if (opts.dnaChannel) dnaChannel = opts.dnaChannel;
      else if (channels.length === 1) dnaChannel = channels[0];
      else {
        const guess = channels.find((c) => DNA_NAMES.includes(c.toLowerCase()));
        if (!guess) {
          throw new QcbError('QCB_USAGE', 'which channel is the nuclear stain?', {
            file: table,
            key: '--dna-channel',
            allowed: channels.join(', '),
            fix: 'pass --dna-channel NAME (NAME as in the path_NAME column)',
          });
        }
        dnaChannel = guess;
      }
      checkChannels([dnaChannel], channels, 'DNA (must be one of the selected)');
    } else {
      requireColumns(
        t,
        channels.map((c) => `path_${c}`),
        'give every field table the same path_<channel> columns',
      );
    }
    const meta = t.header.filter((h) => h !== 'field_id' && !h.startsWith('path_'));
    skipMalformedLines(t, table, skipped);
    for (const { line, values } of t.rows) {
      const id = values.field_id;
      if (!id) {
        skipped.push({
          field_id: '',
          file: table,
          row: line,
          code: 'QCB_CSV_VALUE',
          message: `line ${line}: empty field_id`,
        });
        continue;
      }
      checkId(id, { file: table, key: 'field_id', line });
      for (const k of ['plate', 'well', 'site'])
        if (values[k] !== undefined && values[k] !== '') checkId(values[k], { file: table, key: k, line });
      taken.take(id, table, line, 'field_id');
      const fromName = wellSiteFromName(values[`path_${dnaChannel}`] ?? '');
      const siteNum = Number(values.site);
      const site =
        values.site !== undefined && values.site !== '' && Number.isInteger(siteNum) ? siteNum : (fromName.site ?? 1);
      const plate = values.plate || id;
      const well = values.well || fromName.well || 'NA';
      const { paths, missing } = resolveChannelPaths(
        root,
        channels,
        (c) => ({ pathName: '', fileName: values[`path_${c}`] }),
        opts.checkFiles,
      );
      const metadata: Record<string, string> = {};
      for (const k of meta) if (k !== 'plate' && k !== 'well' && k !== 'site') metadata[k] = values[k];
      acceptField({ field_id: id, plate, well, site, channels: paths, metadata }, missing, table, line, opts, {
        fields,
        skipped,
      });
    }
  }
  return { dataset: 'csv', root, channels: channels ?? [], dnaChannel, fields, skipped };
}
