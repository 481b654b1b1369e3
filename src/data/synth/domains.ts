/**
 * The two synthetic domains. `u2os` imitates BBBC022 (U2OS cells, Cell Painting, 5 channels, 696×520, 12-bit values
 * stored in 16-bit files); `mcf7` imitates BBBC021 (MCF7 cells, DAPI/Tubulin/Actin, 1280×1024, 12-bit data shifted
 * left by 4 bits). Morphology, density, clustering and channel textures differ so that the domain shift of the
 * paper's §4.3 (train on BBBC022, test on BBBC021) is real for the encoders.
 *
 * Sizes are in field pixels and intensities in 12-bit digital numbers (DN) before the bit shift; they were set by
 * comparing montages and percentiles with the real fields in `../shared/fixtures/bbbc` (BBBC022 Hoechst: background
 * ≈ 175 DN, nuclei 500–900 DN, nuclei about 36×24 px, ≈ 60 per field).
 */

/** What a channel shows; decides how a cell is drawn into it. */
export type ChannelRole = 'dna' | 'er' | 'rna' | 'agp' | 'mito' | 'tubulin' | 'actin';

export interface ChannelProfile {
  /** Channel name as in the dataset's table (`Hoechst`, `ER`, … / `DAPI`, `Tubulin`, `Actin`). */
  name: string;
  /** Wavelength index in the file name (`_w<k>`). */
  wavelength: number;
  role: ChannelRole;
  /** Mean foreground brightness of a normal cell's main structure, DN. */
  brightness: number;
  /** Sample-autofluorescence background before shading, DN (added to the camera offset). */
  background: number;
}

export interface DomainProfile {
  domain: SynthDomain;
  /** On-disk layout written: BBBC022 per-plate image tables or BBBC021's image + moa tables. */
  layout: 'bbbc022' | 'bbbc021';
  channels: ChannelProfile[];
  width: number;
  height: number;
  /** Nucleus major semi-axis, px: mean and standard deviation. */
  nucleusMajor: [number, number];
  /** Ratio major/minor semi-axis: uniform range. */
  nucleusAspect: [number, number];
  /** Amplitude of the boundary harmonics (0 = perfect ellipse). */
  nucleusIrregularity: number;
  /** Cell body radius as a multiple of the nucleus major semi-axis: uniform range. */
  cellRadius: [number, number];
  /** Amplitude of the cell body's boundary harmonics (spread, lamellipodia). */
  cellIrregularity: number;
  /** Cells per megapixel at density multiplier 1. */
  density: number;
  /** Per-well density multiplier range (wells differ, like compound or seeding effects). */
  wellDensity: [number, number];
  /** 0: cells spread uniformly; 1: cells grow in colonies (MCF7). */
  clustering: number;
  /** Minimum distance between nuclei as a multiple of the sum of their major semi-axes. */
  packing: number;
  /** Camera offset, DN. */
  offset: number;
  /** Camera gain, DN per photo-electron (shot noise sd = sqrt(gain × signal)). */
  gain: number;
  /** Read noise sd, DN. */
  readNoise: number;
  /** Vignetting depth at the field corner (fraction of signal lost). */
  vignetting: [number, number];
  /** Bits the 12-bit data is shifted left by when stored (0 for BBBC022, 4 for BBBC021). */
  bitShift: number;
  /** Nucleolus count range per nucleus. */
  nucleoli: [number, number];
  /** Amplitude of the fine chromatin texture of the DNA stain (relative to the nucleus brightness). */
  dnaTexture: number;
  /** Strength of bright chromocentre spots in the DNA texture (MCF7 nuclei look grainier). */
  chromocentres: number;
}

export type SynthDomain = 'u2os' | 'mcf7';

/** Domain profiles, by name. */
export const DOMAINS = {
  u2os: {
    domain: 'u2os',
    layout: 'bbbc022',
    channels: [
      { name: 'Hoechst', wavelength: 1, role: 'dna', brightness: 680, background: 70 },
      { name: 'ER', wavelength: 2, role: 'er', brightness: 420, background: 90 },
      { name: 'Syto', wavelength: 3, role: 'rna', brightness: 380, background: 85 },
      { name: 'Ph_golgi', wavelength: 4, role: 'agp', brightness: 360, background: 95 },
      { name: 'Mito', wavelength: 5, role: 'mito', brightness: 520, background: 80 },
    ],
    width: 696,
    height: 520,
    nucleusMajor: [18.5, 3.2],
    nucleusAspect: [1.1, 2.1],
    nucleusIrregularity: 0.05,
    cellRadius: [2.0, 2.8],
    cellIrregularity: 0.22,
    density: 200,
    wellDensity: [0.6, 1.5],
    clustering: 0.15,
    packing: 0.85,
    offset: 100,
    gain: 0.35,
    readNoise: 2.5,
    vignetting: [0.18, 0.32],
    bitShift: 0,
    nucleoli: [1, 4],
    dnaTexture: 0.3,
    chromocentres: 0.05,
  },
  mcf7: {
    domain: 'mcf7',
    layout: 'bbbc021',
    channels: [
      { name: 'DAPI', wavelength: 1, role: 'dna', brightness: 900, background: 60 },
      { name: 'Tubulin', wavelength: 2, role: 'tubulin', brightness: 520, background: 110 },
      { name: 'Actin', wavelength: 4, role: 'actin', brightness: 600, background: 100 },
    ],
    width: 1280,
    height: 1024,
    nucleusMajor: [11.5, 1.8],
    nucleusAspect: [1.0, 1.3],
    nucleusIrregularity: 0.035,
    cellRadius: [1.8, 2.5],
    cellIrregularity: 0.12,
    density: 150,
    wellDensity: [0.55, 1.4],
    clustering: 0.75,
    packing: 0.95,
    offset: 110,
    gain: 0.45,
    readNoise: 3,
    vignetting: [0.25, 0.4],
    bitShift: 4,
    nucleoli: [0, 2],
    dnaTexture: 0.5,
    chromocentres: 0.45,
  },
} satisfies Record<SynthDomain, DomainProfile>;
