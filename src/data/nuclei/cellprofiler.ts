import { QcbError } from '../../errors.js';
import { readCsv } from '../datasets/csv-parse.js';
import type { Field } from '../types.js';
import type { Nucleus } from './segment.js';

/**
 * Nucleus centres imported from a CellProfiler object table (e.g. `Nuclei.csv` from ExportToSpreadsheet, or BBBC's
 * per-object exports): `Location_Center_X` / `Location_Center_Y` (optionally prefixed, `Nuclei_Location_Center_X`),
 * optional `AreaShape_Area`, and a key to the field, tried in this order:
 * - `field_id`;
 * - plate/well/site metadata (`Metadata_Plate`/`Metadata_PlateID`, `Metadata_Well`, `Metadata_Site`, with or
 *   without an `Image_` prefix);
 * - `ImageNumber` (plus `TableNumber` when both tables have one), matched to the fields' `image_number`
 *   (and `table_number`) metadata that the BBBC readers keep.
 */

function findColumn(header: string[], names: string[]): string | undefined {
  for (const n of names) {
    const exact = header.find((h) => h === n);
    if (exact) return exact;
  }
  for (const n of names) {
    const suffix = header.find((h) => h.endsWith(`_${n}`));
    if (suffix) return suffix;
  }
  return undefined;
}

/** Reads centres per field id. Rows that match no field are counted in `unmatched`, not fatal. */
export function readCellProfilerCentres(
  file: string,
  fields: Field[],
): { centres: Map<string, Nucleus[]>; unmatched: number; rows: number } {
  const t = readCsv(file);
  const xCol = findColumn(t.header, ['Location_Center_X']);
  const yCol = findColumn(t.header, ['Location_Center_Y']);
  if (!xCol || !yCol) {
    throw new QcbError('QCB_CSV_COLUMNS', 'object table lacks Location_Center_X / Location_Center_Y', {
      file,
      key: [xCol ? '' : 'Location_Center_X', yCol ? '' : 'Location_Center_Y'].filter(Boolean).join(', '),
      value: t.header.length > 30 ? [...t.header.slice(0, 30), '…'] : t.header,
      fix: 'export the nuclei object table from CellProfiler (ExportToSpreadsheet) with Location measurements',
    });
  }
  const areaCol = findColumn(t.header, ['AreaShape_Area']);
  const idCol = t.header.includes('field_id') ? 'field_id' : undefined;
  const plateCol = findColumn(t.header, [
    'Metadata_Plate',
    'Metadata_PlateID',
    'Image_Metadata_PlateID',
    'Image_Metadata_Plate_DAPI',
  ]);
  const wellCol = findColumn(t.header, [
    'Metadata_Well',
    'Image_Metadata_CPD_WELL_POSITION',
    'Image_Metadata_Well_DAPI',
  ]);
  const siteCol = findColumn(t.header, ['Metadata_Site', 'Image_Metadata_Site']);
  const imgCol = t.header.includes('ImageNumber') ? 'ImageNumber' : undefined;
  const tableCol = t.header.includes('TableNumber') ? 'TableNumber' : undefined;

  let keyOf: (v: Record<string, string>) => string;
  const index = new Map<string, string>();
  if (idCol) {
    for (const f of fields) index.set(f.field_id, f.field_id);
    keyOf = (v) => v[idCol];
  } else if (plateCol && wellCol && siteCol) {
    for (const f of fields) index.set(`${f.plate}|${f.well.toUpperCase()}|${f.site}`, f.field_id);
    keyOf = (v) => `${v[plateCol]}|${v[wellCol].toUpperCase()}|${Number(v[siteCol])}`;
  } else if (imgCol) {
    const useTable = tableCol !== undefined && fields.some((f) => f.metadata.table_number);
    for (const f of fields) {
      if (f.metadata.image_number)
        index.set(
          useTable ? `${f.metadata.table_number}|${f.metadata.image_number}` : f.metadata.image_number,
          f.field_id,
        );
    }
    if (index.size === 0) {
      throw new QcbError(
        'QCB_CSV_VALUE',
        'object table keys fields by ImageNumber, but the fields carry no image numbers',
        {
          file,
          key: 'ImageNumber',
          fix: 'add Metadata_Plate, Metadata_Well, Metadata_Site (or field_id) columns to the object table',
        },
      );
    }
    keyOf =
      useTable && tableCol ? (v) => `${Number(v[tableCol])}|${Number(v[imgCol])}` : (v) => String(Number(v[imgCol]));
    if (useTable) {
      // normalise the index keys the same way
      const norm = new Map<string, string>();
      for (const [k, id] of index) {
        const [a, b] = k.split('|');
        norm.set(`${Number(a)}|${Number(b)}`, id);
      }
      index.clear();
      for (const [k, id] of norm) index.set(k, id);
    } else {
      const norm = new Map<string, string>();
      for (const [k, id] of index) norm.set(String(Number(k)), id);
      index.clear();
      for (const [k, id] of norm) index.set(k, id);
    }
  } else {
    throw new QcbError('QCB_CSV_COLUMNS', 'object table has no column linking objects to fields', {
      file,
      value: t.header.length > 30 ? [...t.header.slice(0, 30), '…'] : t.header,
      allowed: 'field_id; or Metadata_Plate + Metadata_Well + Metadata_Site; or ImageNumber',
      fix: 'add field_id (or plate/well/site metadata) columns to the object table',
    });
  }
  const centres = new Map<string, Nucleus[]>();
  let unmatched = 0;
  for (const { line, values } of t.rows) {
    const id = index.get(keyOf(values));
    if (id === undefined) {
      unmatched++;
      continue;
    }
    const x = Number(values[xCol]);
    const y = Number(values[yCol]);
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      if (values[xCol] === '' || values[xCol].toLowerCase() === 'nan') continue; // CellProfiler writes NaN for empty objects
      throw new QcbError('QCB_CSV_VALUE', `line ${line}: centre is not a number`, {
        file,
        key: `${xCol}/${yCol}`,
        value: [values[xCol], values[yCol]],
        fix: 'fix or remove the line',
      });
    }
    const area = areaCol ? Number(values[areaCol]) || 0 : 0;
    let list = centres.get(id);
    if (!list) centres.set(id, (list = []));
    list.push({ x, y, area });
  }
  return { centres, unmatched, rows: t.rows.length };
}
