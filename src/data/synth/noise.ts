/**
 * Image-space building blocks of the synthetic fields: smooth value noise (textures, shading, haze), separable
 * box/Gaussian blurs (out-of-focus artefacts) and a table of standard normals for fast camera noise.
 * Images are Float32Array H×W row-major.
 */
import type { Rng } from '../../util/random.js';

/**
 * Smooth value noise in [0, 1): uniform random values on a grid of spacing `cell` pixels, interpolated with a
 * smoothstep-weighted bilinear kernel. Output H×W.
 */
export function valueNoise(width: number, height: number, cell: number, rng: Rng): Float32Array {
  const gw = Math.ceil(width / cell) + 2;
  const gh = Math.ceil(height / cell) + 2;
  const grid = new Float32Array(gw * gh);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.next();
  const out = new Float32Array(width * height);
  // Precompute x weights once per column: the inner loop is then 4 loads and 3 lerps.
  const x0s = new Int32Array(width);
  const fxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const gx = x / cell;
    const ix = Math.floor(gx);
    const f = gx - ix;
    x0s[x] = ix;
    fxs[x] = f * f * (3 - 2 * f);
  }
  for (let y = 0; y < height; y++) {
    const gy = y / cell;
    const iy = Math.floor(gy);
    let fy = gy - iy;
    fy = fy * fy * (3 - 2 * fy);
    const r0 = iy * gw;
    const r1 = r0 + gw;
    const o = y * width;
    for (let x = 0; x < width; x++) {
      const ix = x0s[x];
      const fx = fxs[x];
      const a = grid[r0 + ix] + (grid[r0 + ix + 1] - grid[r0 + ix]) * fx;
      const b = grid[r1 + ix] + (grid[r1 + ix + 1] - grid[r1 + ix]) * fx;
      out[o + x] = a + (b - a) * fy;
    }
  }
  return out;
}

/** Fractal (multi-octave) value noise in about [0, 1): octaves of halving cell size and amplitude. */
export function fbm(width: number, height: number, cell: number, octaves: number, rng: Rng): Float32Array {
  const out = new Float32Array(width * height);
  let amp = 1;
  let total = 0;
  let c = cell;
  for (let o = 0; o < octaves; o++) {
    const n = valueNoise(width, height, Math.max(1, c), rng);
    for (let i = 0; i < out.length; i++) out[i] += amp * n[i];
    total += amp;
    amp *= 0.5;
    c /= 2;
  }
  for (let i = 0; i < out.length; i++) out[i] /= total;
  return out;
}

/** One horizontal + vertical box blur of radius r (window 2r+1), edges clamped. In place on `img`. */
export function boxBlur(img: Float32Array, width: number, height: number, r: number): void {
  if (r < 1) return;
  const tmp = new Float32Array(Math.max(width, height));
  const win = 2 * r + 1;
  for (let y = 0; y < height; y++) {
    const o = y * width;
    let s = 0;
    for (let k = -r; k <= r; k++) s += img[o + clamp(k, 0, width - 1)];
    for (let x = 0; x < width; x++) {
      tmp[x] = s / win;
      s += img[o + clamp(x + r + 1, 0, width - 1)] - img[o + clamp(x - r, 0, width - 1)];
    }
    img.set(tmp.subarray(0, width), o);
  }
  for (let x = 0; x < width; x++) {
    let s = 0;
    for (let k = -r; k <= r; k++) s += img[clamp(k, 0, height - 1) * width + x];
    for (let y = 0; y < height; y++) {
      tmp[y] = s / win;
      s += img[clamp(y + r + 1, 0, height - 1) * width + x] - img[clamp(y - r, 0, height - 1) * width + x];
    }
    for (let y = 0; y < height; y++) img[y * width + x] = tmp[y];
  }
}

/**
 * Approximate Gaussian blur of standard deviation `sigma` by three box blurs (Wells 1986): the defocus point-spread
 * function of a widefield microscope is close to Gaussian for moderate defocus. In place.
 */
export function gaussianBlur(img: Float32Array, width: number, height: number, sigma: number): void {
  if (sigma < 0.5) return;
  // Box radius whose three-fold convolution has variance ≈ sigma².
  const r = Math.max(1, Math.round((Math.sqrt(4 * sigma * sigma + 1) - 1) / 2));
  for (let i = 0; i < 3; i++) boxBlur(img, width, height, r);
}

/**
 * A fixed table of standard normal draws indexed by a xorshift32 stream: camera noise for millions of pixels at a
 * fraction of Box–Muller's cost, without the visible repetition of a sequential walk through the table.
 */
export class NormalTable {
  private readonly table: Float32Array;
  private readonly mask: number;
  private state: number;

  constructor(rng: Rng, bits = 16) {
    const size = 1 << bits;
    this.table = new Float32Array(size);
    for (let i = 0; i < size; i++) this.table[i] = rng.normal();
    this.mask = size - 1;
    this.state = rng.nextU32() | 1;
  }

  /** The next standard normal value. */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x;
    return this.table[(x >>> 8) & this.mask];
  }
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
