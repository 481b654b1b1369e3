import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FieldSpec, RenderedField } from '../../../src/data/synth/index.js';
import { DOMAINS, renderField } from '../../../src/data/synth/index.js';

const base: FieldSpec = {
  profile: DOMAINS.u2os,
  width: 320,
  height: 256,
  seed: 11,
  densityMultiplier: 1,
  abnormalFraction: 0,
  cropSize: 128,
  fieldArtefact: 'none',
};

/** Mean squared difference of horizontal neighbours: high-frequency energy (focus measure). */
function sharpness(img: Uint16Array, w: number): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < img.length; i++) {
    if (i % w === w - 1) continue;
    s += (img[i + 1] - img[i]) ** 2;
    n++;
  }
  return s / n;
}

function percentile(img: Uint16Array, p: number): number {
  const s = Array.from(img).sort((a, b) => a - b);
  return s[Math.floor(p * (s.length - 1))];
}

function render(over: Partial<FieldSpec>): RenderedField {
  return renderField({ ...base, ...over });
}

test('a field is a pure function of its spec and seed', () => {
  const a = render({});
  const b = render({});
  assert.deepEqual(a.objects, b.objects);
  assert.deepEqual(a.channels[0], b.channels[0]);
  const c = render({ seed: 12 });
  assert.notDeepEqual(a.objects, c.objects);
});

test('clean field: no abnormal crops, nuclei of U2OS size, textured 12-bit channels', () => {
  const f = render({});
  assert.equal(f.channels.length, 5);
  assert.equal(f.fieldArtefact, null);
  assert.ok(f.objects.length >= 5);
  assert.ok(f.objects.every((o) => o.label === 'normal' && o.artefact === 'none' && o.kind === 'cell'));
  const meanArea = f.objects.reduce((s, o) => s + o.area, 0) / f.objects.length;
  // BBBC022 nuclei are about 36×24 px: area ≈ 680 px²
  assert.ok(meanArea > 400 && meanArea < 1000, `mean nucleus area ${meanArea}`);
  const bg = percentile(f.channels[0], 0.05);
  const fg = percentile(f.channels[0], 0.995);
  assert.ok(bg > 120 && bg < 260, `Hoechst background ${bg} (BBBC022: about 150–180)`);
  assert.ok(fg > 450 && fg < 2000, `Hoechst nuclei ${fg} (BBBC022: 500–1100)`);
});

test('mcf7 nuclei are smaller and rounder than u2os nuclei', () => {
  const u = render({ width: 512, height: 512 });
  const m = render({ profile: DOMAINS.mcf7, width: 512, height: 512 });
  const area = (f: RenderedField) => f.objects.reduce((s, o) => s + o.area, 0) / f.objects.length;
  assert.ok(area(m) < 0.7 * area(u), `mcf7 ${area(m)} vs u2os ${area(u)}`);
  assert.equal(m.channels.length, 3);
});

test('field-level artefacts: blur lowers sharpness, saturation clips, noise raises background variance, haze lifts background', () => {
  const clean = render({});
  const blur = render({ fieldArtefact: 'blur' });
  assert.equal(blur.fieldArtefact, 'blur');
  assert.deepEqual(
    blur.objects.map((o) => o.artefact),
    blur.objects.map(() => 'blur'),
  );
  assert.ok(sharpness(blur.channels[0], 320) < 0.6 * sharpness(clean.channels[0], 320));

  const sat = render({ fieldArtefact: 'saturation' });
  const clipped = sat.channels[0].filter((v) => v === 4095).length;
  assert.ok(clipped > 200, `saturated pixels: ${clipped}`);
  assert.equal(clean.channels[0].filter((v) => v === 4095).length, 0);

  const noise = render({ fieldArtefact: 'noise' });
  const bgSpread = (img: Uint16Array) => percentile(img, 0.3) - percentile(img, 0.01);
  assert.ok(bgSpread(noise.channels[0]) > 3 * bgSpread(clean.channels[0]));

  const haze = render({ fieldArtefact: 'haze' });
  assert.ok(percentile(haze.channels[0], 0.5) > percentile(clean.channels[0], 0.5) + 50);
});

test('cell-level artefacts: every type occurs, ground truth follows the target fraction', () => {
  const seen = new Set<string>();
  let abnormal = 0;
  let total = 0;
  for (let s = 0; s < 6; s++) {
    const f = render({ seed: 100 + s, abnormalFraction: 0.4, width: 512, height: 400 });
    for (const o of f.objects) {
      total++;
      if (o.label === 'abnormal') {
        abnormal++;
        seen.add(o.artefact);
      }
    }
  }
  for (const t of ['debris', 'dead', 'saturation', 'blur', 'haze']) assert.ok(seen.has(t), `no ${t} crops`);
  const frac = abnormal / total;
  assert.ok(frac > 0.2 && frac < 0.6, `abnormal fraction ${frac} for a 0.4 target`);
});
