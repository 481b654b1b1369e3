/**
 * CellProfiler's image-quality measures of src/metrics/image-quality.ts as one ONNX graph, so that a cp-quality QC
 * model is a self-contained ONNX file like every other QC model (scoring a screen needs no qcbench code):
 *
 * ```
 * input N×C×S×S float32 (x/255, the cp-quality preprocessing)
 *   → u = Round(255·x), clipped to 0…255 → Gather from a 256-entry float64 table of fround(u/255)
 *     (exactly the Float32Array values src/metrics/image-quality.ts measures; everything after runs in float64)
 *   → per channel: FocusScore, LocalFocusScore, Correlation, PowerLogLogSlope, PercentMaximal, PercentMinimal,
 *     Total / Mean / Median / Std / MAD / Min / Max intensity
 *   → features N×(C·13) float32, channel-major, measures in IMAGE_QUALITY_MEASURES order
 * ```
 *
 * Standard operators only (onnxruntime-node loads no custom kernels): medians are TopK (k = ⌊n/2⌋ + 1, ascending)
 * and the mean of the two middle values; LocalFocusScore's tiles are a constant P×T pixel→tile matrix (MatMul), with
 * tiles whose mean is 0 left out of the median (sorted last as +∞) and the variance (masked); the co-occurrence
 * matrix is a MatMul of one-hot levels of each pixel and its neighbour `scale` columns right; the power spectrum is
 * the DFT restricted to the low frequencies the rings use, as MatMuls with constant cos/sin tables (angles reduced
 * mod S, so they are exact), summed into rings by a constant matrix; the slope is a masked least-squares fit. Every
 * "0 when undefined" rule of the TypeScript measures is a Where. The two agree to rounding (float64 sums in another
 * order); the test compares them crop by crop.
 */
import { fromArray, GraphBuilder } from '../engine/ir/builder.js';
import type { Graph } from '../engine/ir/graph.js';
import { IMAGE_QUALITY_MEASURES, RING_POWER_FLOOR } from '../metrics/image-quality.js';

const F64 = 'float64' as const;
/** Grey levels of the co-occurrence matrix (centrosome's Haralick default, as image-quality.ts). */
const LEVELS = 8;

/**
 * The measures graph: input `input` N×C×S×S float32 on the 0…1 scale → output `features` N×(C·13) float32.
 * @param size crop side S
 * @param scale spatial scale of LocalFocusScore (tile side) and Correlation (offset), pixels
 * @param channels C (3: the QC model feeds the encoder three channels, a grey store replicated)
 */
export function cpQualityGraph(size: number, scale: number, channels = 3): Graph {
  const S = size;
  const C = channels;
  const P = S * S;
  const b = new GraphBuilder('cp-quality');
  const c64 = (v: number) => b.scalar(v, F64);
  const t64 = (dims: number[], v: ArrayLike<number>, hint: string) => b.constant(fromArray(v, dims, F64), hint);
  const where = (cond: string, a: string, z: string) => b.op1('Where', [cond, a, z]);
  const gt = (a: string, z: string) => b.op1('Greater', [a, z]);
  const and = (a: string, z: string) => b.op1('And', [a, z]);
  const sum = (x: string, axes: number[], keep = true) => b.reduceSum(x, axes, keep);
  const toF64 = (x: string) => b.cast(x, F64);

  const input = b.input('input', 'float32', ['N', C, S, S]);
  // the store's byte values, then the exact float32 values the TypeScript measures see
  const u = b.op1('Round', [b.mul(input, b.scalar(255))]);
  const clipped = b.op1('Clip', [u, b.scalar(0), b.scalar(255)]);
  const lut = t64(
    [256],
    Array.from({ length: 256 }, (_, k) => Math.fround(k / 255)),
    'byte_to_unit',
  );
  const x4 = b.op1('Gather', [lut, b.cast(clipped, 'int64')], { axis: 0 }, 'img'); // N×C×S×S
  const x = b.reshape(x4, [-1, C, P]); // N×C×P

  const total = sum(x, [2]);
  const mean = b.div(total, c64(P));
  const dev = b.sub(x, mean);
  const ss = sum(b.mul(dev, dev), [2]);
  const lo = b.op1('ReduceMin', [x], { axes: [2], keepdims: 1 });
  const hi = b.reduceMax(x, [2]);
  const zero = c64(0);

  // --- FocusScore: Σ(x − μ)² / (P·μ), 0 when μ ≤ 0
  const focus = where(gt(mean, zero), b.div(ss, b.mul(c64(P), mean)), zero);

  // --- PercentMaximal / PercentMinimal
  const percentAt = (v: string) => b.mul(b.div(sum(toF64(b.op1('Equal', [x, v])), [2]), c64(P)), c64(100));
  const pctMax = percentAt(hi);
  const pctMin = percentAt(lo);

  // --- intensity
  const median = medianOf(b, x, P);
  const mad = medianOf(b, b.abs(b.sub(x, median)), P);
  const std = b.sqrt(b.div(ss, c64(P)));

  const local = localFocus(b, x, S, scale);
  const corr = correlation(b, x, lo, hi, C, S, scale);
  const slope = logLogSlope(b, dev, ss, lo, hi, C, S, P);

  const perMeasure: Record<(typeof IMAGE_QUALITY_MEASURES)[number], string> = {
    FocusScore: focus,
    LocalFocusScore: local,
    Correlation: corr,
    PowerLogLogSlope: slope,
    PercentMaximal: pctMax,
    PercentMinimal: pctMin,
    TotalIntensity: total,
    MeanIntensity: mean,
    MedianIntensity: median,
    StdIntensity: std,
    MADIntensity: mad,
    MinIntensity: lo,
    MaxIntensity: hi,
  };
  const all = b.concat(
    IMAGE_QUALITY_MEASURES.map((m) => perMeasure[m]),
    2,
  ); // N×C×13
  b.output(b.cast(b.reshape(all, [-1, C * IMAGE_QUALITY_MEASURES.length]), 'float32'), 'features');
  return b.build();

  // ---------------------------------------------------------------------------------------------------------
  /** LocalFocusScore (image-quality.ts `localFocusScore`): N×C×P → N×C×1. */
  function localFocus(g: GraphBuilder, xs: string, side: number, s: number): string {
    const tiles = Math.floor((side + s - 1) / s);
    const T = tiles * tiles;
    const tileOf = (i: number) => Math.floor((i * tiles) / side);
    const A = new Float64Array(P * T);
    const count = new Float64Array(T);
    for (let y = 0; y < side; y++)
      for (let c = 0; c < side; c++) {
        const t = tileOf(y) * tiles + tileOf(c);
        A[(y * side + c) * T + t] = 1;
        count[t]++;
      }
    const a = t64([P, T], A, 'tile_of_pixel');
    const at = t64([T, P], transpose(A, P, T), 'pixel_of_tile');
    const n = t64([T], count, 'tile_pixels');
    const tileMean = g.div(g.matMul(xs, a), n); // N×C×T
    const d = g.sub(xs, g.matMul(tileMean, at));
    const v = g.div(g.matMul(g.mul(d, d), a), g.mul(n, tileMean));
    const valid = g.op1('Not', [g.op1('Equal', [tileMean, zero])]);
    const nValid = sum(toF64(valid), [2]);
    const [sorted] = g.op(
      'TopK',
      [where(valid, v, c64(Number.POSITIVE_INFINITY)), g.ints([T])],
      {
        axis: 2,
        largest: 0,
        sorted: 1,
      },
      2,
    );
    const at_ = (k: string) => g.op1('GatherElements', [sorted, g.cast(g.op1('Max', [k, zero]), 'int64')], { axis: 2 });
    const half = (k: string) => g.op1('Floor', [g.div(k, c64(2))]);
    const med = g.div(g.add(at_(half(g.sub(nValid, c64(1)))), at_(half(nValid))), c64(2));
    const vz = where(valid, v, zero);
    const m = g.div(sum(vz, [2]), nValid);
    const dv = g.sub(vz, m);
    const varV = g.div(sum(where(valid, g.mul(dv, dv), zero), [2]), nValid);
    return where(and(gt(nValid, zero), gt(med, zero)), g.div(varV, med), zero);
  }

  /** Haralick correlation at offset (0, s) (image-quality.ts `haralickCorrelation`) → N×C×1. */
  function correlation(g: GraphBuilder, xs: string, mn: string, mx: string, ch: number, side: number, s: number) {
    if (s >= side) return g.mul(mn, zero); // no pixel pairs: 0
    const span = where(gt(mx, mn), g.sub(mx, mn), c64(1));
    const q = g.op1('Min', [g.op1('Floor', [g.mul(g.div(g.sub(xs, mn), span), c64(LEVELS))]), c64(LEVELS - 1)]);
    const levels = t64(
      [LEVELS],
      Array.from({ length: LEVELS }, (_, k) => k),
      'levels',
    );
    const oneHot = toF64(g.op1('Equal', [g.op1('Unsqueeze', [q, g.ints([3])]), levels])); // N×C×P×L
    const grid = g.reshape(oneHot, [-1, ch, side, side, LEVELS]);
    const w = side - s;
    const left = g.op1('Slice', [grid, g.ints([0]), g.ints([w]), g.ints([3])]);
    const right = g.op1('Slice', [grid, g.ints([s]), g.ints([side]), g.ints([3])]);
    const pairs = side * w;
    const l2 = g.transpose(g.reshape(left, [-1, ch, pairs, LEVELS]), [0, 1, 3, 2]);
    const p = g.div(g.matMul(l2, g.reshape(right, [-1, ch, pairs, LEVELS])), c64(pairs)); // N×C×L×L
    const ab = new Float64Array(LEVELS * LEVELS);
    for (let i = 0; i < LEVELS; i++) for (let j = 0; j < LEVELS; j++) ab[i * LEVELS + j] = (i + 1) * (j + 1);
    const sab = sum(g.mul(p, t64([LEVELS, LEVELS], ab, 'level_products')), [2, 3], false); // N×C
    const lv = t64(
      [LEVELS],
      Array.from({ length: LEVELS }, (_, k) => k + 1),
      'level_values',
    );
    const px = sum(p, [3], false); // N×C×L
    const py = sum(p, [2], false);
    const mux = sum(g.mul(px, lv), [2]); // N×C×1
    const muy = sum(g.mul(py, lv), [2]);
    const spread = (pm: string, mu: string) => {
      const d = g.sub(lv, mu);
      return sum(g.mul(g.mul(d, d), pm), [2]);
    };
    const vv = g.mul(spread(px, mux), spread(py, muy));
    // σx·σy is 0 exactly when a side has one level; tested on the level counts, not on vv, because onnxruntime
    // may fold the 1/pairs into the MatMul (p then sums to 1 ± 1 ulp and vv is rounding noise, not 0)
    const levelsUsed = (pm: string) => sum(toF64(gt(pm, zero)), [2]);
    const spreadOut = and(gt(levelsUsed(px), c64(1)), gt(levelsUsed(py), c64(1)));
    return where(
      spreadOut,
      g.div(g.sub(g.op1('Unsqueeze', [sab, g.ints([2])]), g.mul(mux, muy)), g.sqrt(where(spreadOut, vv, c64(1)))),
      zero,
    );
  }

  /** PowerLogLogSlope (image-quality.ts `powerLogLogSlope` / `radialPowerSpectrum`) → N×C×1. */
  function logLogSlope(
    g: GraphBuilder,
    d: string,
    ss0: string,
    mn: string,
    mx: string,
    ch: number,
    side: number,
    n: number,
  ): string {
    const top = Math.floor(side / 8) - 1;
    if (top < 2) return g.mul(mn, zero);
    const freqs: number[] = [];
    for (let i = 0; i < side; i++) if (Math.min(i, side - 1 - i) <= top - 1) freqs.push(i);
    const K = freqs.length;
    const cos = new Float64Array(K * side);
    const sin = new Float64Array(K * side);
    for (let k = 0; k < K; k++)
      for (let y = 0; y < side; y++) {
        const a = (2 * Math.PI * ((freqs[k] * y) % side)) / side;
        cos[k * side + y] = Math.cos(a);
        sin[k * side + y] = Math.sin(a);
      }
    const cr = t64([K, side], cos, 'dft_cos');
    const sr = t64([K, side], sin, 'dft_sin');
    const crT = t64([side, K], transpose(cos, K, side), 'dft_cos_t');
    const srT = t64([side, K], transpose(sin, K, side), 'dft_sin_t');
    const dImg = g.reshape(d, [-1, ch, side, side]);
    const ac = g.matMul(dImg, crT); // N×C×S×K: Σ_x d·cos
    const asn = g.matMul(dImg, srT);
    // F = Σ_y Σ_x d e^{−2πi(iy + jx)/S}: Re = Cr·Ac − Sr·As, −Im = Sr·Ac + Cr·As
    const re = g.sub(g.matMul(cr, ac), g.matMul(sr, asn));
    const im = g.add(g.matMul(sr, ac), g.matMul(cr, asn));
    const power = g.reshape(g.add(g.mul(re, re), g.mul(im, im)), [-1, ch, K * K]);
    const R = top - 1; // rings 2 … top
    const ring = new Float64Array(K * K * R);
    for (let a = 0; a < K; a++)
      for (let c = 0; c < K; c++) {
        const ri = Math.min(freqs[a], side - 1 - freqs[a]);
        const rj = Math.min(freqs[c], side - 1 - freqs[c]);
        const r = Math.floor(Math.sqrt(ri * ri + rj * rj)) + 1;
        if (r >= 2 && r <= top) ring[(a * K + c) * R + (r - 2)] = 1;
      }
    const rings = t64([K * K, R], ring, 'ring_of_frequency');
    const pw = g.matMul(power, rings); // N×C×R
    // a ring counts when its power is above the rounding noise of the transform (image-quality.ts RING_POWER_FLOOR)
    const floor = g.mul(g.mul(ss0, c64(n)), c64(RING_POWER_FLOOR));
    const used = gt(pw, floor);
    const wgt = toF64(used);
    const cnt = sum(wgt, [2]);
    const lx = t64(
      [R],
      Array.from({ length: R }, (_, k) => Math.log(k + 2)),
      'log_radius',
    );
    const ly = where(used, g.log(where(used, pw, c64(1))), zero);
    const mxs = g.div(sum(g.mul(wgt, lx), [2]), cnt);
    const mys = g.div(sum(ly, [2]), cnt);
    const dx = g.mul(wgt, g.sub(lx, mxs));
    const sxy = sum(g.mul(dx, g.sub(ly, mys)), [2]);
    const sxx = sum(g.mul(dx, dx), [2]);
    const madMean = medianOf(g, g.abs(d), n); // centrosome's divisor: slope 0 when it is 0
    const ok = [gt(mx, mn), gt(madMean, zero), gt(cnt, c64(1)), gt(sxx, zero)].reduce(and);
    return where(ok, g.div(sxy, where(gt(sxx, zero), sxx, c64(1))), zero);
  }
}

/** Median over the last axis of N×C×n (numpy's: the mean of the two middle values for an even n) → N×C×1. */
function medianOf(b: GraphBuilder, v: string, n: number): string {
  const half = n >> 1;
  const [sorted] = b.op('TopK', [v, b.ints([half + 1])], { axis: 2, largest: 0, sorted: 1 }, 2, 'sorted');
  const at = (k: number) => b.op1('Slice', [sorted, b.ints([k]), b.ints([k + 1]), b.ints([2])]);
  return n % 2 ? at(half) : b.div(b.add(at(half - 1), at(half)), b.scalar(2, F64));
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}
