/**
 * The on-disk layouts the synthetic screen is written in, copied from the real distributions so the real BBBC
 * readers load it unchanged:
 * - BBBC022 (u2os): per-plate image tables with the columns of `20585_AE_excerpt.csv`
 *   (`Image_FileName_Orig<ch>`, `Image_Metadata_*`, `Image_PathName_Orig<ch>` = `<plate>/`), files
 *   `<plate>/IXMtest_<well>_s<site>_w<k><UUID>.tif`.
 * - BBBC021 (mcf7): `BBBC021_v1_image.csv` with the columns of the real table (`TableNumber, ImageNumber,
 *   Image_FileName_DAPI, Image_PathName_DAPI, …, Replicate, Image_Metadata_Compound, Image_Metadata_Concentration`),
 *   `BBBC021_v1_moa.csv`, files `<plate>/<well>_s<site>_w<1|2|4><UUID>.tif` with `Image_PathName_* = Week1/<plate>`
 *   (as in the real table; readers also look in `<root>/<plate>/`, where the real zips unpack).
 */
import type { Rng } from '../../util/random.js';

export const BBBC022_CHANNEL_COLUMNS = ['ER', 'Hoechst', 'Mito', 'Ph_golgi', 'Syto'] as const;

/** Header of a BBBC022 per-plate image table, in the real column order. */
export const BBBC022_HEADER = [
  'ImageNumber',
  ...BBBC022_CHANNEL_COLUMNS.map((c) => `Image_FileName_Orig${c}`),
  'Image_Metadata_ASSAY_WELL_ROLE',
  'Image_Metadata_BROAD_ID',
  'Image_Metadata_CPD_MMOL_CONC',
  'Image_Metadata_CPD_PLATE_MAP_NAME',
  'Image_Metadata_CPD_SMILES',
  'Image_Metadata_CPD_WELL_POSITION',
  'Image_Metadata_PlateID',
  'Image_Metadata_SOURCE_COMPOUND_NAME',
  'Image_Metadata_SOURCE_NAME',
  'Image_Metadata_Site',
  'Image_Metadata_Time',
  ...BBBC022_CHANNEL_COLUMNS.map((c) => `Image_PathName_Orig${c}`),
];

/** Header of `BBBC021_v1_image.csv`, in the real column order. */
export const BBBC021_HEADER = [
  'TableNumber',
  'ImageNumber',
  'Image_FileName_DAPI',
  'Image_PathName_DAPI',
  'Image_FileName_Tubulin',
  'Image_PathName_Tubulin',
  'Image_FileName_Actin',
  'Image_PathName_Actin',
  'Image_Metadata_Plate_DAPI',
  'Image_Metadata_Well_DAPI',
  'Replicate',
  'Image_Metadata_Compound',
  'Image_Metadata_Concentration',
];

/** Treatments assigned to wells (metadata only: the synthetic phenotype does not depend on them). */
export const TREATMENTS = [
  { compound: 'DMSO', concentration: 0, moa: 'DMSO', smiles: 'CS(C)=O', role: 'mock' },
  { compound: 'taxol', concentration: 0.3, moa: 'Microtubule stabilizers', smiles: '', role: 'compound' },
  { compound: 'nocodazole', concentration: 1, moa: 'Microtubule destabilizers', smiles: '', role: 'compound' },
  { compound: 'cytochalasin B', concentration: 10, moa: 'Actin disruptors', smiles: '', role: 'compound' },
  { compound: 'emetine', concentration: 0.3, moa: 'Protein synthesis', smiles: '', role: 'compound' },
  { compound: 'ALLN', concentration: 3, moa: 'Protein degradation', smiles: '', role: 'compound' },
  { compound: 'AZ258', concentration: 1, moa: 'Aurora kinase inhibitors', smiles: '', role: 'compound' },
  { compound: 'PP-2', concentration: 3, moa: 'Epithelial', smiles: '', role: 'compound' },
] as const;

/** Plate names: numeric like BBBC022's (`90001`), `Week1_90001` like BBBC021's. */
export function plateName(layout: 'bbbc022' | 'bbbc021', index: number): string {
  const id = String(90001 + index);
  return layout === 'bbbc022' ? id : `Week1_${id}`;
}

/**
 * The first `n` wells of a 96-well plate in the order the generator uses: inner wells first (B02…G11, row-major),
 * then the edge wells, as screens keep edges for controls.
 */
export function wellNames(n: number): string[] {
  const rows = 'ABCDEFGH';
  const inner: string[] = [];
  const edge: string[] = [];
  for (let r = 0; r < 8; r++) {
    for (let c = 1; c <= 12; c++) {
      const w = `${rows[r]}${String(c).padStart(2, '0')}`;
      (r === 0 || r === 7 || c === 1 || c === 12 ? edge : inner).push(w);
    }
  }
  return [...inner, ...edge].slice(0, n);
}

/** A deterministic upper-case UUID (as in MetaMorph file names). */
export function uuid(rng: Rng): string {
  const hex = Array.from({ length: 32 }, () => '0123456789ABCDEF'[rng.int(16)]).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
