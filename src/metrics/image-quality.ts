/**
 * CellProfiler's MeasureImageQuality measures of one grey image (H×W, intensities in [0, 1]), computed as
 * CellProfiler 4 computes them (cellprofiler/modules/measureimagequality.py: `calculate_focus_scores`,
 * `calculate_correlation`, `calculate_power_spectrum`, `calculate_saturation`, `run_intensity_measurement`; with
 * centrosome's `haralick.Haralick` and `radial_power_spectrum.rps`), without a mask (the whole image):
 *
 * - **FocusScore** — normalised variance (Sun et al. 2004, "Autofocusing in computer microscopy"):
 *   Σ(x − μ)² / (N·μ) = var/μ (population variance), 0 when μ ≤ 0. Not scale-invariant: it is homogeneous of degree
 *   one (FocusScore(a·x) = a·FocusScore(x)), which is why CellProfiler says it compares focus within a field of view.
 * - **LocalFocusScore** at spatial scale s — the image is cut into ⌈H/s⌉ × ⌈W/s⌉ tiles (pixel row i goes to tile
 *   row ⌊i·m/H⌋, m = ⌈H/s⌉; columns alike, so tiles are s×s or a little smaller, none left over); each tile with a
 *   non-zero mean gets its normalised variance v_t = Σ_t(x − μ_t)² / (n_t·μ_t); the score is CellProfiler's
 *   var(v) / median(v) over the tiles (population variance; 0 when the median is not positive). CellProfiler's
 *   documentation describes it loosely as comparing the tiles' normalised variances; its code, followed here, takes
 *   their normalised variance — not their mean.
 * - **Correlation** at scale s — Haralick's correlation (H3, Haralick et al. 1973) of the grey-level co-occurrence
 *   matrix at offset (0, s) (each pixel and the one s columns to its right), the image first stretched to [0, 1] by its
 *   own min and max and quantised to 8 levels ⌊8·v⌋ (clipped to 7); levels counted 1..L with L = max level + 1.
 *   (Σ_ab a·b·P(a,b) − μx·μy) / (σx·σy); 0 where it is not defined (no pairs, or either side of the pairs at one level,
 *   e.g. a constant image — decided on the levels present, not on a rounded σx·σy).
 * - **PowerLogLogSlope** — the slope of the least-squares line through (log r, log P(r)), P(r) the power spectrum
 *   |FFT(x − μ)|² summed over rings: a frequency (i, j) lies at r = ⌊√(ri² + rj²)⌋ + 1 with ri = min(i, H−1−i),
 *   rj = min(j, W−1−j) (centrosome's distances, kept exactly), and rings r = 2 … ⌊min(H, W)/8⌋ − 1 are used (DC
 *   skipped; the high frequencies are cut "to avoid edge effects"). Rings with no power (at most RING_POWER_FLOOR of the spectrum: rounding noise) are dropped; fewer than two
 *   rings, a constant image or no power give 0. centrosome first divides the image by the median absolute deviation
 *   from its mean: that only moves the line's intercept, so it is skipped, except that CellProfiler's slope is 0 when
 *   that median is 0 (the division gives NaN) — kept. Sharp images have a shallower (less negative) slope than
 *   blurred ones.
 * - **PercentMaximal / PercentMinimal** — 100 × the fraction of pixels equal to the image's own max / min.
 * - **Total / Mean / Median / Std / MAD / Min / Max Intensity** — sum; mean; median (mean of the two middle values for
 *   even N, as numpy); population standard deviation; median absolute deviation from the median (unscaled);
 *   extremes. (CellProfiler's TotalArea, the pixel count, is left out: it is H·W.)
 *
 * CellProfiler's default spatial scale ("window size") is 20 pixels. Cost: O(HW log HW) for the spectrum (row FFTs,
 * then column FFTs of only the low frequencies the rings use), O(HW) for everything else (medians by quickselect in a
 * reused buffer); nothing is allocated per pixel.
 */
import { select } from '../data/nuclei/segment.js';
import { QcbError } from '../errors.js';

/** The measures of one channel, in the order of every record and feature vector. */
export const IMAGE_QUALITY_MEASURES = [
  'FocusScore',
  'LocalFocusScore',
  'Correlation',
  'PowerLogLogSlope',
  'PercentMaximal',
  'PercentMinimal',
  'TotalIntensity',
  'MeanIntensity',
  'MedianIntensity',
  'StdIntensity',
  'MADIntensity',
  'MinIntensity',
  'MaxIntensity',
] as const;

export type ImageQualityMeasure = (typeof IMAGE_QUALITY_MEASURES)[number];

/** All measures of one channel, keys in {@link IMAGE_QUALITY_MEASURES} order. */
export type ImageQuality = Record<ImageQualityMeasure, number>;

/** CellProfiler's default spatial scale (its "window size" setting), pixels. */
export const DEFAULT_QUALITY_SCALE = 20;

export interface ImageQualityOptions {
  /** Spatial scale s of LocalFocusScore (tile side) and Correlation (offset), pixels; default 20 (CellProfiler's). */
  scale?: number;
}

function checkShape(img: Float32Array, height: number, width: number, channels = 1): void {
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0))
    throw new QcbError('QCB_IMAGE_SIZE', `image-quality measures need a positive H×W, got ${height}×${width}`, {
      key: 'shape',
      value: [height, width],
      fix: 'pass the image height and width in pixels',
    });
  if (img.length !== channels * height * width)
    throw new QcbError(
      'QCB_IMAGE_SIZE',
      `the image has ${img.length} values, not ${channels}×${height}×${width} = ${channels * height * width}`,
      { key: 'shape', value: [channels, height, width], fix: 'pass the image as a row-major C×H×W float array' },
    );
}

function checkScale(scale: number): number {
  if (!(Number.isInteger(scale) && scale >= 1))
    throw new QcbError('QCB_USAGE', `the image-quality spatial scale must be a positive integer, got ${scale}`, {
      key: 'scale',
      value: scale,
      allowed: 'an integer ≥ 1 (pixels)',
      fix: 'use 20 (CellProfiler’s default window size) or about twice the typical object diameter',
    });
  return scale;
}

/** Reused scratch for medians (quickselect works in place): grown, never shrunk; the functions are synchronous. */
let scratch = new Float32Array(0);
function scratchOf(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch.subarray(0, n);
}

let quant = new Uint8Array(0);
function quantScratch(n: number): Uint8Array {
  if (quant.length < n) quant = new Uint8Array(n);
  return quant.subarray(0, n);
}

/** numpy's median of `a` (mean of the two middle values for even length); reorders `a`. */
function medianInPlace(a: Float32Array): number {
  const n = a.length;
  if (n === 0) return 0;
  const k = n >> 1;
  const hi = select(a, k);
  if (n % 2 === 1) return hi;
  // after the selection every value left of k is ≤ a[k]: the lower middle is their maximum
  let lo = a[0];
  for (let i = 1; i < k; i++) if (a[i] > lo) lo = a[i];
  return (lo + hi) / 2;
}

/** The smallest and largest value of a non-empty image. */
function extremes(img: Float32Array): { lo: number; hi: number } {
  let lo = img[0];
  let hi = img[0];
  for (let i = 1; i < img.length; i++) {
    if (img[i] < lo) lo = img[i];
    else if (img[i] > hi) hi = img[i];
  }
  return { lo, hi };
}

function meanOf(img: Float32Array): number {
  let s = 0;
  for (let i = 0; i < img.length; i++) s += img[i];
  return s / img.length;
}

/** FocusScore: the normalised variance Σ(x − μ)² / (N·μ) of the H×W image; 0 when μ ≤ 0 (CellProfiler). */
export function focusScore(img: Float32Array): number {
  const n = img.length;
  if (n === 0) return 0;
  const mu = meanOf(img);
  if (!(mu > 0)) return 0;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = img[i] - mu;
    ss += d * d;
  }
  return ss / (n * mu);
}

/** Tile index of each of `n` rows (or columns) for ⌈n/scale⌉ tiles, as CellProfiler assigns them: ⌊i·m/n⌋. */
function tileIndex(n: number, scale: number): { index: Int32Array; tiles: number } {
  const tiles = Math.floor((n + scale - 1) / scale);
  const index = new Int32Array(n);
  for (let i = 0; i < n; i++) index[i] = Math.floor((i * tiles) / n);
  return { index, tiles };
}

/**
 * LocalFocusScore at spatial scale `scale`: var(v) / median(v) of the tiles' normalised variances v (see the module
 * documentation for the tiling); 0 when no tile has a non-zero mean or the median is not positive.
 */
export function localFocusScore(
  img: Float32Array,
  height: number,
  width: number,
  scale = DEFAULT_QUALITY_SCALE,
): number {
  checkShape(img, height, width);
  checkScale(scale);
  const rows = tileIndex(height, scale);
  const cols = tileIndex(width, scale);
  const T = rows.tiles * cols.tiles;
  const sum = new Float64Array(T);
  const count = new Float64Array(T);
  for (let y = 0; y < height; y++) {
    const base = rows.index[y] * cols.tiles;
    const off = y * width;
    for (let x = 0; x < width; x++) {
      const t = base + cols.index[x];
      sum[t] += img[off + x];
      count[t]++;
    }
  }
  const mean = sum; // sums become means in place
  for (let t = 0; t < T; t++) mean[t] = count[t] > 0 ? sum[t] / count[t] : 0;
  const sq = new Float64Array(T);
  for (let y = 0; y < height; y++) {
    const base = rows.index[y] * cols.tiles;
    const off = y * width;
    for (let x = 0; x < width; x++) {
      const t = base + cols.index[x];
      const d = img[off + x] - mean[t];
      sq[t] += d * d;
    }
  }
  const v: number[] = [];
  for (let t = 0; t < T; t++) if (count[t] > 0 && mean[t] !== 0) v.push(sq[t] / (count[t] * mean[t]));
  if (v.length === 0) return 0;
  v.sort((a, b) => a - b);
  const k = v.length >> 1;
  const med = v.length % 2 ? v[k] : (v[k - 1] + v[k]) / 2;
  if (!(Number.isFinite(med) && med > 0)) return 0;
  let m = 0;
  for (const x of v) m += x;
  m /= v.length;
  let varV = 0;
  for (const x of v) varV += (x - m) * (x - m);
  return varV / v.length / med;
}

/** Grey levels of the co-occurrence matrix (centrosome's Haralick default). */
const HARALICK_LEVELS = 8;

/**
 * Correlation at spatial scale `scale`: Haralick's correlation of the 8-level co-occurrence matrix at offset
 * (0, scale), as centrosome computes it for CellProfiler (see the module documentation); in [−1, 1], 0 where it is not
 * finite.
 */
export function haralickCorrelation(
  img: Float32Array,
  height: number,
  width: number,
  scale = DEFAULT_QUALITY_SCALE,
): number {
  checkShape(img, height, width);
  checkScale(scale);
  const { lo, hi } = extremes(img);
  const div = hi > lo ? hi - lo : 1;
  const L = HARALICK_LEVELS;
  const q = quantScratch(img.length);
  // L = the highest level present + 1 (centrosome sizes the matrix so); levels count from 1
  let levels = 0;
  for (let i = 0; i < img.length; i++) {
    const v = Math.min(L - 1, Math.floor(((img[i] - lo) / div) * L));
    q[i] = v;
    if (v + 1 > levels) levels = v + 1;
  }
  const P = new Float64Array(L * L);
  let pairs = 0;
  for (let y = 0; y < height; y++) {
    const off = y * width;
    for (let x = 0; x + scale < width; x++) {
      P[q[off + x] * L + q[off + x + scale]]++;
      pairs++;
    }
  }
  if (pairs === 0) return 0;
  const px = new Float64Array(levels);
  const py = new Float64Array(levels);
  let sab = 0;
  for (let a = 0; a < levels; a++)
    for (let b = 0; b < levels; b++) {
      const p = P[a * L + b] / pairs;
      px[a] += p;
      py[b] += p;
      sab += (a + 1) * (b + 1) * p;
    }
  let mux = 0;
  let muy = 0;
  for (let a = 0; a < levels; a++) {
    mux += (a + 1) * px[a];
    muy += (a + 1) * py[a];
  }
  let vx = 0;
  let vy = 0;
  for (let a = 0; a < levels; a++) {
    vx += (a + 1 - mux) ** 2 * px[a];
    vy += (a + 1 - muy) ** 2 * py[a];
  }
  // σx or σy is 0 when that side of the pairs has one level: tested on the levels present, because the marginal's
  // probabilities then sum to 1 only up to rounding and vx·vy is noise (~1e-32), not 0, which would give any value
  let nx = 0;
  let ny = 0;
  for (let a = 0; a < levels; a++) {
    if (px[a] > 0) nx++;
    if (py[a] > 0) ny++;
  }
  if (nx < 2 || ny < 2) return 0;
  const h3 = (sab - mux * muy) / Math.sqrt(vx * vy);
  return Number.isFinite(h3) ? h3 : 0;
}

/** An in-place forward DFT of one length (radix-2, or Bluestein's chirp-z through a radix-2 of ≥ 2n − 1). */
interface FftPlan {
  n: number;
  forward(re: Float64Array, im: Float64Array): void;
}

const plans = new Map<number, FftPlan>();

function radix2(n: number): FftPlan {
  const cos = new Float64Array(n / 2);
  const sin = new Float64Array(n / 2);
  for (let k = 0; k < n / 2; k++) {
    cos[k] = Math.cos((2 * Math.PI * k) / n);
    sin[k] = -Math.sin((2 * Math.PI * k) / n);
  }
  const rev = new Uint32Array(n);
  const bits = Math.round(Math.log2(n));
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
    rev[i] = r;
  }
  return {
    n,
    forward(re, im) {
      for (let i = 0; i < n; i++) {
        const j = rev[i];
        if (j > i) {
          let t = re[i];
          re[i] = re[j];
          re[j] = t;
          t = im[i];
          im[i] = im[j];
          im[j] = t;
        }
      }
      for (let size = 2; size <= n; size *= 2) {
        const half = size / 2;
        const step = n / size;
        for (let s = 0; s < n; s += size) {
          for (let k = 0; k < half; k++) {
            const wr = cos[k * step];
            const wi = sin[k * step];
            const a = s + k;
            const b = a + half;
            const tr = re[b] * wr - im[b] * wi;
            const ti = re[b] * wi + im[b] * wr;
            re[b] = re[a] - tr;
            im[b] = im[a] - ti;
            re[a] += tr;
            im[a] += ti;
          }
        }
      }
    },
  };
}

function bluestein(n: number): FftPlan {
  let m = 1;
  while (m < 2 * n - 1) m *= 2;
  const inner = planFor(m);
  // chirp w_k = exp(−iπk²/n), with k² taken mod 2n so that the angle stays exact for large k
  const wr = new Float64Array(n);
  const wi = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const a = (Math.PI * ((k * k) % (2 * n))) / n;
    wr[k] = Math.cos(a);
    wi[k] = -Math.sin(a);
  }
  const br = new Float64Array(m);
  const bi = new Float64Array(m);
  br[0] = wr[0];
  bi[0] = -wi[0];
  for (let k = 1; k < n; k++) {
    br[k] = br[m - k] = wr[k];
    bi[k] = bi[m - k] = -wi[k];
  }
  inner.forward(br, bi);
  const ar = new Float64Array(m);
  const ai = new Float64Array(m);
  return {
    n,
    forward(re, im) {
      ar.fill(0);
      ai.fill(0);
      for (let k = 0; k < n; k++) {
        ar[k] = re[k] * wr[k] - im[k] * wi[k];
        ai[k] = re[k] * wi[k] + im[k] * wr[k];
      }
      inner.forward(ar, ai);
      // pointwise product, conjugated so that a second forward transform is the inverse (conj(FFT(conj z))/m)
      for (let k = 0; k < m; k++) {
        const r = ar[k] * br[k] - ai[k] * bi[k];
        const i = ar[k] * bi[k] + ai[k] * br[k];
        ar[k] = r;
        ai[k] = -i;
      }
      inner.forward(ar, ai);
      for (let k = 0; k < n; k++) {
        const cr = ar[k] / m;
        const ci = -ai[k] / m;
        re[k] = cr * wr[k] - ci * wi[k];
        im[k] = cr * wi[k] + ci * wr[k];
      }
    },
  };
}

/** Largest prime factor the mixed-radix transform takes (its generic butterfly costs p per output); above: Bluestein. */
const MAX_RADIX = 64;

/** n's factors for the mixed-radix transform (4s, then 2, then odd primes), or undefined when one exceeds MAX_RADIX. */
function factorize(n: number): number[] | undefined {
  const out: number[] = [];
  let m = n;
  while (m % 4 === 0) {
    out.push(4);
    m /= 4;
  }
  if (m % 2 === 0) {
    out.push(2);
    m /= 2;
  }
  for (let p = 3; m > 1; p += 2) {
    if (p > MAX_RADIX) return undefined;
    while (m % p === 0) {
      out.push(p);
      m /= p;
    }
  }
  return out;
}

/**
 * Recursive decimation-in-time Cooley–Tukey for n = p₁·p₂·…, out of place (the layout of KISS FFT): radix-2 and
 * radix-4 butterflies, a generic O(p²) one for odd primes. O(n·Σp).
 */
function mixedRadix(n: number, factors: readonly number[]): FftPlan {
  const twr = new Float64Array(n);
  const twi = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    twr[k] = Math.cos((2 * Math.PI * k) / n);
    twi[k] = -Math.sin((2 * Math.PI * k) / n);
  }
  const xr = new Float64Array(n);
  const xi = new Float64Array(n);
  const maxP = Math.max(...factors);
  const sr = new Float64Array(maxP);
  const si = new Float64Array(maxP);
  let or: Float64Array = xr;
  let oi: Float64Array = xi;
  // out[o … o + p·m) ← the DFT of in[i], in[i + fs], … (fs = fstride)
  const work = (o: number, i: number, fs: number, stage: number): void => {
    const p = factors[stage];
    let m = 1;
    for (let s = stage + 1; s < factors.length; s++) m *= factors[s];
    if (m === 1) {
      for (let q = 0; q < p; q++) {
        or[o + q] = xr[i + q * fs];
        oi[o + q] = xi[i + q * fs];
      }
    } else {
      for (let q = 0; q < p; q++) work(o + q * m, i + q * fs, fs * p, stage + 1);
    }
    if (p === 2) {
      for (let u = 0; u < m; u++) {
        const a = o + u;
        const b = a + m;
        const wr = twr[u * fs];
        const wi = twi[u * fs];
        const tr = or[b] * wr - oi[b] * wi;
        const ti = or[b] * wi + oi[b] * wr;
        or[b] = or[a] - tr;
        oi[b] = oi[a] - ti;
        or[a] += tr;
        oi[a] += ti;
      }
    } else if (p === 4) {
      for (let u = 0; u < m; u++) {
        const a0 = o + u;
        const a1 = a0 + m;
        const a2 = a1 + m;
        const a3 = a2 + m;
        const w1 = u * fs;
        const w2 = 2 * w1;
        const w3 = 3 * w1;
        const s0r = or[a1] * twr[w1] - oi[a1] * twi[w1];
        const s0i = or[a1] * twi[w1] + oi[a1] * twr[w1];
        const s1r = or[a2] * twr[w2] - oi[a2] * twi[w2];
        const s1i = or[a2] * twi[w2] + oi[a2] * twr[w2];
        const s2r = or[a3] * twr[w3] - oi[a3] * twi[w3];
        const s2i = or[a3] * twi[w3] + oi[a3] * twr[w3];
        const s5r = or[a0] - s1r;
        const s5i = oi[a0] - s1i;
        const f0r = or[a0] + s1r;
        const f0i = oi[a0] + s1i;
        const s3r = s0r + s2r;
        const s3i = s0i + s2i;
        const s4r = s0r - s2r;
        const s4i = s0i - s2i;
        or[a2] = f0r - s3r;
        oi[a2] = f0i - s3i;
        or[a0] = f0r + s3r;
        oi[a0] = f0i + s3i;
        or[a1] = s5r + s4i;
        oi[a1] = s5i - s4r;
        or[a3] = s5r - s4i;
        oi[a3] = s5i + s4r;
      }
    } else {
      for (let u = 0; u < m; u++) {
        for (let q = 0; q < p; q++) {
          sr[q] = or[o + u + q * m];
          si[q] = oi[o + u + q * m];
        }
        for (let q1 = 0; q1 < p; q1++) {
          const k = u + q1 * m;
          let accr = sr[0];
          let acci = si[0];
          let tw = 0;
          for (let q = 1; q < p; q++) {
            tw += fs * k;
            if (tw >= n) tw -= n;
            accr += sr[q] * twr[tw] - si[q] * twi[tw];
            acci += sr[q] * twi[tw] + si[q] * twr[tw];
          }
          or[o + k] = accr;
          oi[o + k] = acci;
        }
      }
    }
  };
  return {
    n,
    forward(re, im) {
      xr.set(re);
      xi.set(im);
      or = re;
      oi = im;
      work(0, 0, 1, 0);
    },
  };
}

function planFor(n: number): FftPlan {
  let p = plans.get(n);
  if (!p) {
    const factors = (n & (n - 1)) === 0 ? undefined : factorize(n);
    p = (n & (n - 1)) === 0 ? radix2(n) : factors ? mixedRadix(n, factors) : bluestein(n);
    plans.set(n, p);
  }
  return p;
}

/**
 * The unnormalised forward DFT X[k] = Σ x[j]·exp(−2πi·jk/n) of one complex sequence, in place (any length n ≥ 1;
 * O(n log n)).
 */
export function fftInPlace(re: Float64Array, im: Float64Array): void {
  if (re.length !== im.length)
    throw new QcbError(
      'QCB_INTERNAL',
      `FFT of a complex sequence with ${re.length} real and ${im.length} imaginary parts`,
    );
  if (re.length > 1) planFor(re.length).forward(re, im);
}

/**
 * CellProfiler's radial power spectrum (centrosome `rps`): rings r = 2 … ⌊min(H, W)/8⌋ − 1 and the power
 * |FFT(x − μ)|² and magnitude summed over each (see the module documentation for the ring of a frequency).
 * @returns the rings and their sums (empty arrays when the image is too small to have a ring: min(H, W) < 24)
 */
export function radialPowerSpectrum(
  img: Float32Array,
  height: number,
  width: number,
): { radii: number[]; power: number[]; magnitude: number[] } {
  checkShape(img, height, width);
  const top = Math.floor(Math.min(height, width) / 8) - 1; // the last ring
  if (top < 2) return { radii: [], power: [], magnitude: [] };
  const mu = meanOf(img);
  // ring ≤ top needs ⌊√(ri² + rj²)⌋ ≤ top − 1, so ri, rj ≤ top − 1: only those columns' (and rows') frequencies
  const cols: number[] = [];
  for (let j = 0; j < width; j++) if (Math.min(j, width - 1 - j) <= top - 1) cols.push(j);
  const K = cols.length;
  const spec = new Float64Array(2 * K * height); // kept column k, row y: re at (k·H + y)·2
  const re = new Float64Array(width);
  const im = new Float64Array(width);
  // Two real rows a, b per transform: Z = FFT(a + i·b) gives A[k] = (Z[k] + conj Z[−k]) / 2 and
  // B[k] = (Z[k] − conj Z[−k]) / 2i, halving the row transforms.
  for (let y = 0; y < height; y += 2) {
    const off = y * width;
    const pair = y + 1 < height;
    for (let x = 0; x < width; x++) {
      re[x] = img[off + x] - mu;
      im[x] = pair ? img[off + width + x] - mu : 0;
    }
    fftInPlace(re, im);
    for (let k = 0; k < K; k++) {
      const j = cols[k];
      const nj = j === 0 ? 0 : width - j;
      const zr = re[j];
      const zi = im[j];
      const wr = re[nj];
      const wi = -im[nj]; // conj Z[−k]
      const a = 2 * (k * height + y);
      spec[a] = (zr + wr) / 2;
      spec[a + 1] = (zi + wi) / 2;
      if (pair) {
        spec[a + 2] = (zi - wi) / 2;
        spec[a + 3] = -(zr - wr) / 2;
      }
    }
  }
  const cr = new Float64Array(height);
  const ci = new Float64Array(height);
  const power = new Float64Array(top + 1);
  const magnitude = new Float64Array(top + 1);
  for (let k = 0; k < K; k++) {
    for (let y = 0; y < height; y++) {
      cr[y] = spec[2 * (k * height + y)];
      ci[y] = spec[2 * (k * height + y) + 1];
    }
    fftInPlace(cr, ci);
    const rj = Math.min(cols[k], width - 1 - cols[k]);
    for (let i = 0; i < height; i++) {
      const ri = Math.min(i, height - 1 - i);
      if (ri > top - 1) continue;
      const r = Math.floor(Math.sqrt(ri * ri + rj * rj)) + 1;
      if (r < 2 || r > top) continue;
      const p = cr[i] * cr[i] + ci[i] * ci[i];
      power[r] += p;
      magnitude[r] += Math.sqrt(p);
    }
  }
  const radii: number[] = [];
  for (let r = 2; r <= top; r++) radii.push(r);
  return {
    radii,
    power: radii.map((r) => power[r]),
    magnitude: radii.map((r) => magnitude[r]),
  };
}

/**
 * A ring whose power is at most this fraction of the image's spectral energy N·Σ(x − μ)² counts as empty: it holds
 * only the transform's rounding noise (≈ 1e-32 of the energy in float64), which an exact transform would give as 0 —
 * a checkerboard's rings, say. Without it the slope of such an image is a fit to noise, and two correct FFTs (or the
 * QC model's DFT) disagree on it. Real rings carry far more: an 8-bit image's quantisation alone is ~1e-6.
 */
export const RING_POWER_FLOOR = 1e-20;

/** PowerLogLogSlope: the least-squares slope of log ring power on log ring radius (CellProfiler; see the module doc). */
export function powerLogLogSlope(img: Float32Array, height: number, width: number): number {
  checkShape(img, height, width);
  const { lo, hi } = extremes(img);
  if (!(hi > lo)) return 0; // one grey value
  // centrosome divides by the median |x − μ|: NaN everywhere when that is 0, which CellProfiler turns into slope 0
  const mu = meanOf(img);
  const dev = scratchOf(img.length);
  let ss = 0;
  for (let i = 0; i < img.length; i++) {
    dev[i] = Math.abs(img[i] - mu);
    ss += dev[i] * dev[i];
  }
  if (!(medianInPlace(dev) > 0)) return 0;
  const s = radialPowerSpectrum(img, height, width);
  // Parseval: the whole spectrum holds N·Σ(x − μ)²; a ring below RING_POWER_FLOOR of that is empty
  const floor = RING_POWER_FLOOR * img.length * ss;
  const xs: number[] = [];
  const ys: number[] = [];
  s.radii.forEach((r, i) => {
    if (s.power[i] > floor) {
      xs.push(Math.log(r));
      ys.push(Math.log(s.power[i]));
    }
  });
  if (xs.length < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  return sxx > 0 ? sxy / sxx : 0;
}

/** PercentMaximal and PercentMinimal: 100 × the fraction of pixels at the image's own maximum / minimum. */
export function saturation(img: Float32Array): { PercentMaximal: number; PercentMinimal: number } {
  const n = img.length;
  if (n === 0) return { PercentMaximal: 0, PercentMinimal: 0 };
  const { lo, hi } = extremes(img);
  let nlo = 0;
  let nhi = 0;
  for (let i = 0; i < n; i++) {
    if (img[i] === lo) nlo++;
    if (img[i] === hi) nhi++;
  }
  return { PercentMaximal: (100 * nhi) / n, PercentMinimal: (100 * nlo) / n };
}

/** CellProfiler's intensity measures of the image (MeasureImageIntensity's, as MeasureImageQuality reports them). */
export function intensityStats(
  img: Float32Array,
): Pick<
  ImageQuality,
  | 'TotalIntensity'
  | 'MeanIntensity'
  | 'MedianIntensity'
  | 'StdIntensity'
  | 'MADIntensity'
  | 'MinIntensity'
  | 'MaxIntensity'
> {
  const n = img.length;
  if (n === 0)
    return {
      TotalIntensity: 0,
      MeanIntensity: 0,
      MedianIntensity: 0,
      StdIntensity: 0,
      MADIntensity: 0,
      MinIntensity: 0,
      MaxIntensity: 0,
    };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += img[i];
  const { lo, hi } = extremes(img);
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (img[i] - mean) ** 2;
  const buf = scratchOf(n);
  buf.set(img);
  const median = medianInPlace(buf);
  for (let i = 0; i < n; i++) buf[i] = Math.abs(img[i] - median);
  const mad = medianInPlace(buf);
  return {
    TotalIntensity: sum,
    MeanIntensity: mean,
    MedianIntensity: median,
    StdIntensity: Math.sqrt(ss / n),
    MADIntensity: mad,
    MinIntensity: lo,
    MaxIntensity: hi,
  };
}

/**
 * Every MeasureImageQuality measure of one channel.
 * @param img H×W intensities in [0, 1], row-major
 * @returns a record keyed in {@link IMAGE_QUALITY_MEASURES} order
 * @throws QCB_IMAGE_SIZE when `img` is not H×W; QCB_USAGE for a scale that is not a positive integer
 */
export function measureImageQuality(
  img: Float32Array,
  height: number,
  width: number,
  o: ImageQualityOptions = {},
): ImageQuality {
  checkShape(img, height, width);
  const scale = checkScale(o.scale ?? DEFAULT_QUALITY_SCALE);
  const sat = saturation(img);
  return {
    FocusScore: focusScore(img),
    LocalFocusScore: localFocusScore(img, height, width, scale),
    Correlation: haralickCorrelation(img, height, width, scale),
    PowerLogLogSlope: powerLogLogSlope(img, height, width),
    PercentMaximal: sat.PercentMaximal,
    PercentMinimal: sat.PercentMinimal,
    ...intensityStats(img),
  };
}

/**
 * The measures of every channel of a C×H×W image.
 * @param img C×H×W intensities in [0, 1], row-major, channel-major
 * @returns C records, one per channel in order
 */
export function measureImageQualityChannels(
  img: Float32Array,
  channels: number,
  height: number,
  width: number,
  o: ImageQualityOptions = {},
): ImageQuality[] {
  checkShape(img, height, width, channels);
  const plane = height * width;
  return Array.from({ length: channels }, (_, c) =>
    measureImageQuality(img.subarray(c * plane, (c + 1) * plane), height, width, o),
  );
}

/**
 * The measures of a C×H×W image as one vector of C·M values (M = {@link IMAGE_QUALITY_MEASURES}.length), channel by
 * channel, each in the measures' order, written into `out` at `offset` (a feature row).
 */
export function imageQualityVector(
  img: Float32Array,
  channels: number,
  height: number,
  width: number,
  out: Float32Array | Float64Array,
  offset = 0,
  o: ImageQualityOptions = {},
): void {
  const recs = measureImageQualityChannels(img, channels, height, width, o);
  const M = IMAGE_QUALITY_MEASURES.length;
  recs.forEach((r, c) => {
    IMAGE_QUALITY_MEASURES.forEach((name, j) => {
      out[offset + c * M + j] = r[name];
    });
  });
}
