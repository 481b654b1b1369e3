/**
 * The SSL augmentations of Masud et al. 2022, §3.2: "90 degree rotation, flip, transpose, shift and scale", chosen
 * so the learned features stay relevant to QC (no colour jitter, no blur, no crops that cut the cell away: those
 * would erase the very artefacts QC must see).
 *
 * All geometric steps compose into one affine map from output to source pixel coordinates, so each view is a
 * single pass: a pure index permutation when the map is a symmetry of the square (the common case with shift and
 * scale applied half of the time), bilinear resampling otherwise, with reflect-101 borders (albumentations' and
 * OpenCV's default). Input crops are uint8 N×C×H×W; output views are float32 N×C×H×W, normalised per channel as
 * (v / 255 − mean[c]) / std[c].
 */
import { QcbError } from '../../errors.js';
import type { Rng } from '../../util/random.js';

export interface AugmentOptions {
  /** Random rotation by k·90°, k uniform in 0..3. */
  rot90: boolean;
  /** Probability of a horizontal flip. */
  flip: number;
  /** Probability of a transpose (swap of x and y). */
  transpose: number;
  /** Probability of a shift-and-scale step (albumentations ShiftScaleRotate without rotation). */
  shiftScaleP: number;
  /** Maximum shift as a fraction of the crop side, in each axis. */
  shift: number;
  /** Scale range [lo, hi] (zoom about the crop centre). */
  scale: [number, number];
  /** Per-channel mean and std of v / 255 (length C, or one value for all channels). */
  mean: number[];
  std: number[];
}

/**
 * Defaults: every dihedral symmetry equally likely (rotation × flip × transpose), and half of the views shifted by
 * up to 6.25% and scaled by 0.9–1.1 (albumentations ShiftScaleRotate defaults, which solo-learn-era pipelines use).
 * mean 0.5 / std 0.25 maps uint8 onto about [−2, 2]; pass the ImageNet statistics for ImageNet-pretrained encoders.
 */
export const DEFAULT_AUGMENT: AugmentOptions = {
  rot90: true,
  flip: 0.5,
  transpose: 0.5,
  shiftScaleP: 0.5,
  shift: 0.0625,
  scale: [0.9, 1.1],
  mean: [0.5],
  std: [0.25],
};

/** No geometric change: only normalisation (for features of un-augmented crops). */
export const NO_AUGMENT: AugmentOptions = { ...DEFAULT_AUGMENT, rot90: false, flip: 0, transpose: 0, shiftScaleP: 0 };

/**
 * One view's transform: a symmetry of the square (integer matrix [[a, b], [c, d]] about the crop centre) after an
 * axis-aligned zoom by `scale` and shift by (dx, dy) pixels. An output pixel p reads the source at
 * M·((p − centre − shift) / scale) + centre.
 */
export interface ViewTransform {
  a: number;
  b: number;
  c: number;
  d: number;
  scale: number;
  dx: number;
  dy: number;
}

/** Output pixel (x, y) → source (a·x + b·y + tx, c·x + d·y + ty), in pixel-centre coordinates. */
export interface Affine {
  a: number;
  b: number;
  c: number;
  d: number;
  tx: number;
  ty: number;
}

/** Draws one view's transform (rotation, flip, transpose, then shift and scale with probability shiftScaleP). */
export function sampleTransform(rng: Rng, size: number, o: AugmentOptions): ViewTransform {
  let a = 1;
  let b = 0;
  let c = 0;
  let d = 1;
  const k = o.rot90 ? rng.int(4) : 0;
  for (let i = 0; i < k; i++) {
    // compose with a 90° rotation: (x, y) → (y, −x)
    [a, b, c, d] = [c, d, -a, -b];
  }
  if (rng.next() < o.flip) [a, b] = [-a, -b];
  if (rng.next() < o.transpose) [a, b, c, d] = [c, d, a, b];
  let scale = 1;
  let dx = 0;
  let dy = 0;
  if (rng.next() < o.shiftScaleP) {
    scale = o.scale[0] + (o.scale[1] - o.scale[0]) * rng.next();
    dx = (2 * rng.next() - 1) * o.shift * size;
    dy = (2 * rng.next() - 1) * o.shift * size;
  }
  return { a, b, c, d, scale, dx, dy };
}

/** The composed output→source affine map of a view transform (for references and tests). */
export function toAffine(t: ViewTransform, size: number): Affine {
  const ctr = (size - 1) / 2;
  const inv = 1 / t.scale;
  const ox = -ctr - t.dx;
  const oy = -ctr - t.dy;
  return {
    a: t.a * inv,
    b: t.b * inv,
    c: t.c * inv,
    d: t.d * inv,
    tx: (t.a * ox + t.b * oy) * inv + ctr,
    ty: (t.c * ox + t.d * oy) * inv + ctr,
  };
}

/** Per-channel affine normalisation v·k + o for uint8 v (k = 1/(255·std), o = −mean/std). */
export function normalisation(o: AugmentOptions, channels: number): { k: Float32Array; off: Float32Array } {
  const pick = (xs: number[], name: string, c: number) => {
    if (xs.length !== 1 && xs.length !== channels) {
      throw new QcbError('QCB_USAGE', `augmentation ${name} has ${xs.length} values for ${channels} channels`, {
        key: name,
        value: xs,
        allowed: `1 or ${channels} values`,
        fix: `give one ${name} per channel, or a single value for all`,
      });
    }
    return xs.length === 1 ? xs[0] : xs[c];
  };
  const k = new Float32Array(channels);
  const off = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const std = pick(o.std, 'std', c);
    if (!(std > 0)) {
      throw new QcbError('QCB_USAGE', `augmentation std must be positive, got ${std}`, {
        key: 'std',
        value: std,
        fix: 'use a positive std such as 0.25',
      });
    }
    k[c] = 1 / (255 * std);
    off[c] = -pick(o.mean, 'mean', c) / std;
  }
  return { k, off };
}

/** Reflect-101 index into [0, n): …2 1 |0 1 2 … n−1| n−2 … */
export function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  const p = 2 * (n - 1);
  i %= p;
  if (i < 0) i += p;
  return i < n ? i : p - i;
}

/**
 * Writes one transformed, normalised crop. `src` holds the uint8 crop at `srcOff` (C×S×S), `dst` receives float32
 * C×S×S at `dstOff`. One pass: the symmetry is an exact pixel permutation, and since the zoom/shift is
 * axis-aligned, its bilinear weights and the symmetry's index arithmetic come from tables of S entries per axis.
 */
export function warpCrop(
  src: Uint8Array,
  srcOff: number,
  dst: Float32Array,
  dstOff: number,
  channels: number,
  size: number,
  t: ViewTransform,
  norm: { k: Float32Array; off: Float32Array },
): void {
  const S = size;
  const plane = S * S;
  // The symmetry as an index walk: src(M·(q − ctr) + ctr); with ctr = (S−1)/2 the offsets tx, ty are integers.
  const tx = ((S - 1) * (1 - t.a - t.b)) / 2;
  const ty = ((S - 1) * (1 - t.c - t.d)) / 2;
  const step = t.c * S + t.a;
  const zoom = t.scale !== 1 || t.dx !== 0 || t.dy !== 0;
  if (!zoom) {
    for (let c = 0; c < channels; c++) {
      const sp = srcOff + c * plane;
      const dp = dstOff + c * plane;
      const k = norm.k[c];
      const off = norm.off[c];
      for (let y = 0; y < S; y++) {
        let si = sp + (t.d * y + ty) * S + t.b * y + tx;
        const o = dp + y * S;
        for (let x = 0; x < S; x++) {
          dst[o + x] = src[si] * k + off;
          si += step;
        }
      }
    }
    return;
  }
  // Zoom/shift: out(p) = T(q) with q = (p − ctr − shift) / scale + ctr axis-aligned, and T(q) = src(M·(q − ctr) +
  // ctr). The source index is linear in (qx, qy): qx·(c·S + a) + qy·(d·S + b) + base, so the symmetry folds into
  // per-column and per-row index tables and each output pixel is 4 gathers and 3 lerps, in one pass.
  const sc = getScratch(S);
  const ctr = (S - 1) / 2;
  const inv = 1 / t.scale;
  const colStride = t.c * S + t.a;
  const rowStride = t.d * S + t.b;
  const base = ty * S + tx;
  const { xa, xb, wx, ya, yb, wy } = sc;
  for (let i = 0; i < S; i++) {
    const qx = (i - ctr - t.dx) * inv + ctr;
    const x0 = Math.floor(qx);
    xa[i] = reflect(x0, S) * colStride;
    xb[i] = reflect(x0 + 1, S) * colStride;
    wx[i] = qx - x0;
    const qy = (i - ctr - t.dy) * inv + ctr;
    const y0 = Math.floor(qy);
    ya[i] = reflect(y0, S) * rowStride + base;
    yb[i] = reflect(y0 + 1, S) * rowStride + base;
    wy[i] = qy - y0;
  }
  for (let c = 0; c < channels; c++) {
    const sp = srcOff + c * plane;
    const dp = dstOff + c * plane;
    const k = norm.k[c];
    const off = norm.off[c];
    for (let y = 0; y < S; y++) {
      const ra = sp + ya[y];
      const rb = sp + yb[y];
      const fy = wy[y];
      const o = dp + y * S;
      for (let x = 0; x < S; x++) {
        const ca = xa[x];
        const cb = xb[x];
        const fx = wx[x];
        const a0 = src[ra + ca];
        const top = a0 + (src[ra + cb] - a0) * fx;
        const b0 = src[rb + ca];
        const bot = b0 + (src[rb + cb] - b0) * fx;
        dst[o + x] = (top + (bot - top) * fy) * k + off;
      }
    }
  }
}

interface Scratch {
  xa: Int32Array;
  xb: Int32Array;
  ya: Int32Array;
  yb: Int32Array;
  wx: Float32Array;
  wy: Float32Array;
}
let scratchCache: Scratch | undefined;
/** Index/weight tables reused across calls (the loader warps thousands of crops of one size). */
function getScratch(S: number): Scratch {
  if (!scratchCache || scratchCache.xa.length < S) {
    scratchCache = {
      xa: new Int32Array(S),
      xb: new Int32Array(S),
      ya: new Int32Array(S),
      yb: new Int32Array(S),
      wx: new Float32Array(S),
      wy: new Float32Array(S),
    };
  }
  return scratchCache;
}

/**
 * Augments a batch: one random transform per crop. `crops` is uint8 N×C×S×S; returns (or fills `out`) float32
 * N×C×S×S.
 */
export function augmentBatch(
  crops: Uint8Array,
  n: number,
  channels: number,
  size: number,
  rng: Rng,
  o: AugmentOptions = DEFAULT_AUGMENT,
  out?: Float32Array,
): Float32Array {
  const per = channels * size * size;
  if (crops.length < n * per) {
    throw new QcbError(
      'QCB_STORE',
      `batch of ${n} crops of ${channels}×${size}×${size} needs ${n * per} bytes, got ${crops.length}`,
      {
        value: crops.length,
        fix: 'read crops from a store whose channels and size match the loader',
      },
    );
  }
  const dst = out ?? new Float32Array(n * per);
  const norm = normalisation(o, channels);
  for (let i = 0; i < n; i++)
    warpCrop(crops, i * per, dst, i * per, channels, size, sampleTransform(rng, size, o), norm);
  return dst;
}

/** Two independently augmented views of the same crops (the input of every SSL method): [view1, view2]. */
export function twoViews(
  crops: Uint8Array,
  n: number,
  channels: number,
  size: number,
  rng: Rng,
  o: AugmentOptions = DEFAULT_AUGMENT,
): [Float32Array, Float32Array] {
  return [augmentBatch(crops, n, channels, size, rng, o), augmentBatch(crops, n, channels, size, rng, o)];
}
