/**
 * The artefact taxonomy of the synthetic screen (paper §1: out-of-focus blur, fluorophore saturation, debris, a high
 * level of noise, auto-fluorescence, empty images; plus dead / condensed / floating cells, a frequent cause of
 * abnormal single-cell crops in HCS). Each crop of the ground truth carries one of these types, or `none`.
 */

/** Artefact types written to `ground_truth.csv` and the annotation files. */
export const ARTEFACT_TYPES = ['blur', 'saturation', 'debris', 'noise', 'empty', 'haze', 'dead'] as const;
export type ArtefactType = (typeof ARTEFACT_TYPES)[number];

/** Artefacts that can hit a whole field (every crop of the field becomes abnormal). */
export const FIELD_ARTEFACTS = ['blur', 'noise', 'saturation', 'haze'] as const satisfies readonly ArtefactType[];
export type FieldArtefact = (typeof FIELD_ARTEFACTS)[number];

/** Artefacts that hit one cell and its surroundings. */
export const CELL_ARTEFACTS = [
  'debris',
  'dead',
  'saturation',
  'blur',
  'haze',
] as const satisfies readonly ArtefactType[];
export type CellArtefact = (typeof CELL_ARTEFACTS)[number];

/** Relative frequency of cell-level artefacts (debris and dead cells are the most common in real screens). */
export const CELL_ARTEFACT_WEIGHTS = {
  debris: 0.3,
  dead: 0.3,
  saturation: 0.14,
  blur: 0.14,
  haze: 0.12,
} satisfies Record<CellArtefact, number>;

/** Relative frequency of field-level artefacts. */
export const FIELD_ARTEFACT_WEIGHTS = {
  blur: 0.4,
  noise: 0.2,
  saturation: 0.2,
  haze: 0.2,
} satisfies Record<FieldArtefact, number>;

/** An artefact drawn somewhere in a field: its type and the disk it visibly covers (field pixels). */
export interface ArtefactFootprint {
  type: ArtefactType;
  x: number;
  y: number;
  radius: number;
  /** Index of the object the artefact was attached to (-1 for none). */
  owner: number;
}

/**
 * Whether an artefact is visible in the crop centred at (cx, cy): its disk meets the crop's central window
 * (half the crop side, i.e. the middle 64×64 of a 128×128 crop). Artefacts only in a crop's margin do not make
 * it abnormal, as an annotator judges the cell in the middle.
 */
export function footprintHitsCrop(f: ArtefactFootprint, cx: number, cy: number, cropSize: number): boolean {
  const h = cropSize / 4;
  const dx = Math.max(0, Math.abs(f.x - cx) - h);
  const dy = Math.max(0, Math.abs(f.y - cy) - h);
  return dx * dx + dy * dy < f.radius * f.radius;
}

/** Picks a key by weight with a uniform u in [0, 1). */
export function pickWeighted<K extends string>(weights: Record<K, number>, u: number): K {
  const keys = Object.keys(weights) as K[];
  const total = keys.reduce((s, k) => s + weights[k], 0);
  let acc = 0;
  for (const k of keys) {
    acc += weights[k] / total;
    if (u < acc) return k;
  }
  return keys[keys.length - 1];
}
