/**
 * Shared data types of the crop pipeline: fields (one microscope site, one file per channel) as the dataset readers
 * produce them, and per-crop metadata as the crop store records it.
 */

/** A decoded image: interleaved samples, row-major, H×W×C. */
export interface ImageData {
  width: number;
  height: number;
  /** Samples per pixel (1 for the single-channel files of HCS screens). */
  channels: number;
  /** Bits per sample: 8 / 16 unsigned integers, 32 float. */
  bitDepth: 8 | 16 | 32;
  data: Uint8Array | Uint16Array | Float32Array;
}

/**
 * One field of view (a site of a well of a plate) with one image file per channel.
 * `field_id` is `<plate>_<well>_s<site>` for the BBBC readers; the generic CSV reader takes it from its column.
 */
export interface Field {
  field_id: string;
  plate: string;
  well: string;
  site: number;
  /** Channel name → absolute image path. */
  channels: Record<string, string>;
  /** Other columns of the source table (compound, concentration, moa, …), as strings. */
  metadata: Record<string, string>;
}

/** A field (or a line of a table) that a reader or the extraction left out, with why. */
export interface SkippedField {
  field_id: string;
  /** The file at fault (image or table). */
  file: string;
  /** 1-based line of the table (header = line 1) when the problem comes from a table. */
  row?: number;
  code: string;
  message: string;
  /** Where the field sits, when the reader got that far (fields with missing images). */
  plate?: string;
  well?: string;
  site?: number;
}

/** What a dataset reader returns: fields in table order plus the channel order and the nuclear (DNA) channel. */
export interface FieldSet {
  dataset: string;
  /** Folder image paths were resolved against. */
  root: string;
  /** Channel names in crop-channel order (C). */
  channels: string[];
  /** The channel nuclei are segmented on. */
  dnaChannel: string;
  fields: Field[];
  /** Fields left out (missing files in non-strict mode, malformed lines). */
  skipped: SkippedField[];
}

/** Per-crop metadata: one row of `crops.csv` in a crop store. */
export interface CropMeta {
  /** `<plate>_<well>_s<site>_<x>_<y>`, x and y the integer centre in field pixels (shared with annotations). */
  crop_id: string;
  /** Row index in the `crops` array. */
  index: number;
  plate: string;
  well: string;
  site: number;
  field_id: string;
  x: number;
  y: number;
  /** Nucleus area in pixels (0 when centres were imported without an area). */
  area: number;
  /** Source image files, one per channel, joined with `;` in channel order. */
  source_files: string;
  /** Remaining metadata columns (compound, concentration, moa, …). */
  metadata: Record<string, string>;
}

/** The crop id convention shared by extraction, the synthetic generator and the annotations. */
export function cropId(plate: string, well: string, site: number, x: number, y: number): string {
  return `${plate}_${well}_s${site}_${Math.round(x)}_${Math.round(y)}`;
}

/** The field id convention of the BBBC readers. */
export function fieldId(plate: string, well: string, site: number): string {
  return `${plate}_${well}_s${site}`;
}
