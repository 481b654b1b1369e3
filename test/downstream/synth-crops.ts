/**
 * Test helper: real crops from the synthetic screen generator (src/data/synth), cut around the generated nuclei
 * centres and empty positions, as an RGB composite (Ph_golgi → R, Mito → G, Hoechst → B, paper Fig. 1), 12-bit values
 * scaled to 8 bits. Labels are the generator's ground truth (normal / abnormal).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DOMAINS, renderField } from '../../src/data/synth/index.js';
import { writeFileAtomic } from '../../src/util/fs.js';
import type { CropSet } from '../../src/encoders/features.js';

export interface LabelledCrops {
  crops: CropSet;
  labels: string[];
  types: string[];
}

/**
 * Up to `n` crops of side `size`, balanced between normal and abnormal, from fields rendered with `seed`. Rendering
 * takes seconds (320 crops: ~4 s) and several test files ask for the same crops, so they are cached in the temp dir
 * under a key of the arguments and the generator's source (a changed generator never serves old crops).
 */
export function synthCrops(n: number, size: number, seed: number): LabelledCrops {
  const file = join(tmpdir(), `qcbench-synth-crops-${n}-${size}-${seed}-${generatorHash()}.json`);
  if (existsSync(file)) {
    try {
      const j = JSON.parse(readFileSync(file, 'utf8'));
      return { ...j, crops: { ...j.crops, data: Uint8Array.from(Buffer.from(j.crops.data, 'base64')) } };
    } catch {
      // a foreign or damaged file (a partial one cannot exist: the write is atomic): render again
    }
  }
  const c = renderCrops(n, size, seed);
  writeFileAtomic(
    file,
    JSON.stringify({ ...c, crops: { ...c.crops, data: Buffer.from(c.crops.data).toString('base64') } }),
  );
  return c;
}

let hashOfGenerator: string | undefined;

/** A hash of the synthetic generator's source files (src/data/synth/). */
function generatorHash(): string {
  if (!hashOfGenerator) {
    const dir = fileURLToPath(new URL('../../src/data/synth/', import.meta.url));
    const h = createHash('sha256');
    for (const f of readdirSync(dir).sort()) h.update(f).update(readFileSync(join(dir, f)));
    hashOfGenerator = h.digest('hex').slice(0, 16);
  }
  return hashOfGenerator;
}

function renderCrops(n: number, size: number, seed: number): LabelledCrops {
  const profile = DOMAINS.u2os;
  const order = ['Ph_golgi', 'Mito', 'Hoechst'].map((name) => profile.channels.findIndex((c) => c.name === name));
  const perClass = Math.ceil(n / 2);
  const got: Record<string, { data: Uint8Array; type: string }[]> = { normal: [], abnormal: [] };
  const W = 320;
  const H = 256;
  for (let f = 0; f < 60 && (got.normal.length < perClass || got.abnormal.length < perClass); f++) {
    const field = renderField({
      profile,
      width: W,
      height: H,
      seed: seed * 1000 + f,
      densityMultiplier: 1,
      abnormalFraction: 0.6,
      cropSize: size,
    });
    for (const o of field.objects) {
      const x0 = o.x - size / 2;
      const y0 = o.y - size / 2;
      if (x0 < 0 || y0 < 0 || x0 + size > W || y0 + size > H) continue;
      if (got[o.label].length >= perClass) continue;
      const d = new Uint8Array(3 * size * size);
      order.forEach((ch, c) => {
        const img = field.channels[ch];
        for (let y = 0; y < size; y++)
          for (let x = 0; x < size; x++)
            d[c * size * size + y * size + x] = Math.min(255, img[(y0 + y) * W + x0 + x] >> (4 + profile.bitShift));
      });
      got[o.label].push({ data: d, type: o.artefact });
    }
  }
  const items: { data: Uint8Array; type: string; label: string }[] = [];
  for (let i = 0; i < perClass; i++)
    for (const l of ['normal', 'abnormal']) if (got[l][i]) items.push({ ...got[l][i], label: l });
  const take = items.slice(0, n);
  const data = new Uint8Array(take.length * 3 * size * size);
  take.forEach((t, i) => {
    data.set(t.data, i * 3 * size * size);
  });
  return {
    crops: { data, n: take.length, channels: 3, size },
    labels: take.map((t) => t.label),
    types: take.map((t) => t.type),
  };
}
