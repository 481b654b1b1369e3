/**
 * Concentric rings (Fan, Cong & Wang 2017 §III-B, Figs. 4–5): four concentric rings of 60 points each, assigned
 * alternately to two classes. The paper gives no radii; we use radii 0.1, 0.2, 0.3, 0.4 around (0.5, 0.5), the
 * same [0.1, 0.9]² frame as the two spirals, 60 points evenly spaced in angle with a per-ring random phase, and an
 * optional radial jitter. Labels: the innermost ring is class 1, then 0, 1, 0 going outwards.
 */
import { mulberry32 } from '../util/random.js';
import type { PlaneDataset } from './spirals.js';

export interface RingsOptions {
  rings?: number;
  pointsPerRing?: number;
  /** Radii, innermost first (default 0.1, 0.2, 0.3, 0.4 for four rings; evenly spaced to 0.4 otherwise). */
  radii?: number[];
  /** Standard deviation of a radial jitter (default 0: points exactly on the circles). */
  jitter?: number;
  /** Seed of the per-ring phases and the jitter (default 1). */
  seed?: number;
}

/** Four rings × 60 points (default), alternating classes. */
export function concentricRings(o: RingsOptions = {}): PlaneDataset {
  const R = o.rings ?? 4;
  const P = o.pointsPerRing ?? 60;
  const radii = o.radii ?? Array.from({ length: R }, (_, i) => (0.4 * (i + 1)) / R);
  const rnd = mulberry32(o.seed ?? 1);
  const N = R * P;
  const x = new Float64Array(2 * N);
  const y = new Float64Array(N);
  const stage = new Int32Array(N);
  for (let k = 0; k < R; k++) {
    const phase = rnd() * 2 * Math.PI;
    for (let p = 0; p < P; p++) {
      const i = k * P + p;
      const a = phase + (2 * Math.PI * p) / P;
      let r = radii[k];
      if (o.jitter) {
        const u = Math.max(rnd(), 1e-12);
        r += o.jitter * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
      }
      x[2 * i] = 0.5 + r * Math.cos(a);
      x[2 * i + 1] = 0.5 + r * Math.sin(a);
      y[i] = k % 2 === 0 ? 1 : 0;
      stage[i] = R - 1 - k; // outermost ring first in a curriculum
    }
  }
  return { name: 'rings', n: N, x, y, stage, domain: [0, 1, 0, 1] };
}
