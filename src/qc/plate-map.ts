/**
 * Plate-map heatmap of a QC run: one panel per plate, one square per well coloured by the fraction of the well's
 * crops the model flags abnormal. The plate format (96, 384 or 1536 wells) is inferred from the well names
 * (`B02`, `P24`, `AF48`), so a screen with only part of its wells imaged is still drawn on the full plate grid.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QcbError } from '../errors.js';
import { type VlSpec, renderSvg, svgToPng } from '../render/vega.js';
import { writeJsonAtomic } from '../util/fs.js';

/** Abnormal fraction of one well. */
export interface WellFraction {
  plate: string;
  well: string;
  /** Crops scored. */
  n: number;
  /** Crops flagged abnormal. */
  abnormal: number;
  /** abnormal / n (null: no crops). */
  fraction: number | null;
  /** Mean abnormal score (null: no crops). */
  mean_score: number | null;
  /** Fields of the well flagged by the field verdicts (qc/fields.ts), and their reasons (`;`-joined). */
  fields_flagged?: number;
  reasons?: string;
}

/** Standard plate formats: rows × columns. */
export const PLATE_FORMATS = {
  96: { rows: 8, cols: 12 },
  384: { rows: 16, cols: 24 },
  1536: { rows: 32, cols: 48 },
} as const satisfies Record<number, { rows: number; cols: number }>;

/** Row letters in plate order: A…Z, then AA…AF (1536-well plates). */
export function rowLabel(i: number): string {
  return i < 26 ? String.fromCharCode(65 + i) : `A${String.fromCharCode(65 + i - 26)}`;
}

/**
 * `B02` → { row: 1, col: 2 } (0-based row, 1-based column); `AF48` → row 31. Case-insensitive, zero padding optional.
 * @throws QCB_CSV_VALUE for a name that is not a well (the store's `well` column)
 */
export function parseWell(well: string): { row: number; col: number } {
  const m = /^([A-Za-z]{1,2})0*(\d+)$/.exec(well.trim());
  if (!m) {
    throw new QcbError('QCB_CSV_VALUE', `'${well}' is not a well name`, {
      key: 'well',
      value: well,
      allowed: 'a row letter (A…P, AA…AF) and a column number, e.g. B02',
      fix: 'the crop store needs standard well names in its `well` column to draw the plate map',
    });
  }
  const letters = m[1].toUpperCase();
  const row = letters.length === 1 ? letters.charCodeAt(0) - 65 : 26 + letters.charCodeAt(1) - 65;
  return { row, col: Number(m[2]) };
}

/** The smallest standard format holding every well (96 → 384 → 1536). */
export function inferPlateFormat(wells: readonly string[]): { wells: 96 | 384 | 1536; rows: number; cols: number } {
  let maxRow = 0;
  let maxCol = 1;
  for (const w of wells) {
    const p = parseWell(w);
    maxRow = Math.max(maxRow, p.row);
    maxCol = Math.max(maxCol, p.col);
  }
  for (const n of [96, 384, 1536] as const) {
    const f = PLATE_FORMATS[n];
    if (maxRow < f.rows && maxCol <= f.cols) return { wells: n, ...f };
  }
  throw new QcbError(
    'QCB_CSV_VALUE',
    `wells up to row ${rowLabel(maxRow)} and column ${maxCol} fit no standard plate`,
    {
      key: 'well',
      allowed: '96 (A–H × 1–12), 384 (A–P × 1–24) or 1536 (A–AF × 1–48) well plates',
      fix: 'check the well names of the crop store',
    },
  );
}

/**
 * The Vega-Lite spec: a faceted heatmap (column = well number, row = well letter, colour = abnormal fraction on a
 * fixed 0…1 scale so plates and runs compare), one panel per plate; wells without crops are drawn empty (grey).
 */
export function plateMapSpec(wells: readonly WellFraction[], title = 'Abnormal fraction per well'): VlSpec {
  const fmt = inferPlateFormat(wells.map((w) => w.well));
  const plates = [...new Set(wells.map((w) => w.plate))].sort();
  const rows = Array.from({ length: fmt.rows }, (_, i) => rowLabel(i));
  const cols = Array.from({ length: fmt.cols }, (_, i) => i + 1);
  const byKey = new Map(wells.map((w) => [`${w.plate}|${parseWell(w.well).row}|${parseWell(w.well).col}`, w]));
  // every well of every plate, so empty wells show as such (and the grid keeps its shape)
  const values: Record<string, unknown>[] = [];
  for (const plate of plates) {
    for (let r = 0; r < fmt.rows; r++) {
      for (const c of cols) {
        const w = byKey.get(`${plate}|${r}|${c}`);
        values.push({
          plate,
          row: rows[r],
          col: c,
          well: w?.well ?? `${rows[r]}${String(c).padStart(2, '0')}`,
          n: w?.n ?? 0,
          abnormal: w?.abnormal ?? 0,
          fraction: w ? w.fraction : null,
          mean_score: w ? w.mean_score : null,
          fields_flagged: w?.fields_flagged ?? 0,
          reasons: w?.reasons ?? '',
        });
      }
    }
  }
  const cell = fmt.wells === 96 ? 28 : fmt.wells === 384 ? 16 : 9;
  const withCrops = wells.filter((w) => w.n > 0).length;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: title,
      subtitle: `${plates.length} plate(s), ${fmt.wells}-well layout, ${withCrops} well(s) with crops; outlined: a field flagged`,
    },
    data: { values },
    facet: { field: 'plate', type: 'nominal', title: 'plate' },
    columns: Math.min(plates.length, fmt.wells === 96 ? 3 : 2),
    spec: {
      width: cell * fmt.cols,
      height: cell * fmt.rows,
      encoding: {
        x: {
          field: 'col',
          type: 'ordinal',
          scale: { domain: cols },
          title: null,
          axis: { orient: 'top', labelAngle: 0 },
        },
        y: { field: 'row', type: 'ordinal', scale: { domain: rows }, title: null },
      },
      layer: [
        // every well, grey: wells without crops stay visible as empty
        { mark: { type: 'rect', stroke: 'white', strokeWidth: 1, color: '#e5e5e5' } },
        {
          transform: [{ filter: 'datum.fraction !== null' }],
          mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
          encoding: {
            color: {
              field: 'fraction',
              type: 'quantitative',
              scale: { domain: [0, 1], scheme: 'reds' },
              title: 'abnormal fraction',
            },
            tooltip: [
              { field: 'well', type: 'nominal' },
              { field: 'n', type: 'quantitative', title: 'crops' },
              { field: 'abnormal', type: 'quantitative' },
              { field: 'fraction', type: 'quantitative', format: '.1%' },
              { field: 'mean_score', type: 'quantitative', format: '.3f' },
              { field: 'fields_flagged', type: 'quantitative', title: 'fields flagged' },
              { field: 'reasons', type: 'nominal' },
            ],
          },
        },
        FLAGGED_OUTLINE,
      ],
    },
  };
}

/** Outline of cells with a flagged field (`fields_flagged` > 0), its reasons in the tooltip. */
const FLAGGED_OUTLINE = {
  transform: [{ filter: 'datum.fields_flagged > 0' }],
  mark: { type: 'rect', fillOpacity: 0, stroke: 'black', strokeWidth: 2 },
  encoding: {
    tooltip: [
      { field: 'well', type: 'nominal' },
      { field: 'fields_flagged', type: 'quantitative', title: 'fields flagged' },
      { field: 'reasons', type: 'nominal' },
    ],
  },
};

/** A field of the field map: where, its crops' fraction and its verdict (qc/fields.ts FieldVerdict). */
export interface FieldCell {
  plate: string;
  well: string;
  site: number | null;
  field_id: string;
  status: string;
  n: number;
  fraction: number | null;
  verdict: string;
  reasons: string;
  details: string;
}

/**
 * The field map: the plate grid with each well cut into a g×g block of its fields (g = ⌈√sites⌉, sites in order),
 * one cell per field of the screen, coloured by its crops' abnormal fraction (grey: no crops), flagged fields outlined
 * in black, the reasons and measures that flagged it in the tooltip and the reason as a letter in the cell.
 */
export function fieldMapSpec(fields: readonly FieldCell[], title = 'Fields: abnormal fraction and verdict'): VlSpec {
  const fmt = inferPlateFormat(fields.map((f) => f.well));
  const plates = [...new Set(fields.map((f) => f.plate))].sort();
  const byWell = new Map<string, FieldCell[]>();
  for (const f of fields) {
    const k = `${f.plate}|${f.well}`;
    byWell.set(k, [...(byWell.get(k) ?? []), f]);
  }
  const g = Math.max(1, Math.ceil(Math.sqrt(Math.max(1, ...[...byWell.values()].map((l) => l.length)))));
  const values: Record<string, unknown>[] = [];
  for (const l of byWell.values()) {
    l.sort((a, b) => (a.site ?? 0) - (b.site ?? 0) || a.field_id.localeCompare(b.field_id));
    l.forEach((f, i) => {
      const { row, col } = parseWell(f.well);
      const x = (col - 1) * g + (i % g);
      const y = row * g + Math.floor(i / g);
      values.push({
        ...f,
        x,
        x2: x + 1,
        y,
        y2: y + 1,
        cx: x + 0.5,
        cy: y + 0.5,
        flagged: f.verdict === 'flagged',
        letter: f.reasons ? f.reasons.split(';')[0].slice(0, 1).toUpperCase() : '',
      });
    });
  }
  const cell = Math.max(4, Math.floor((fmt.wells === 96 ? 30 : fmt.wells === 384 ? 18 : 10) / g));
  const ticks = (n: number) => Array.from({ length: n }, (_, i) => (i + 0.5) * g);
  const axisX = { values: ticks(fmt.cols), labelExpr: `round(datum.value / ${g} + 0.5)`, orient: 'top', grid: false };
  const axisY = {
    values: ticks(fmt.rows),
    labelExpr: `[${Array.from({ length: fmt.rows }, (_, i) => `'${rowLabel(i)}'`).join(',')}][floor(datum.value / ${g})]`,
    grid: false,
  };
  const pos = {
    x: {
      field: 'x',
      type: 'quantitative',
      scale: { domain: [0, fmt.cols * g], nice: false },
      title: null,
      axis: axisX,
    },
    x2: { field: 'x2' },
    y: {
      field: 'y',
      type: 'quantitative',
      scale: { domain: [fmt.rows * g, 0], nice: false },
      title: null,
      axis: axisY,
    },
    y2: { field: 'y2' },
  };
  const tooltip = [
    { field: 'field_id', type: 'nominal' },
    { field: 'status', type: 'nominal' },
    { field: 'n', type: 'quantitative', title: 'crops' },
    { field: 'fraction', type: 'quantitative', format: '.1%' },
    { field: 'verdict', type: 'nominal' },
    { field: 'reasons', type: 'nominal' },
    { field: 'details', type: 'nominal' },
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: title,
      subtitle: `${fields.length} field(s), ${g}×${g} per well; grey: no crops; outlined: flagged (letter: first reason)`,
    },
    data: { values },
    facet: { field: 'plate', type: 'nominal', title: 'plate' },
    columns: Math.min(plates.length, fmt.wells === 96 ? 3 : 2),
    spec: {
      width: cell * g * fmt.cols,
      height: cell * g * fmt.rows,
      layer: [
        {
          mark: { type: 'rect', stroke: 'white', strokeWidth: 0.5, color: '#e5e5e5' },
          encoding: { ...pos, tooltip },
        },
        {
          transform: [{ filter: 'datum.fraction !== null' }],
          mark: { type: 'rect', stroke: 'white', strokeWidth: 0.5 },
          encoding: {
            ...pos,
            color: {
              field: 'fraction',
              type: 'quantitative',
              scale: { domain: [0, 1], scheme: 'reds' },
              title: 'abnormal fraction',
            },
            tooltip,
          },
        },
        {
          transform: [{ filter: 'datum.flagged' }],
          mark: { type: 'rect', fillOpacity: 0, stroke: 'black', strokeWidth: 1.5 },
          encoding: { ...pos, tooltip },
        },
        {
          transform: [{ filter: 'datum.flagged' }],
          mark: { type: 'text', fontSize: Math.max(6, cell - 3), fontWeight: 'bold' },
          encoding: {
            x: { field: 'cx', type: 'quantitative' },
            y: { field: 'cy', type: 'quantitative' },
            color: { value: 'black' },
            text: { field: 'letter' },
            tooltip,
          },
        },
      ],
    },
  };
}

/** Writes the field map (see {@link fieldMapSpec}) as `<base>.vl.json|svg|png`; returns the three paths. */
export function writeFieldMap(dir: string, fields: readonly FieldCell[], base = 'field-map'): Promise<string[]> {
  return writeChart(dir, fieldMapSpec(fields), base);
}

/** Writes `<base>.vl.json`, `<base>.svg` and `<base>.png` into `dir`; returns the three paths. */
export function writePlateMap(dir: string, wells: readonly WellFraction[], base = 'plate-map'): Promise<string[]> {
  return writeChart(dir, plateMapSpec(wells), base);
}

async function writeChart(dir: string, spec: VlSpec, base: string): Promise<string[]> {
  const vl = join(dir, `${base}.vl.json`);
  writeJsonAtomic(vl, spec);
  const { svg } = await renderSvg(spec, base);
  const svgPath = join(dir, `${base}.svg`);
  writeFileSync(svgPath, svg);
  const png = join(dir, `${base}.png`);
  writeFileSync(png, await svgToPng(svg));
  return [vl, svgPath, png];
}
