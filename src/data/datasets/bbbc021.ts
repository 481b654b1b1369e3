import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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
import { parseCsv, readCsv, requireColumns } from './csv-parse.js';

/**
 * BBBC021 (Caie et al. 2010, MCF-7; Broad Bioimage Benchmark Collection): `BBBC021_v1_image.csv` with
 * `Image_FileName_<ch>` / `Image_PathName_<ch>` for DAPI, Tubulin, Actin, plate folders, and `BBBC021_v1_moa.csv`
 * (compound, concentration → mechanism of action).
 */

export const BBBC021_CHANNELS = ['DAPI', 'Tubulin', 'Actin'] as const;

/** RGB = Actin → red, Tubulin → green, DAPI → blue: the same roles as BBBC022's composite (cytoskeleton, organelle, DNA). */
export const BBBC021_DEFAULT_CHANNELS = ['Actin', 'Tubulin', 'DAPI'];

/**
 * Reads the BBBC021 image table (+ MoA table when present) into fields. Plate and well must be safe ids
 * (src/util/ids.ts; `Week4_27481`, `B02`), and a plate/well/site on two rows is refused with QCB_CSV_VALUE naming
 * both lines unless the rows name the same image files (overlapping tables), which are read once.
 */
export function readBbbc021(opts: ReaderOptions): FieldSet {
  const { root, channels, dnaChannel } = readerChannels(
    opts,
    BBBC021_CHANNELS,
    BBBC021_DEFAULT_CHANNELS,
    'DAPI',
    'BBBC021',
  );
  let tables = opts.tables?.map((t) => resolve(t));
  if (!tables) {
    tables = findTablesWithHeader(root, /image.*\.csv$/i, 'Image_FileName_DAPI');
    if (tables.length === 0) {
      throw new QcbError('QCB_FILE_NOT_FOUND', 'no BBBC021 image table (BBBC021_v1_image.csv) under the root', {
        file: root,
        fix: 'pass --root DIR holding BBBC021_v1_image.csv and the plate folders, or name the table with --table',
      });
    }
  }
  // MoA annotations: compound + concentration → moa (only a subset of treatments has one).
  const moa = new Map<string, string>();
  for (const dir of new Set([root, ...tables.map((t) => dirname(t))])) {
    const p = join(dir, 'BBBC021_v1_moa.csv');
    if (!existsSync(p)) continue;
    const m = readCsv(p);
    requireColumns(m, ['compound', 'concentration', 'moa'], 'use the BBBC021_v1_moa.csv distributed with BBBC021');
    for (const { values } of m.rows) moa.set(`${values.compound}|${Number(values.concentration)}`, values.moa);
    break;
  }
  const fields: Field[] = [];
  const skipped: SkippedField[] = [];
  const taken = new FieldRows();
  for (const table of tables) {
    const t = parseCsv(readFileSync(table, 'utf8'), table);
    requireColumns(
      t,
      channels.flatMap((c) => [`Image_FileName_${c}`, `Image_PathName_${c}`]),
      'use BBBC021_v1_image.csv (Image_FileName_<DAPI|Tubulin|Actin>, Image_PathName_<…>), or --dataset csv for other layouts',
    );
    skipMalformedLines(t, table, skipped);
    for (const { line, values } of t.rows) {
      const dnaFile = values[`Image_FileName_${dnaChannel}`];
      const fromName = wellSiteFromName(dnaFile);
      const plate = values.Image_Metadata_Plate_DAPI || values.Image_Metadata_Plate || '';
      const well = (values.Image_Metadata_Well_DAPI || values.Image_Metadata_Well || fromName.well || '').toUpperCase();
      const site = fromName.site ?? Number(values.Image_Metadata_Site);
      if (!plate || !well || !Number.isInteger(site)) {
        skipTableLine(table, line, `line ${line}: cannot tell plate/well/site`, skipped);
        continue;
      }
      checkRowId(plate, values, ['Image_Metadata_Plate_DAPI', 'Image_Metadata_Plate'], table, line);
      checkRowId(well, values, ['Image_Metadata_Well_DAPI', 'Image_Metadata_Well'], table, line);
      const id = fieldId(plate, well, site);
      const { paths, missing } = resolveChannelPaths(
        root,
        channels,
        (c) => ({ pathName: values[`Image_PathName_${c}`], fileName: values[`Image_FileName_${c}`] }),
        opts.checkFiles,
      );
      if (!taken.take(id, table, line, 'plate/well/site', Object.values(paths).join('\n'))) continue;
      const compound = values.Image_Metadata_Compound ?? '';
      const concentration = values.Image_Metadata_Concentration ?? '';
      const metadata: Record<string, string> = {
        compound,
        concentration,
        moa: moa.get(`${compound}|${Number(concentration)}`) ?? '',
        replicate: values.Replicate ?? '',
        table_number: values.TableNumber ?? '',
        image_number: values.ImageNumber ?? '',
      };
      acceptField({ field_id: id, plate, well, site, channels: paths, metadata }, missing, table, line, opts, {
        fields,
        skipped,
      });
    }
  }
  return { dataset: 'bbbc021', root, channels, dnaChannel, fields, skipped };
}
