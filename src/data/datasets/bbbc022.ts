import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { QcbError } from '../../errors.js';
import type { Field, FieldSet, SkippedField } from '../types.js';
import { fieldId } from '../types.js';
import {
  acceptField,
  checkRowId,
  FieldRows,
  findTablesWithHeader,
  type ReaderOptions,
  readerChannels,
  resolveChannelPaths,
  skipMalformedLines,
  skipTableLine,
  wellSiteFromName,
} from './common.js';
import { parseCsv, requireColumns } from './csv-parse.js';

/**
 * BBBC022 (Gustafsdottir et al. 2013, Cell Painting on U2OS; Broad Bioimage Benchmark Collection): per-plate image
 * tables with `Image_FileName_Orig<ch>` / `Image_PathName_Orig<ch>` for the five channels and `Image_Metadata_*`.
 */

/** The five BBBC022 channels (w1…w5). */
export const BBBC022_CHANNELS = ['Hoechst', 'ER', 'Syto', 'Ph_golgi', 'Mito'] as const;

/**
 * The paper's 3-channel composite (Masud et al. 2022 §3.1): RGB = Ph_golgi (WGA + phalloidin) → red,
 * MitoTracker → green, Hoechst → blue.
 */
export const BBBC022_DEFAULT_CHANNELS = ['Ph_golgi', 'Mito', 'Hoechst'];

/**
 * Reads BBBC022 image tables into fields. Malformed table lines are logged and listed in `skipped`. Plate and well
 * must be safe ids (src/util/ids.ts; `20585`, `A01`), and a plate/well/site on two rows is refused with
 * QCB_CSV_VALUE naming both lines unless the rows name the same image files (the per-plate tables and the
 * whole-screen export overlap), which are read once.
 */
export function readBbbc022(opts: ReaderOptions): FieldSet {
  const { root, channels, dnaChannel } = readerChannels(
    opts,
    BBBC022_CHANNELS,
    BBBC022_DEFAULT_CHANNELS,
    'Hoechst',
    'BBBC022',
  );
  let tables = opts.tables?.map((t) => resolve(t));
  if (!tables) {
    tables = findTablesWithHeader(root, /\.csv$/i, 'Image_FileName_OrigHoechst');
    if (tables.length === 0) {
      throw new QcbError(
        'QCB_FILE_NOT_FOUND',
        'no BBBC022 image table (a CSV with Image_FileName_OrigHoechst) under the root',
        {
          file: root,
          fix: 'pass --root DIR holding the per-plate tables (or BBBC022_v1_image.csv), or name them with --table',
        },
      );
    }
  }
  const fields: Field[] = [];
  const skipped: SkippedField[] = [];
  const taken = new FieldRows();
  for (const table of tables) {
    const t = parseCsv(readFileSync(table, 'utf8'), table);
    const required = channels.flatMap((c) => [`Image_FileName_Orig${c}`, `Image_PathName_Orig${c}`]);
    requireColumns(
      t,
      required,
      'use a BBBC022 per-plate image table (Image_FileName_Orig<channel>, Image_PathName_Orig<channel>), or --dataset csv for other layouts',
    );
    skipMalformedLines(t, table, skipped);
    for (const { line, values } of t.rows) {
      const dnaFile = values[`Image_FileName_Orig${dnaChannel}`];
      const fromName = wellSiteFromName(dnaFile);
      const plate = values.Image_Metadata_PlateID || values.Image_Metadata_Plate || '';
      const well = (
        values.Image_Metadata_CPD_WELL_POSITION ||
        values.Image_Metadata_Well ||
        fromName.well ||
        ''
      ).toUpperCase();
      const siteText = values.Image_Metadata_Site || String(fromName.site ?? '');
      const site = Number(siteText);
      if (!plate || !well || !Number.isInteger(site)) {
        const msg = `line ${line}: cannot tell plate/well/site (plate '${plate}', well '${well}', site '${siteText}')`;
        skipTableLine(table, line, msg, skipped);
        continue;
      }
      checkRowId(plate, values, ['Image_Metadata_PlateID', 'Image_Metadata_Plate'], table, line);
      checkRowId(well, values, ['Image_Metadata_CPD_WELL_POSITION', 'Image_Metadata_Well'], table, line);
      const id = fieldId(plate, well, site);
      const { paths, missing } = resolveChannelPaths(
        root,
        channels,
        (c) => ({ pathName: values[`Image_PathName_Orig${c}`], fileName: values[`Image_FileName_Orig${c}`] }),
        opts.checkFiles,
      );
      if (!taken.take(id, table, line, 'plate/well/site', Object.values(paths).join('\n'))) continue;
      const metadata: Record<string, string> = {};
      for (const [k, v] of Object.entries(values)) {
        if (k.startsWith('Image_Metadata_')) metadata[k.slice('Image_Metadata_'.length)] = v;
      }
      if (values.ImageNumber !== undefined) metadata.image_number = values.ImageNumber;
      if (values.Image_Metadata_SOURCE_COMPOUND_NAME !== undefined)
        metadata.compound = values.Image_Metadata_SOURCE_COMPOUND_NAME;
      if (values.Image_Metadata_CPD_MMOL_CONC !== undefined)
        metadata.concentration = values.Image_Metadata_CPD_MMOL_CONC;
      acceptField({ field_id: id, plate, well, site, channels: paths, metadata }, missing, table, line, opts, {
        fields,
        skipped,
      });
    }
  }
  return { dataset: 'bbbc022', root, channels, dnaChannel, fields, skipped };
}
