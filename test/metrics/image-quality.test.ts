import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_QUALITY_SCALE,
  fftInPlace,
  focusScore,
  haralickCorrelation,
  IMAGE_QUALITY_MEASURES,
  imageQualityVector,
  intensityStats,
  localFocusScore,
  measureImageQuality,
  measureImageQualityChannels,
  powerLogLogSlope,
  RING_POWER_FLOOR,
  radialPowerSpectrum,
  saturation,
} from '../../src/metrics/image-quality.js';
import { mulberry32 } from '../../src/util/random.js';

const close = (a: number, b: number, tol = 1e-9, what = '') =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what} ${a} ≠ ${b}`);

/** An H×W image whose every row is `row`. */
function rows(row: number[], height: number): Float32Array {
  const w = row.length;
  const out = new Float32Array(height * w);
  for (let y = 0; y < height; y++) out.set(row, y * w);
  return out;
}

function checkerboard(h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = (x + y) % 2;
  return out;
}

function noise(h: number, w: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: h * w }, () => r());
}

/** 5×5 box blur with edge clamping. */
function boxBlur(img: Float32Array, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let dy = -2; dy <= 2; dy++)
        for (let dx = -2; dx <= 2; dx++) {
          const yy = Math.min(h - 1, Math.max(0, y + dy));
          const xx = Math.min(w - 1, Math.max(0, x + dx));
          s += img[yy * w + xx];
        }
      out[y * w + x] = s / 25;
    }
  return out;
}

test('a constant image: no variance, no texture, no spectrum; every pixel is both the max and the min', () => {
  const c = 0.3;
  const img = new Float32Array(32 * 48).fill(c);
  const q = measureImageQuality(img, 32, 48);
  const cf = Math.fround(c); // the pixels hold c as float32
  // Σ(x − μ)² = 0 everywhere, and in every tile (whose normalised variances are all 0: median 0 → score 0)
  assert.equal(q.FocusScore, 0);
  assert.equal(q.LocalFocusScore, 0);
  // one grey level: σx = σy = 0, the correlation 0/0 is not finite → 0; one grey value → slope 0 (CellProfiler)
  assert.equal(q.Correlation, 0);
  assert.equal(q.PowerLogLogSlope, 0);
  assert.equal(q.PercentMaximal, 100);
  assert.equal(q.PercentMinimal, 100);
  close(q.TotalIntensity, cf * 32 * 48);
  close(q.MeanIntensity, cf);
  assert.equal(q.MedianIntensity, cf);
  assert.equal(q.StdIntensity, 0);
  assert.equal(q.MADIntensity, 0);
  assert.equal(q.MinIntensity, cf);
  assert.equal(q.MaxIntensity, cf);
  // the record's keys are the measures, in order
  assert.deepEqual(Object.keys(q), [...IMAGE_QUALITY_MEASURES]);
});

test('a 1-pixel checkerboard: var/mean = 0.25/0.5, neighbours anti-correlated at odd offsets, correlated at even ones', () => {
  const H = 64;
  const W = 64;
  const img = checkerboard(H, W);
  const q = measureImageQuality(img, H, W);
  // half 0, half 1: μ = 0.5, population variance 0.25 → FocusScore = 0.25 / 0.5 = 0.5
  close(q.FocusScore, 0.5);
  // scale 20 → ⌈64/20⌉ = 4 tiles a side of 16×16 pixels, each a checkerboard with the same 0.5: variance 0 → 0
  close(q.LocalFocusScore, 0);
  // levels: 0 → 0, 1 → ⌊8·1⌋ clipped to 7. Offset 1: every pair is (0,7) or (7,0), half each → correlation −1;
  // offset 2 (and the default 20, even): every pair is (0,0) or (7,7) → +1
  close(haralickCorrelation(img, H, W, 1), -1);
  close(haralickCorrelation(img, H, W, 2), 1);
  close(q.Correlation, 1);
  // exactly half the pixels at the max (1) and half at the min (0)
  assert.equal(q.PercentMaximal, 50);
  assert.equal(q.PercentMinimal, 50);
  assert.equal(q.TotalIntensity, (H * W) / 2);
  assert.equal(q.MeanIntensity, 0.5);
  // even N: the two middle values are 0 and 1 → median 0.5; every |x − 0.5| = 0.5 → MAD 0.5; σ = 0.5
  assert.equal(q.MedianIntensity, 0.5);
  assert.equal(q.MADIntensity, 0.5);
  assert.equal(q.StdIntensity, 0.5);
  assert.equal(q.MinIntensity, 0);
  assert.equal(q.MaxIntensity, 1);
  // All of a checkerboard's power is at the Nyquist frequency, far outside the rings the slope uses (r ≤ 64/8 − 1):
  // the rings hold only rounding noise, below RING_POWER_FLOOR of the spectrum's N·Σ(x − μ)², so no ring counts and
  // the slope is 0 (a fit to the noise would be meaningless)
  const s = radialPowerSpectrum(img, H, W);
  assert.deepEqual(s.radii, [2, 3, 4, 5, 6, 7]);
  const energy = H * W * (H * W * 0.25);
  for (const p of s.power) assert.ok(p <= RING_POWER_FLOOR * energy, `ring power ${p}`);
  assert.equal(q.PowerLogLogSlope, 0);
});

test('a blurred edge: lower FocusScore than the sharp edge, higher Correlation; LocalFocusScore by hand', () => {
  // 16 rows of 8 columns; the sharp edge steps 0 → 1, the blurred one ramps 0, 0.25, 0.75, 1 across it
  const sharp = rows([0, 0, 0, 0, 1, 1, 1, 1], 16);
  const blur = rows([0, 0, 0, 0.25, 0.75, 1, 1, 1], 16);
  // sharp: μ = 0.5, var = 0.25 → 0.5. blurred: μ = 4/8 = 0.5; Σ(x − μ)² per row = 6·0.25 + 2·0.0625 = 1.625,
  // var = 1.625/8 = 0.203125 → FocusScore = 0.203125 / 0.5 = 0.40625
  close(focusScore(sharp), 0.5);
  close(focusScore(blur), 0.40625);
  // Correlation at offset 1, per row 7 pairs of levels + 1 (0 → 1, 0.25 → 3, 0.75 → 7, 1 → 8):
  // sharp (1,1)×3 (1,8) (8,8)×3: μa = 4, μb = 5, E[ab] = 203/7 = 29 → cov 9; var a = 28 − 16 = 12, var b = 37 − 25
  // = 12 → 9/12 = 0.75.
  // blurred (1,1)(1,1)(1,3)(3,7)(7,8)(8,8)(8,8): μa = 29/7, μb = 36/7, E[ab] = 210/7 = 30 → cov = 426/49;
  // var a = 189/7 − 841/49 = 482/49, var b = 252/7 − 1296/49 = 468/49 → 426 / √(482·468) ≈ 0.897
  close(haralickCorrelation(sharp, 16, 8, 1), 0.75);
  close(haralickCorrelation(blur, 16, 8, 1), 426 / Math.sqrt(482 * 468));
  // LocalFocusScore at scale 4: ⌈16/4⌉ × ⌈8/4⌉ = 4 × 2 tiles of 4×4. Left tiles hold rows [0 0 0 .25]: μ = 1/16,
  // var = (3·(1/16)² + (3/16)²)/4 = 3/256 → v = (3/256)/(1/16) = 0.1875; right tiles rows [.75 1 1 1]: μ = 15/16,
  // var = 3/256 → v = 0.0125. v = four 0.1875 and four 0.0125: median 0.1, mean 0.1, variance 0.0875² →
  // LocalFocusScore = 0.0875² / 0.1 = 0.0765625
  close(localFocusScore(blur, 16, 8, 4), 0.0765625);
  // the sharp edge at the tile boundary: left tiles have mean 0 (left out), right tiles are flat (v = 0) → 0
  assert.equal(localFocusScore(sharp, 16, 8, 4), 0);
  const st = intensityStats(blur);
  // sorted row: 0 0 0 .25 .75 1 1 1 → median (0.25 + 0.75)/2 = 0.5; |x − 0.5| = .5 .5 .5 .25 .25 .5 .5 .5 → MAD 0.5
  close(st.MedianIntensity, 0.5);
  close(st.MADIntensity, 0.5);
  close(st.StdIntensity, Math.sqrt(0.203125));
  close(st.TotalIntensity, 4 * 16);
  // an 8-pixel-wide image has no ring (rings stop at min(H, W)/8 − 1 < 2): slope 0, as CellProfiler
  assert.deepEqual(radialPowerSpectrum(blur, 16, 8).radii, []);
  assert.equal(powerLogLogSlope(blur, 16, 8), 0);
});

test('a saturated patch: PercentMaximal is the patch, PercentMinimal the background, median and MAD ignore it', () => {
  const H = 64;
  const W = 64;
  const img = new Float32Array(H * W).fill(0.25);
  for (let y = 10; y < 18; y++) for (let x = 30; x < 38; x++) img[y * W + x] = 1;
  const q = measureImageQuality(img, H, W);
  // 8×8 = 64 of 4096 pixels at the max: 100·64/4096 = 1.5625 %; the other 4032 at the min: 98.4375 %
  assert.equal(q.PercentMaximal, 1.5625);
  assert.equal(q.PercentMinimal, 98.4375);
  // p = 1/64 of the pixels are 0.75 above the background: μ = 0.25 + 0.75/64, var = p(1 − p)·0.75²
  const p = 1 / 64;
  const mu = 0.25 + 0.75 * p;
  close(q.MeanIntensity, mu);
  close(q.StdIntensity, Math.sqrt(p * (1 - p)) * 0.75);
  close(q.FocusScore, (p * (1 - p) * 0.5625) / mu);
  assert.equal(q.MedianIntensity, 0.25);
  assert.equal(q.MADIntensity, 0);
  assert.equal(q.MinIntensity, 0.25);
  assert.equal(q.MaxIntensity, 1);
  close(q.TotalIntensity, 4032 * 0.25 + 64);
  // tiles of 16×16: the patch spans tiles (0,1) and (0,2) with 32 patch pixels each; the other 14 tiles are flat.
  // In a patch tile μ = 0.25 + 0.75/8, var = (1/8)(7/8)·0.5625 → v; the median of 14 zeros and 2 v's is 0 → 0
  assert.equal(q.LocalFocusScore, 0);
  // the saturation helper alone gives the same
  assert.deepEqual(saturation(img), { PercentMaximal: 1.5625, PercentMinimal: 98.4375 });
});

test('invariances: FocusScore scales with intensity (degree 1, not invariant); Correlation and slope do not change', () => {
  const H = 48;
  const W = 64;
  // multiples of 1/1024 so that x/2 + 1/4 is exact in float32
  const r = mulberry32(3);
  const img = boxBlur(
    Float32Array.from({ length: H * W }, () => Math.floor(r() * 1024) / 1024),
    H,
    W,
  ).map((v) => Math.round(v * 1024) / 1024);
  const half = img.map((v) => v / 2);
  const shifted = img.map((v) => v / 2 + 0.25);
  const a = measureImageQuality(img, H, W);
  const b = measureImageQuality(half, H, W);
  const c = measureImageQuality(shifted, H, W);
  // var(a·x)/mean(a·x) = a·var/mean: CellProfiler's FocusScore is meant for one field through focus, not across
  // exposures; the tiles' normalised variances scale alike, and var/median of them scales by a again
  close(b.FocusScore, a.FocusScore / 2, 1e-6);
  close(b.LocalFocusScore, a.LocalFocusScore / 2, 1e-6);
  // Correlation stretches the image to its own [min, max] first: invariant to any a·x + b, a > 0
  close(b.Correlation, a.Correlation, 1e-12);
  close(c.Correlation, a.Correlation, 1e-12);
  // the slope: the mean is removed and a gain only moves the line's intercept
  close(b.PowerLogLogSlope, a.PowerLogLogSlope, 1e-9);
  close(c.PowerLogLogSlope, a.PowerLogLogSlope, 1e-9);
  // saturation percentages count pixels: invariant too
  assert.equal(c.PercentMaximal, a.PercentMaximal);
  assert.equal(c.PercentMinimal, a.PercentMinimal);
  // transposing the image changes none of the global measures nor the slope (the rings are symmetric in i and j)
  const t = new Float32Array(H * W);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) t[x * H + y] = img[y * W + x];
  const at = measureImageQuality(t, W, H);
  close(at.FocusScore, a.FocusScore, 1e-9);
  close(at.PowerLogLogSlope, a.PowerLogLogSlope, 1e-9);
  close(at.MedianIntensity, a.MedianIntensity, 0);
});

test('blur lowers FocusScore and steepens the power spectrum of the same field', () => {
  const H = 96;
  const W = 128;
  const img = noise(H, W, 11);
  const blurred = boxBlur(boxBlur(boxBlur(img, H, W), H, W), H, W); // ≈ a Gaussian of σ ≈ 2.4 px
  const a = measureImageQuality(img, H, W);
  const b = measureImageQuality(blurred, H, W);
  assert.ok(b.FocusScore < a.FocusScore / 5, `${b.FocusScore} vs ${a.FocusScore}`);
  // white noise has a flat spectrum: ring sums grow like the ring's circumference (slope ≈ 1); blur damps the
  // higher of the rings used (up to 96/8 − 1 = 11 cycles per field) more than the lower
  assert.ok(a.PowerLogLogSlope > 0.5 && a.PowerLogLogSlope < 1.5, `noise slope ${a.PowerLogLogSlope}`);
  assert.ok(b.PowerLogLogSlope < a.PowerLogLogSlope - 1, `blurred slope ${b.PowerLogLogSlope}`);
  // neighbours of a blurred field are alike (at the default offset of 20 px both are near 0)
  assert.ok(haralickCorrelation(blurred, H, W, 1) > haralickCorrelation(img, H, W, 1) + 0.5);
});

test('PowerLogLogSlope of a synthetic 1/f^a image matches the slope of its known ring powers', () => {
  // A sum of cosines with amplitude |k|^(−a/2) at every frequency k = (u, v), |u|, |v| ≤ 12, random phases: its DFT
  // is A·HW/2·e^{±iφ} at ±k and 0 elsewhere, so the ring sums CellProfiler takes are known without an FFT.
  const H = 64;
  const W = 64;
  const slopes: number[] = [];
  for (const alpha of [1, 2, 3]) {
    const r = mulberry32(100 + alpha);
    const img = new Float64Array(H * W);
    const ring = new Map<number, number>();
    const ringOf = (i: number, j: number) => {
      const ri = Math.min(i, H - 1 - i);
      const rj = Math.min(j, W - 1 - j);
      return Math.floor(Math.sqrt(ri * ri + rj * rj)) + 1;
    };
    for (let u = -12; u <= 12; u++)
      for (let v = 0; v <= 12; v++) {
        if (v === 0 && u <= 0) continue; // one of each ± pair, no DC
        const amp = (u * u + v * v) ** (-alpha / 4);
        const phi = 2 * Math.PI * r();
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) img[y * W + x] += amp * Math.cos(2 * Math.PI * ((u * y) / H + (v * x) / W) + phi);
        const power = ((amp * H * W) / 2) ** 2;
        for (const [i, j] of [
          [(u + H) % H, v],
          [(H - u) % H, (W - v) % W],
        ]) {
          const k = ringOf(i, j);
          ring.set(k, (ring.get(k) ?? 0) + power);
        }
      }
    // to [0, 1], as images are (the slope ignores gain and offset)
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const x of img) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    const gain = 1 / (hi - lo);
    const f32 = Float32Array.from(img, (x) => (x - lo) * gain);
    // least squares over rings 2 … 64/8 − 1 = 7 of log(ring power) on log(ring)
    const xs: number[] = [];
    const ys: number[] = [];
    for (let k = 2; k <= 7; k++) {
      xs.push(Math.log(k));
      ys.push(Math.log((ring.get(k) ?? 0) * gain * gain));
    }
    const mx = xs.reduce((s, x) => s + x, 0) / xs.length;
    const my = ys.reduce((s, y) => s + y, 0) / ys.length;
    let sxy = 0;
    let sxx = 0;
    xs.forEach((x, i) => {
      sxy += (x - mx) * (ys[i] - my);
      sxx += (x - mx) ** 2;
    });
    const expected = sxy / sxx;
    const got = powerLogLogSlope(f32, H, W);
    // float32 pixels: agreement to a few parts in 10⁴
    close(got, expected, 2e-3, `alpha ${alpha}`);
    slopes.push(got);
  }
  // and the meaning: ring sums of a 1/f^a power grow like r·r^(−a), so the slope is about 1 − a — about, because a
  // ring's label ⌊r⌋ + 1 is above its mean radius and there are only six rings: each step of a lowers it by about 1
  assert.ok(Math.abs(slopes[0]) < 0.6, `alpha 1: slope ${slopes[0]}`);
  for (let i = 1; i < slopes.length; i++) {
    const step = slopes[i] - slopes[i - 1];
    assert.ok(step < -0.6 && step > -1.4, `slopes ${slopes}`);
  }
});

test('the measures of one image equal CellProfiler 4’s code re-run offline in numpy / scipy', () => {
  // CellProfiler's measureimagequality.py with centrosome's rps and Haralick, run offline in numpy 2.4 / scipy 1.17
  // on this seeded 40×52 image at scale 10 (never run by the test: the values are pasted here)
  const H = 40;
  const W = 52;
  const r = mulberry32(2026);
  const img = new Float32Array(H * W);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      img[y * W + x] = 0.2 + 0.5 * Math.exp(-((x - 20) ** 2 + (y - 18) ** 2) / 120) + 0.1 * r();
  const q = measureImageQuality(img, H, W, { scale: 10 });
  const cp = {
    FocusScore: 0.04574550901035638,
    LocalFocusScore: 0.004885226233778412,
    Correlation: 0.4053611882745846,
    PowerLogLogSlope: -8.536878856050578,
    PercentMaximal: 0.04807692307692308,
    PercentMinimal: 0.04807692307692308,
    TotalIntensity: 705.0794130563736,
    MeanIntensity: 0.33898048704633343,
    MedianIntensity: 0.29377011954784393,
    StdIntensity: 0.1245264426718801,
    MADIntensity: 0.0509299710392952,
    MinIntensity: 0.20052115619182587,
    MaxIntensity: 0.7877028584480286,
  };
  for (const k of IMAGE_QUALITY_MEASURES) close(q[k], cp[k], 1e-6, k);
});

test('the FFT is the DFT for any length (radix 2 and Bluestein)', () => {
  const r = mulberry32(5);
  // radix 2 (8, 64), mixed radix 2·3, 4·25, 2·5·13, a prime radix (37), Bluestein for a prime above 64 (97)
  for (const n of [1, 2, 3, 5, 8, 12, 37, 64, 97, 100, 130]) {
    const xr = Float64Array.from({ length: n }, () => r() - 0.5);
    const xi = Float64Array.from({ length: n }, () => r() - 0.5);
    const re = xr.slice();
    const im = xi.slice();
    fftInPlace(re, im);
    for (let k = 0; k < n; k++) {
      let sr = 0;
      let si = 0;
      for (let j = 0; j < n; j++) {
        const a = (-2 * Math.PI * ((j * k) % n)) / n;
        sr += xr[j] * Math.cos(a) - xi[j] * Math.sin(a);
        si += xr[j] * Math.sin(a) + xi[j] * Math.cos(a);
      }
      close(re[k], sr, 1e-9, `n=${n} re[${k}]`);
      close(im[k], si, 1e-9, `n=${n} im[${k}]`);
    }
  }
});

test('C×H×W: one record per channel, the same as each channel alone; the vector is channel-major in measure order', () => {
  const H = 40;
  const W = 30;
  const chans = [noise(H, W, 1), checkerboard(H, W), new Float32Array(H * W).fill(0.5)];
  const img = new Float32Array(3 * H * W);
  chans.forEach((c, i) => {
    img.set(c, i * H * W);
  });
  const recs = measureImageQualityChannels(img, 3, H, W, { scale: 8 });
  assert.equal(recs.length, 3);
  recs.forEach((rec, i) => {
    assert.deepEqual(rec, measureImageQuality(chans[i], H, W, { scale: 8 }));
  });
  const M = IMAGE_QUALITY_MEASURES.length;
  const out = new Float32Array(1 + 3 * M);
  imageQualityVector(img, 3, H, W, out, 1, { scale: 8 });
  assert.equal(out[0], 0);
  assert.equal(out[1 + M + IMAGE_QUALITY_MEASURES.indexOf('PercentMaximal')], 50);
  assert.equal(out[1 + 2 * M + IMAGE_QUALITY_MEASURES.indexOf('MeanIntensity')], 0.5);
  assert.equal(DEFAULT_QUALITY_SCALE, 20);
});

test('bad shapes and scales are coded errors', () => {
  assert.throws(
    () => measureImageQuality(new Float32Array(10), 3, 4),
    (e: Error & { code?: string }) => e.code === 'QCB_IMAGE_SIZE',
  );
  assert.throws(
    () => measureImageQualityChannels(new Float32Array(24), 3, 3, 4),
    (e: Error & { code?: string }) => e.code === 'QCB_IMAGE_SIZE',
  );
  assert.throws(
    () => measureImageQuality(new Float32Array(12), 3, 4, { scale: 0 }),
    (e: Error & { code?: string }) => e.code === 'QCB_USAGE',
  );
});
