import { QcbError } from '../../errors.js';
import type { ImageData } from '../types.js';

/**
 * Nuclei segmentation of the DNA channel, the classic CellProfiler-style pipeline (IdentifyPrimaryObjects):
 * Gaussian smoothing → automatic threshold (Otsu on a log or linear histogram, floored at background + k·noise so an
 * empty field yields no objects) → 8-connected components → split of touching nuclei (peaks of the Euclidean distance
 * transform as markers, watershed on the distance map) → size filters. Returns one centre per nucleus.
 */

/** A nucleus: centroid in field pixel coordinates (x right, y down) and area in pixels. */
export interface Nucleus {
  x: number;
  y: number;
  area: number;
}

export interface SegmentOptions {
  /** Typical nucleus diameter in pixels (default 30: U2OS/MCF-7 at 20×, 696×520 or 1280×1024 fields). */
  diameter?: number;
  /** Gaussian σ in pixels (default diameter / 15). */
  sigma?: number;
  /** Histogram Otsu is computed on (default 'log': dim nuclei next to bright ones stay above threshold). */
  threshold?: 'otsu' | 'otsu-log';
  /** Threshold floor: 10th-percentile background + k × pixel-noise σ (default 6). */
  noiseK?: number;
  /** Smallest kept object (default 0.12 × area of a disc of the diameter). */
  minArea?: number;
  /** Largest kept object after splitting (default 6 × area of a disc of the diameter). */
  maxArea?: number;
  /** Work at 1/f resolution (default ⌊diameter / 15⌋, at least 1); centres and areas are reported at full resolution. */
  downsample?: number;
  /** Split touching nuclei (default true). */
  split?: boolean;
}

/** Segmentation result: nuclei sorted by (y, x), plus the threshold used (in input intensity units). */
export interface Segmentation {
  nuclei: Nucleus[];
  threshold: number;
  /** Label image (0 = background), H×W at full resolution, when `keepLabels` was asked for. */
  labels?: Int32Array;
}

/** Segments nuclei in channel `channel` of `img` (a single-channel DNA image by default). */
export function segmentNuclei(
  img: ImageData,
  opts: SegmentOptions = {},
  channel = 0,
  keepLabels = false,
): Segmentation {
  if (channel >= img.channels) {
    throw new QcbError('QCB_USAGE', `DNA channel index ${channel} out of range (${img.channels} channels)`, {
      fix: 'pick an existing channel',
    });
  }
  const diameter = opts.diameter ?? 30;
  // Nuclei ≥ 15 px across lose nothing at half resolution, and everything below costs a quarter.
  const f = Math.max(1, Math.floor(opts.downsample ?? diameter / 15));
  const W = Math.floor(img.width / f);
  const H = Math.floor(img.height / f);
  const r = diameter / 2 / f;
  const sigma = (opts.sigma ?? diameter / 15) / f;
  const minArea = (opts.minArea ?? 0.12 * Math.PI * (diameter / 2) ** 2) / (f * f);
  const maxArea = (opts.maxArea ?? 6 * Math.PI * (diameter / 2) ** 2) / (f * f);
  const n = W * H;
  const src = binChannel(img, channel, f, W, H);
  const smooth = sigma > 0 ? gaussianBlur(src, W, H, sigma) : src;

  // Threshold.
  const t = Math.max(otsuThreshold(smooth, opts.threshold ?? 'otsu-log'), noiseFloor(src, smooth, opts.noiseK ?? 6));
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = smooth[i] > t ? 1 : 0;

  // Connected components.
  const { labels, count } = connectedComponents(mask, W, H);
  let regionLabels = labels;
  let regionCount = count;
  if (opts.split !== false && count > 0) {
    const s = splitTouching(src, mask, labels, count, W, H, r);
    regionLabels = s.labels;
    regionCount = s.count;
  }
  // Moments per region.
  const area = new Float64Array(regionCount + 1);
  const sx = new Float64Array(regionCount + 1);
  const sy = new Float64Array(regionCount + 1);
  for (let y = 0, i = 0; y < H; y++) {
    for (let x = 0; x < W; x++, i++) {
      const l = regionLabels[i];
      if (l > 0) {
        area[l]++;
        sx[l] += x;
        sy[l] += y;
      }
    }
  }
  const nuclei: Nucleus[] = [];
  for (let l = 1; l <= regionCount; l++) {
    if (area[l] < minArea || area[l] > maxArea) continue;
    // Back to full-resolution pixel coordinates: block (xs) covers pixels f·xs … f·xs + f − 1.
    nuclei.push({ x: (sx[l] / area[l] + 0.5) * f - 0.5, y: (sy[l] / area[l] + 0.5) * f - 0.5, area: area[l] * f * f });
  }
  nuclei.sort((a, b) => a.y - b.y || a.x - b.x);
  if (!keepLabels) return { nuclei, threshold: t };
  const full = new Int32Array(img.width * img.height);
  for (let y = 0; y < H * f; y++)
    for (let x = 0; x < W * f; x++) full[y * img.width + x] = regionLabels[Math.floor(y / f) * W + Math.floor(x / f)];
  return { nuclei, threshold: t, labels: full };
}

/** Channel `c` of `img` averaged over f×f blocks (f = 1: a float copy). W×H float. */
function binChannel(img: ImageData, c: number, f: number, W: number, H: number): Float32Array {
  const out = new Float32Array(W * H);
  const C = img.channels;
  const iw = img.width;
  const d = img.data;
  const inv = 1 / (f * f);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let acc = 0;
      for (let dy = 0; dy < f; dy++) {
        let j = ((y * f + dy) * iw + x * f) * C + c;
        for (let dx = 0; dx < f; dx++, j += C) acc += d[j];
      }
      out[y * W + x] = acc * inv;
    }
  }
  return out;
}

/** Separable Gaussian blur (kernel radius 3σ, edges clamped). H×W float. */
export function gaussianBlur(src: Float32Array, W: number, H: number, sigma: number): Float32Array {
  const rad = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * rad + 1);
  let sum = 0;
  for (let i = -rad; i <= rad; i++) sum += k[i + rad] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const tmp = new Float32Array(W * H);
  const out = new Float32Array(W * H);
  // Horizontal pass; the kernel is symmetric, so pairs of taps share a multiply.
  const k0 = k[rad];
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let x = 0; x < W; x++) {
      const i = row + x;
      let acc = k0 * src[i];
      if (x >= rad && x < W - rad) {
        for (let t = 1; t <= rad; t++) acc += k[rad + t] * (src[i - t] + src[i + t]);
      } else {
        for (let t = 1; t <= rad; t++) {
          const xl = x - t < 0 ? 0 : x - t;
          const xr = x + t >= W ? W - 1 : x + t;
          acc += k[rad + t] * (src[row + xl] + src[row + xr]);
        }
      }
      tmp[i] = acc;
    }
  }
  // Vertical pass row by row (sequential memory access).
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let x = 0; x < W; x++) out[row + x] = k0 * tmp[row + x];
    for (let t = 1; t <= rad; t++) {
      const up = (y - t < 0 ? 0 : y - t) * W;
      const dn = (y + t >= H ? H - 1 : y + t) * W;
      const kt = k[rad + t];
      for (let x = 0; x < W; x++) out[row + x] += kt * (tmp[up + x] + tmp[dn + x]);
    }
  }
  return out;
}

/** Otsu's threshold of a 256-bin histogram: the bin index maximising between-class variance. */
export function otsuBin(hist: Float64Array | Uint32Array): number {
  let total = 0;
  let sumAll = 0;
  for (let i = 0; i < hist.length; i++) {
    total += hist[i];
    sumAll += i * hist[i];
  }
  let wB = 0;
  let sumB = 0;
  let best = 0;
  let bestVar = -1;
  for (let i = 0; i < hist.length; i++) {
    wB += hist[i];
    if (wB === 0) continue;
    const wF = total - wB;
    if (wF === 0) break;
    sumB += i * hist[i];
    const mB = sumB / wB;
    const mF = (sumAll - sumB) / wF;
    const v = wB * wF * (mB - mF) * (mB - mF);
    if (v > bestVar) {
      bestVar = v;
      best = i;
    }
  }
  return best;
}

function otsuThreshold(img: Float32Array, kind: 'otsu' | 'otsu-log'): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < img.length; i++) {
    const v = img[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(hi > lo)) return hi; // flat image: nothing above threshold
  const bins = 256;
  const log = kind === 'otsu-log';
  const fmax = log ? Math.log1p(hi - lo) : hi - lo;
  const scale = bins / fmax;
  const hist = new Float64Array(bins);
  for (let i = 0; i < img.length; i++) {
    const d = img[i] - lo;
    const b = Math.floor((log ? Math.log1p(d) : d) * scale);
    hist[b < bins ? b : bins - 1]++;
  }
  const b = otsuBin(hist);
  const fv = (b + 1) / scale;
  const otsu = log ? lo + Math.expm1(fv) : lo + fv;
  return otsu;
}

/**
 * Threshold floor: a low percentile (background level, valid even in dense or blurred fields) plus k × the pixel
 * noise, measured as the robust σ of the high-frequency residual (raw − smoothed) so that blurred nuclei do not
 * count as noise. An empty field therefore yields (almost) no objects instead of Otsu splitting pure noise in two.
 */
function noiseFloor(raw: Float32Array, smooth: Float32Array, k: number): number {
  const step = Math.max(1, Math.floor(raw.length / 20_000));
  const m = Math.ceil(raw.length / step);
  const level = new Float32Array(m);
  const resid = new Float32Array(m);
  for (let i = 0, j = 0; i < raw.length; i += step, j++) {
    level[j] = smooth[i];
    resid[j] = raw[i] - smooth[i];
  }
  const rm = select(resid, m >> 1);
  for (let j = 0; j < m; j++) resid[j] = Math.abs(resid[j] - rm);
  const sigma = select(resid, m >> 1) * 1.4826;
  return select(level, Math.floor(0.1 * m)) + k * sigma;
}

/** The k-th smallest value (0-based) of `a`, by in-place quickselect (Hoare partition, median-of-three): O(n). */
export function select(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >> 1;
    // median of three as pivot
    let p = a[mid];
    const x = a[lo];
    const y = a[hi];
    if ((x <= p && p <= y) || (y <= p && p <= x)) {
      // p is the median
    } else if ((p <= x && x <= y) || (y <= x && x <= p)) p = x;
    else p = y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < p) i++;
      while (a[j] > p) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/** 8-connected components of a binary mask (two-pass with union-find). Labels 1..count. */
export function connectedComponents(mask: Uint8Array, W: number, H: number): { labels: Int32Array; count: number } {
  const labels = new Int32Array(W * H);
  const parent: number[] = [0];
  const find = (a: number): number => {
    while (parent[a] !== a) {
      parent[a] = parent[parent[a]];
      a = parent[a];
    }
    return a;
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      if (!mask[i]) continue;
      let l = 0;
      // Already-visited 8-neighbours: W, NW, N, NE.
      for (let k = 0; k < 4; k++) {
        let j: number;
        if (k === 0) {
          if (x === 0) continue;
          j = i - 1;
        } else {
          if (y === 0) break;
          const dx = k - 2;
          if ((dx < 0 && x === 0) || (dx > 0 && x === W - 1)) continue;
          j = i - W + dx;
        }
        const lj = labels[j];
        if (lj) {
          if (!l) l = lj;
          else if (lj !== l) union(l, lj);
        }
      }
      if (!l) {
        l = parent.length;
        parent.push(l);
      }
      labels[i] = l;
    }
  }
  const remap = new Int32Array(parent.length);
  let count = 0;
  for (let l = 1; l < parent.length; l++) {
    const root = find(l);
    if (root === l) remap[l] = ++count;
  }
  for (let l = 1; l < parent.length; l++) remap[l] = remap[find(l)];
  for (let i = 0; i < labels.length; i++) if (labels[i]) labels[i] = remap[labels[i]];
  return { labels, count };
}

/** Exact Euclidean distance transform (Felzenszwalb & Huttenlocher 2012) of the foreground: distance to background. */
export function distanceTransform(mask: Uint8Array, W: number, H: number): Float32Array {
  const INF = 1e20;
  const g = new Float64Array(W * H);
  for (let i = 0; i < g.length; i++) g[i] = mask[i] ? INF : 0;
  const N = Math.max(W, H);
  const f = new Float64Array(N);
  const d = new Float64Array(N);
  const v = new Int32Array(N);
  const z = new Float64Array(N + 1);
  const pass = (len: number) => {
    let k = 0;
    v[0] = 0;
    z[0] = -INF;
    z[1] = INF;
    for (let q = 1; q < len; q++) {
      let s = (f[q] + q * q - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
      while (s <= z[k]) {
        k--;
        s = (f[q] + q * q - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
      }
      k++;
      v[k] = q;
      z[k] = s;
      z[k + 1] = INF;
    }
    k = 0;
    for (let q = 0; q < len; q++) {
      while (z[k + 1] < q) k++;
      d[q] = (q - v[k]) * (q - v[k]) + f[v[k]];
    }
  };
  for (let x = 0; x < W; x++) {
    for (let y = 0; y < H; y++) f[y] = g[y * W + x];
    pass(H);
    for (let y = 0; y < H; y++) g[y * W + x] = d[y];
  }
  const out = new Float32Array(W * H);
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let x = 0; x < W; x++) f[x] = g[row + x];
    pass(W);
    for (let x = 0; x < W; x++) out[row + x] = Math.sqrt(d[x]);
  }
  return out;
}

/**
 * Splits touching nuclei in two passes. Shape: markers are local maxima of the (slightly smoothed) distance
 * transform, kept greedily from the deepest down when farther from every kept marker of the same component than
 * ~0.9× the larger depth (two overlapping discs that far apart are two nuclei, not one elongated nucleus); watershed
 * on −EDT. Intensity: regions still larger than 2.5 discs (blurred, out-of-focus clumps where the mask has no necks)
 * are split again from peaks of the intensity smoothed at σ = r/3, at least 0.8 r apart; watershed on −intensity.
 */
function splitTouching(
  src: Float32Array,
  mask: Uint8Array,
  labels: Int32Array,
  count: number,
  W: number,
  H: number,
  r: number,
): { labels: Int32Array; count: number } {
  const edt = gaussianBlur(distanceTransform(mask, W, H), W, H, 1);
  for (let i = 0; i < edt.length; i++) if (!mask[i]) edt[i] = 0;
  const shape = markerWatershed(
    edt,
    labels,
    count,
    W,
    H,
    0.25 * r,
    (d, a, b) => d >= 0.9 * Math.max(a, b) && d >= 0.5 * r,
  );
  // Second pass on oversized regions.
  const area = new Float64Array(shape.count + 1);
  for (let i = 0; i < shape.labels.length; i++) area[shape.labels[i]]++;
  const big = new Set<number>();
  for (let l = 1; l <= shape.count; l++) if (area[l] > 2.5 * Math.PI * r * r) big.add(l);
  if (big.size === 0) return shape;
  const sub = new Int32Array(W * H);
  let x0 = W;
  let y0 = H;
  let x1 = -1;
  let y1 = -1;
  for (let i = 0; i < sub.length; i++) {
    if (!big.has(shape.labels[i])) continue;
    sub[i] = shape.labels[i];
    const x = i % W;
    const y = (i - x) / W;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  // Blur only the bounding box of the oversized regions (plus the kernel's reach).
  const sigmaI = Math.max(1, r / 3);
  const m = Math.ceil(3 * sigmaI);
  x0 = Math.max(0, x0 - m);
  y0 = Math.max(0, y0 - m);
  x1 = Math.min(W - 1, x1 + m);
  y1 = Math.min(H - 1, y1 + m);
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const box = new Float32Array(bw * bh);
  for (let y = 0; y < bh; y++) box.set(src.subarray((y0 + y) * W + x0, (y0 + y) * W + x0 + bw), y * bw);
  const blurred = gaussianBlur(box, bw, bh, sigmaI);
  const smooth = new Float32Array(W * H);
  for (let y = 0; y < bh; y++) {
    for (let x = 0; x < bw; x++) {
      const i = (y0 + y) * W + x0 + x;
      if (sub[i]) smooth[i] = blurred[y * bw + x];
    }
  }
  const inten = markerWatershed(smooth, sub, shape.count, W, H, 0, (d) => d >= 0.8 * r);
  const out = new Int32Array(W * H);
  const renum = new Int32Array(shape.count + 1);
  let next = 0;
  for (let l = 1; l <= shape.count; l++) if (!big.has(l)) renum[l] = ++next;
  for (let i = 0; i < out.length; i++) {
    const l = shape.labels[i];
    if (l && !big.has(l)) out[i] = renum[l];
    else if (inten.labels[i]) out[i] = next + inten.labels[i];
  }
  return { labels: out, count: next + inten.count };
}

/**
 * Marker-controlled watershed of labelled components on a landscape (higher = more central). Markers are 3×3
 * local maxima ≥ `minValue`, accepted from the highest down when `separate(distance, value, keptValue)` holds for
 * every kept marker of the component. Components with ≥ 2 markers are flooded from them, highest level first
 * (bucket queue); the others keep their label. Returns relabelled regions 1..count.
 */
function markerWatershed(
  land: Float32Array,
  labels: Int32Array,
  count: number,
  W: number,
  H: number,
  minValue: number,
  separate: (dist: number, a: number, b: number) => boolean,
): { labels: Int32Array; count: number } {
  const cands: number[] = [];
  for (let y = 1; y < H - 1; y++) {
    for (let x = 1; x < W - 1; x++) {
      const i = y * W + x;
      const v = land[i];
      if (!labels[i] || v < minValue || v <= 0) continue;
      // A maximum has no higher neighbour; on a plateau only the last pixel in scan order counts.
      if (land[i - W - 1] > v || land[i - W] > v || land[i - W + 1] > v || land[i - 1] > v) continue;
      if (land[i + 1] >= v || land[i + W - 1] >= v || land[i + W] >= v || land[i + W + 1] >= v) continue;
      cands.push(i);
    }
  }
  cands.sort((a, b) => land[b] - land[a]);
  const kept = new Map<number, number[]>();
  for (const i of cands) {
    const l = labels[i];
    let list = kept.get(l);
    if (!list) kept.set(l, (list = []));
    const x = i % W;
    const y = (i - x) / W;
    let ok = true;
    for (const j of list) {
      const xj = j % W;
      if (!separate(Math.hypot(x - xj, y - (j - xj) / W), land[i], land[j])) {
        ok = false;
        break;
      }
    }
    if (ok) list.push(i);
  }
  const multi = new Set<number>();
  for (const [l, list] of kept) if (list.length >= 2) multi.add(l);
  const out = new Int32Array(W * H);
  const renum = new Int32Array(count + 1);
  let next = 0;
  // Labels that exist at all (a caller may pass a sparse subset of 1..count).
  const present = new Uint8Array(count + 1);
  for (let i = 0; i < labels.length; i++) present[labels[i]] = 1;
  next = 0;
  for (let l = 1; l <= count; l++) renum[l] = present[l] && !multi.has(l) ? ++next : 0;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l && !multi.has(l)) out[i] = renum[l];
  }
  if (multi.size === 0) return { labels: out, count: next };
  const LEVELS = 1024;
  let maxV = 0;
  for (let i = 0; i < land.length; i++) if (labels[i] && land[i] > maxV) maxV = land[i];
  const qs = (LEVELS - 1) / (maxV + 1e-9);
  const q = (v: number) => (v <= 0 ? 0 : Math.min(LEVELS - 1, Math.floor(v * qs)));
  const buckets: number[][] = Array.from({ length: LEVELS }, () => []);
  for (const l of multi) {
    for (const i of kept.get(l) ?? []) {
      out[i] = ++next;
      buckets[q(land[i])].push(i);
    }
  }
  let level = LEVELS - 1;
  while (level >= 0) {
    const b = buckets[level];
    if (b.length === 0) {
      level--;
      continue;
    }
    const i = b.pop() as number;
    const x = i % W;
    const y = (i - x) / W;
    const li = labels[i];
    for (let dy = -1; dy <= 1; dy++) {
      const yy = y + dy;
      if (yy < 0 || yy >= H) continue;
      for (let dx = -1; dx <= 1; dx++) {
        const xx = x + dx;
        if ((!dx && !dy) || xx < 0 || xx >= W) continue;
        const j = yy * W + xx;
        if (out[j] || labels[j] !== li) continue;
        out[j] = out[i];
        const lj = Math.min(level, q(land[j])); // never flood "uphill" ahead of the current level
        buckets[lj].push(j);
      }
    }
  }
  return { labels: out, count: next };
}
