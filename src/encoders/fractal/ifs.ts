/**
 * Formula-driven fractal images (Kataoka et al., "Pre-training without Natural Images", ACCV 2020): each category is
 * an iterated function system (IFS) of 2–`maxMaps` random affine maps
 *   w_i(x, y) = (a_i·x + b_i·y + e_i, c_i·x + d_i·y + f_i),  a…f ~ U(−1, 1),  P(w_i) ∝ |a_i·d_i − b_i·c_i|,
 * kept only when its attractor, rendered by the chaos game, fills enough of the image (the paper's filling-rate
 * filter, which rejects degenerate and exploding systems). Instances of a category vary one parameter of one map by
 * a factor in [0.8, 1.2] (the paper's intra-category weights), flip the image and colour each map's points.
 *
 * Everything is a pure function of the seed: the same seed gives byte-identical images on every machine.
 */
import { mulberry32 } from '../../util/random.js';

/** One affine map of an IFS and its selection probability. */
export interface IfsMap {
  a: number;
  b: number;
  c: number;
  d: number;
  e: number;
  f: number;
  p: number;
}

/** A fractal category: its IFS and the filling rate it was accepted with. */
export interface FractalCategory {
  maps: IfsMap[];
  fill: number;
}

export interface CategoryOptions {
  /** Most affine maps per system (default 4; the paper samples 2–8). */
  maxMaps?: number;
  /** Minimum share of pixels the attractor covers at 64×64 with 20k points (default 0.12). */
  fillThreshold?: number;
  /** Give up after this many rejected systems per category (default 2000). */
  maxTries?: number;
}

const PARAMS = ['a', 'b', 'c', 'd', 'e', 'f'] as const;

function withProbabilities(maps: Omit<IfsMap, 'p'>[]): IfsMap[] {
  const dets = maps.map((m) => Math.abs(m.a * m.d - m.b * m.c));
  const s = dets.reduce((x, y) => x + y, 0);
  return maps.map((m, i) => ({ ...m, p: s > 0 ? dets[i] / s : 1 / maps.length }));
}

/**
 * Runs the chaos game and returns the visited points scaled into a size×size image (aspect kept, 4% margin), with
 * the index of the map that produced each point; undefined when the system diverges or collapses to a point.
 */
export function chaosGame(
  maps: IfsMap[],
  points: number,
  size: number,
  seed: number,
): { xy: Int32Array; which: Uint8Array } | undefined {
  const rnd = mulberry32(seed);
  const cum: number[] = [];
  let acc = 0;
  for (const m of maps) cum.push((acc += m.p));
  const xs = new Float64Array(points);
  const ys = new Float64Array(points);
  const which = new Uint8Array(points);
  let x = 0;
  let y = 0;
  const burn = 20;
  for (let i = -burn; i < points; i++) {
    const u = rnd() * acc;
    let k = 0;
    while (k < maps.length - 1 && u > cum[k]) k++;
    const m = maps[k];
    const nx = m.a * x + m.b * y + m.e;
    const ny = m.c * x + m.d * y + m.f;
    x = nx;
    y = ny;
    if (!Number.isFinite(x) || !Number.isFinite(y) || Math.abs(x) > 1e6 || Math.abs(y) > 1e6) return undefined;
    if (i >= 0) {
      xs[i] = x;
      ys[i] = y;
      which[i] = k;
    }
  }
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < points; i++) {
    x0 = Math.min(x0, xs[i]);
    x1 = Math.max(x1, xs[i]);
    y0 = Math.min(y0, ys[i]);
    y1 = Math.max(y1, ys[i]);
  }
  const span = Math.max(x1 - x0, y1 - y0);
  if (!(span > 1e-9)) return undefined;
  const margin = 0.04 * size;
  const scale = (size - 1 - 2 * margin) / span;
  const ox = margin + (size - 1 - 2 * margin - (x1 - x0) * scale) / 2;
  const oy = margin + (size - 1 - 2 * margin - (y1 - y0) * scale) / 2;
  const xy = new Int32Array(points * 2);
  for (let i = 0; i < points; i++) {
    xy[2 * i] = Math.round(ox + (xs[i] - x0) * scale);
    xy[2 * i + 1] = Math.round(oy + (ys[i] - y0) * scale);
  }
  return { xy, which };
}

/** Share of the pixels of a 64×64 rendering (20k points) the attractor covers; 0 for a degenerate system. */
export function fillingRate(maps: IfsMap[], seed: number): number {
  const size = 64;
  const g = chaosGame(maps, 20_000, size, seed);
  if (!g) return 0;
  const hit = new Uint8Array(size * size);
  let n = 0;
  for (let i = 0; i < g.xy.length; i += 2) {
    const k = g.xy[i + 1] * size + g.xy[i];
    if (!hit[k]) {
      hit[k] = 1;
      n++;
    }
  }
  return n / (size * size);
}

/** Draws `count` accepted categories from `seed` (deterministic; each category from its own stream). */
export function sampleCategories(count: number, seed: number, o: CategoryOptions = {}): FractalCategory[] {
  const maxMaps = Math.max(2, o.maxMaps ?? 4);
  const threshold = o.fillThreshold ?? 0.12;
  const maxTries = o.maxTries ?? 2000;
  const rnd = mulberry32(seed ^ 0x5eed1f5);
  const out: FractalCategory[] = [];
  for (let c = 0; c < count; c++) {
    let accepted: FractalCategory | undefined;
    for (let t = 0; t < maxTries && !accepted; t++) {
      const n = 2 + Math.floor(rnd() * (maxMaps - 1));
      const raw = Array.from({ length: n }, () => ({
        a: 2 * rnd() - 1,
        b: 2 * rnd() - 1,
        c: 2 * rnd() - 1,
        d: 2 * rnd() - 1,
        e: 2 * rnd() - 1,
        f: 2 * rnd() - 1,
      }));
      const maps = withProbabilities(raw);
      const fill = fillingRate(maps, seed + c);
      if (fill >= threshold) accepted = { maps, fill };
    }
    if (!accepted)
      throw new Error(
        `no IFS reached filling rate ${threshold} in ${maxTries} tries (category ${c}); lower fillThreshold`,
      );
    out.push(accepted);
  }
  return out;
}

/**
 * Renders instance `instance` of a category as a 3×size×size uint8 image (channel-major, black background).
 * Per-instance variation: one parameter of one map times w ∈ [0.8, 1.2], horizontal/vertical flips, a colour per map.
 */
export function renderInstance(cat: FractalCategory, instance: number, size: number, seed: number): Uint8Array {
  const rnd = mulberry32((seed * 0x9e3779b1 + instance * 0x85ebca6b) >>> 0);
  let maps = cat.maps.map((m) => ({ ...m }));
  if (instance > 0) {
    const j = Math.floor(rnd() * maps.length);
    const k = PARAMS[Math.floor(rnd() * PARAMS.length)];
    maps[j][k] *= 0.8 + 0.4 * rnd();
    maps = withProbabilities(maps);
  }
  const flipX = rnd() < 0.5;
  const flipY = rnd() < 0.5;
  const colours = maps.map(() => {
    // bright colours: one channel high, others random
    const c = [rnd(), rnd(), rnd()].map((v) => 64 + Math.floor(191 * v));
    c[Math.floor(rnd() * 3)] = 255;
    return c;
  });
  const points = Math.max(2000, Math.round(1.5 * size * size));
  // a varied system may diverge: fall back to the category's own maps (always accepted)
  const g =
    chaosGame(maps, points, size, (seed ^ (instance * 7919)) >>> 0) ?? chaosGame(cat.maps, points, size, seed >>> 0);
  const img = new Uint8Array(3 * size * size);
  if (!g) return img;
  const plane = size * size;
  for (let i = 0; i < points; i++) {
    let x = g.xy[2 * i];
    let y = g.xy[2 * i + 1];
    if (flipX) x = size - 1 - x;
    if (flipY) y = size - 1 - y;
    const col = colours[g.which[i]];
    const k = y * size + x;
    for (let ch = 0; ch < 3; ch++) if (img[ch * plane + k] < col[ch]) img[ch * plane + k] = col[ch];
  }
  return img;
}

/** The whole data set: `categories × instances` images (N×3×S×S uint8, category-major) and their labels. */
export function generateFractalDb(
  o: { categories: number; instances: number; size: number; seed: number } & CategoryOptions,
): {
  images: Uint8Array;
  labels: Int32Array;
  categories: FractalCategory[];
} {
  const cats = sampleCategories(o.categories, o.seed, o);
  const per = 3 * o.size * o.size;
  const images = new Uint8Array(o.categories * o.instances * per);
  const labels = new Int32Array(o.categories * o.instances);
  let k = 0;
  cats.forEach((cat, c) => {
    for (let i = 0; i < o.instances; i++) {
      images.set(renderInstance(cat, i, o.size, (o.seed * 1000003 + c) >>> 0), k * per);
      labels[k++] = c;
    }
  });
  return { images, labels, categories: cats };
}
