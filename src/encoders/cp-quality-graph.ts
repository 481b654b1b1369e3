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
 * Standard operators only (onnxruntime-node loads no custom kernels): a crop holds at most 256 values, so the medians
 * are ranks in each channel's byte histogram (ScatterElements with reduction add; cumulative counts by a MatMul with a
 * triangular matrix; numpy's mean of the two middle values), and the MAD and centrosome's median |x − μ| weight the 256
 * levels' deviations, sorted, by their counts; LocalFocusScore's tile sums are R·X·Rᵀ with a constant tiles×S
 * membership matrix R, tiles whose mean is 0 left out of the median (sorted last as +∞) and the variance (masked); the
 * co-occurrence matrix counts the codes 8·level(pixel) + level(pixel `scale` columns right) into 64 bins (ScatterElements
 * again); the power
 * spectrum is the DFT restricted to the low frequencies the rings use, as MatMuls with constant cos/sin tables (angles
 * reduced mod S, so they are exact), summed into rings by a constant matrix; the slope is a masked least-squares fit. Every
 * "0 when undefined" rule of the TypeScript measures is a Where. The two agree to rounding (float64 sums in another
 * order); the test compares them crop by crop.
 */
import { fromArray, GraphBuilder } from '../engine/ir/builder.js';
import type { Graph } from '../engine/ir/graph.js';
import { IMAGE_QUALITY_MEASURES, RING_POWER_FLOOR } from '../metrics/image-quality.js';

const F64 = 'float64' as const;
/** Grey levels of the co-occurrence matrix (centrosome's Haralick default, as image-quality.ts). */
const LEVELS = 8;
/** Byte levels of a crop (its histogram's bins). */
const LUT_SIZE = 256;

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
  const bytes4 = b.cast(clipped, 'int64');
  const x4 = b.op1('Gather', [lut, bytes4], { axis: 0 }, 'img'); // N×C×S×S
  const x = b.reshape(x4, [-1, C, P]); // N×C×P
  // each channel's histogram of its 256 byte values (N×C×256): the medians below are ranks in it, O(P + 256²)
  // instead of a partial sort of P values
  const bytes = b.reshape(bytes4, [-1, C, P]);
  const hist = b.op1(
    'ScatterElements',
    [
      b.mul(b.reduceMax(x, [2]), t64([LUT_SIZE], new Float64Array(LUT_SIZE), 'zeros_256')),
      bytes,
      b.add(b.mul(x, c64(0)), c64(1)),
    ],
    { axis: 2, reduction: 'add' },
    'histogram',
  );
  const upper = new Float64Array(LUT_SIZE * LUT_SIZE);
  for (let j = 0; j < LUT_SIZE; j++) for (let k = j; k < LUT_SIZE; k++) upper[j * LUT_SIZE + k] = 1;
  const cumulative = t64([LUT_SIZE, LUT_SIZE], upper, 'cumulative_256');
  /** How many of the sorted levels hold at most r values (= the level of the r-th smallest value, 0-based). */
  const levelOfRank = (counts: string, r: number) =>
    b.cast(sum(b.cast(b.op1('LessOrEqual', [b.matMul(counts, cumulative), c64(r)]), F64), [2]), 'int64');
  const r1 = (P - 1) >> 1;
  const r2 = P >> 1;
  /** The median of the values vals (N×C×256, one per byte level, any order) weighted by the histogram. */
  const weightedMedian = (vals: string) => {
    const [sorted, order] = b.op(
      'TopK',
      [vals, b.ints([LUT_SIZE])],
      { axis: 2, largest: 0, sorted: 1 },
      2,
      'levels_sorted',
    );
    const counts = b.op1('GatherElements', [hist, order], { axis: 2 });
    const at = (r: number) => b.op1('GatherElements', [sorted, levelOfRank(counts, r)], { axis: 2 });
    return r1 === r2 ? at(r1) : b.div(b.add(at(r1), at(r2)), c64(2));
  };
  const lutRow = b.reshape(lut, [1, 1, LUT_SIZE]);

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
  // (the histogram's count at the highest and the lowest byte present)
  const percentAt = (byte: string) =>
    b.mul(b.div(b.op1('GatherElements', [hist, byte], { axis: 2 }), c64(P)), c64(100));
  const pctMax = percentAt(b.reduceMax(bytes, [2]));
  const pctMin = percentAt(b.op1('ReduceMin', [bytes], { axes: [2], keepdims: 1 }));

  // --- intensity: the median is the value at the middle rank(s) of the histogram (levels ascend with the bytes); the
  // MAD weights each level's |value − median| by its count
  const valueAt = (r: number) => b.op1('Gather', [lut, levelOfRank(hist, r)], { axis: 0 });
  const median = r1 === r2 ? valueAt(r1) : b.div(b.add(valueAt(r1), valueAt(r2)), c64(2));
  const mad = weightedMedian(b.abs(b.sub(lutRow, median)));
  const std = b.sqrt(b.div(ss, c64(P)));

  const local = localFocus(b, x4, S, scale);
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
  function localFocus(g: GraphBuilder, img: string, side: number, s: number): string {
    const tiles = Math.floor((side + s - 1) / s);
    const T = tiles * tiles;
    // R (tiles×S): R[t][i] = 1 when pixel row (or column) i lies in tile row (column) t, ⌊i·tiles/S⌋ = t; the tile
    // sums of an S×S image X are R·X·Rᵀ, and R ᵀ·M·R spreads tile values back over their pixels
    const R = new Float64Array(tiles * side);
    const per = new Float64Array(tiles);
    for (let i = 0; i < side; i++) {
      const t = Math.floor((i * tiles) / side);
      R[t * side + i] = 1;
      per[t]++;
    }
    const r = t64([tiles, side], R, 'tile_rows');
    const rt = t64([side, tiles], transpose(R, tiles, side), 'tile_rows_t');
    const cnt = new Float64Array(T);
    for (let a = 0; a < tiles; a++) for (let c = 0; c < tiles; c++) cnt[a * tiles + c] = per[a] * per[c];
    const n = t64([tiles, tiles], cnt, 'tile_pixels');
    const tileSum = (m: string) => g.matMul(g.matMul(r, m), rt); // N×C×tiles×tiles
    const tileMean4 = g.div(tileSum(img), n);
    const d = g.sub(img, g.matMul(g.matMul(rt, tileMean4), r));
    const v = g.reshape(g.div(tileSum(g.mul(d, d)), g.mul(n, tileMean4)), [-1, C, T]);
    const tileMean = g.reshape(tileMean4, [-1, C, T]);
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
    const grid = g.reshape(q, [-1, ch, side, side]);
    const w = side - s;
    const pairs = side * w;
    // each pair (left pixel in columns 0 … S−s−1, right pixel s columns on) as one code L·left + right, counted into
    // L² bins: the co-occurrence matrix in one pass, with no one-hot
    const cols = (from: number, to: number) => g.op1('Slice', [grid, g.ints([from]), g.ints([to]), g.ints([3])]);
    const code = g.add(g.mul(cols(0, w), c64(LEVELS)), cols(s, side));
    const codes = g.reshape(g.cast(code, 'int64'), [-1, ch, pairs]);
    const bins = g.mul(g.reduceMax(xs, [2]), t64([LEVELS * LEVELS], new Float64Array(LEVELS * LEVELS), 'zeros_pairs'));
    const ones = g.add(g.mul(g.reshape(cols(0, w), [-1, ch, pairs]), c64(0)), c64(1));
    const counts = g.reshape(
      g.op1('ScatterElements', [bins, codes, ones], { axis: 2, reduction: 'add' }, 'cooccurrence'),
      [-1, ch, LEVELS, LEVELS],
    ); // N×C×L×L
    const p = g.div(counts, c64(pairs));
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
    const madMean = weightedMedian(g.abs(g.sub(lutRow, mean))); // centrosome's divisor: slope 0 when it is 0
    const ok = [gt(mx, mn), gt(madMean, zero), gt(cnt, c64(1)), gt(sxx, zero)].reduce(and);
    return where(ok, g.div(sxy, where(gt(sxx, zero), sxx, c64(1))), zero);
  }
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}
