/**
 * Small sets of real generated crops for the SSL tests: u2os fields from the synthetic screen generator
 * (src/data/synth), 128×128 crops around each object (the paper's crop), reduced 4× to 32×32 by block
 * averaging, channels Hoechst/Ph_golgi/Mito as 8-bit (12-bit DN >> 4), with the generator's normal/abnormal label.
 */
import { DOMAINS, renderField } from '../../src/data/synth/index.js';

export interface TestCrops {
  data: Uint8Array;
  n: number;
  channels: number;
  size: number;
  labels: string[];
}

export function makeCrops(fields: number, seed = 1, size = 32): TestCrops {
  const profile = DOMAINS.u2os;
  const names = profile.channels.map((c) => c.name);
  const pick = ['Hoechst', 'Ph_golgi', 'Mito'].map((c) => names.indexOf(c)).map((i, k) => (i >= 0 ? i : k));
  const big = 128;
  const f = big / size;
  const chunks: Uint8Array[] = [];
  const labels: string[] = [];
  for (let fi = 0; fi < fields; fi++) {
    const W = 348;
    const H = 260;
    const field = renderField({
      profile,
      width: W,
      height: H,
      seed: seed * 1000 + fi,
      densityMultiplier: 1.5,
      abnormalFraction: 0.4,
      cropSize: big,
    });
    for (const o of field.objects) {
      const crop = new Uint8Array(3 * size * size);
      pick.forEach((ch, c) => {
        const img = field.channels[ch];
        for (let y = 0; y < size; y++)
          for (let x = 0; x < size; x++) {
            let s = 0;
            for (let dy = 0; dy < f; dy++)
              for (let dx = 0; dx < f; dx++) {
                const sx = Math.min(W - 1, Math.max(0, o.x - big / 2 + x * f + dx));
                const sy = Math.min(H - 1, Math.max(0, o.y - big / 2 + y * f + dy));
                s += img[sy * W + sx] >> profile.bitShift;
              }
            crop[(c * size + y) * size + x] = Math.min(255, Math.round(s / (f * f) / 16));
          }
      });
      chunks.push(crop);
      labels.push(o.label);
    }
  }
  const data = new Uint8Array(chunks.length * 3 * size * size);
  chunks.forEach((c, i) => {
    data.set(c, i * c.length);
  });
  return { data, n: chunks.length, channels: 3, size, labels };
}
