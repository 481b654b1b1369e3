import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootstrapCI, meanSd, quantile } from '../../src/metrics/bootstrap.js';
import { mulberry32 } from '../../src/util/random.js';

test('mean ± sample sd and quantiles match hand-computed values', () => {
  const s = meanSd([1, 2, 3, 4]);
  assert.equal(s.n, 4);
  assert.equal(s.mean, 2.5);
  assert.ok(Math.abs(s.sd - Math.sqrt(5 / 3)) < 1e-12);
  assert.equal(s.min, 1);
  assert.equal(s.max, 4);
  const one = meanSd([97.5, Number.NaN]);
  assert.equal(one.n, 1);
  assert.equal(one.mean, 97.5);
  assert.ok(Number.isNaN(one.sd));
  assert.equal(meanSd([]).n, 0);
  assert.equal(quantile([1, 2, 3, 4], 0.25), 1.75); // numpy: np.quantile([1,2,3,4], .25) = 1.75
  assert.equal(quantile([4, 1, 3, 2], 0.5), 2.5);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

test('the seeded PRNG is reproducible and roughly uniform', () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  const xs = Array.from({ length: 20000 }, () => a());
  assert.deepEqual(
    xs.slice(0, 5),
    Array.from({ length: 5 }, () => b()),
  );
  const mean = xs.reduce((p, q) => p + q, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});

test('bootstrap interval of a mean covers it and shrinks like 1/sqrt(n)', () => {
  const rng = mulberry32(5);
  const width = (n: number) => {
    const x = Array.from({ length: n }, () => rng());
    const mean = (idx: Int32Array) => [Array.from(idx, (i) => x[i]).reduce((a, b) => a + b, 0) / n];
    const [[lo, hi]] = bootstrapCI(n, mean, { resamples: 500, seed: 1 });
    const m = x.reduce((a, b) => a + b, 0) / n;
    assert.ok(lo < m && m < hi);
    return hi - lo;
  };
  const w100 = width(100);
  const w1600 = width(1600);
  // uniform sd = 0.2887: 95% width ≈ 3.92·0.2887/√n → 0.113 and 0.028
  assert.ok(Math.abs(w100 - 0.113) < 0.03, `w100 ${w100}`);
  assert.ok(w100 / w1600 > 2.8 && w100 / w1600 < 5.5, `ratio ${w100 / w1600}`);
});

test('stratified resamples keep every stratum size', () => {
  const strata = [0, 0, 0, 1, 1, 2];
  const seen: number[][] = [];
  bootstrapCI(
    6,
    (idx) => {
      const counts = [0, 0, 0];
      for (const i of idx) counts[strata[i]]++;
      seen.push(counts);
      return [0];
    },
    { resamples: 50, strata },
  );
  assert.equal(seen.length, 50);
  for (const c of seen) assert.deepEqual(c, [3, 2, 1]);
});
