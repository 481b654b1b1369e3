import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readImage } from '../../../src/data/io/image.js';
import { readCellProfilerCentres } from '../../../src/data/nuclei/cellprofiler.js';
import { connectedComponents, distanceTransform, segmentNuclei, select } from '../../../src/data/nuclei/segment.js';
import type { Field, ImageData } from '../../../src/data/types.js';
import { QcbError } from '../../../src/errors.js';

const FIX = fileURLToPath(new URL('../../../../shared/fixtures/bbbc/', import.meta.url));

/** Deterministic noise (xorshift) so synthetic fields are reproducible. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

function synthField(
  W: number,
  H: number,
  discs: { x: number; y: number; r: number; v: number }[],
  noise = 20,
  bg = 200,
): ImageData {
  const rnd = rng(7);
  const d = new Uint16Array(W * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let v = bg + (rnd() + rnd() + rnd() - 1.5) * 2 * noise;
      for (const c of discs) if ((x - c.x) ** 2 + (y - c.y) ** 2 <= c.r * c.r) v += c.v;
      d[y * W + x] = Math.max(0, Math.round(v));
    }
  }
  return { width: W, height: H, channels: 1, bitDepth: 16, data: d };
}

test('isolated discs: one centre each, at the right place, with the right area', () => {
  const discs = [
    { x: 60, y: 50, r: 14, v: 1500 },
    { x: 200, y: 70, r: 12, v: 600 }, // dim nucleus next to bright ones
    { x: 120, y: 160, r: 16, v: 2500 },
    { x: 280, y: 180, r: 13, v: 1200 },
  ];
  const seg = segmentNuclei(synthField(320, 240, discs));
  assert.equal(seg.nuclei.length, 4);
  for (const c of discs) {
    const n = seg.nuclei.find((m) => Math.hypot(m.x - c.x, m.y - c.y) < 1.5);
    assert.ok(n, `disc at ${c.x},${c.y} found`);
    const area = Math.PI * c.r * c.r;
    // Smoothing plus a log-Otsu threshold near the background widen bright discs a little.
    assert.ok(n.area > 0.7 * area && n.area < 1.6 * area, `area ${n.area} vs ${area.toFixed(0)}`);
  }
});

test('touching nuclei are split; an empty (noise-only) field gives no nuclei', () => {
  const pair = segmentNuclei(
    synthField(200, 120, [
      { x: 80, y: 60, r: 15, v: 1500 },
      { x: 106, y: 60, r: 15, v: 1500 }, // overlapping discs: one connected blob with a neck
    ]),
  );
  assert.equal(pair.nuclei.length, 2);
  const xs = pair.nuclei.map((n) => n.x).sort((a, b) => a - b);
  assert.ok(Math.abs(xs[0] - 80) < 4 && Math.abs(xs[1] - 106) < 4, `centres ${xs}`);
  assert.equal(segmentNuclei(synthField(300, 200, [], 30)).nuclei.length, 0);
});

test('connected components (8-connectivity) and exact distance transform', () => {
  const m = new Uint8Array([1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0]);
  const { count, labels } = connectedComponents(m, 4, 4);
  assert.equal(count, 3); // (0,0)-(1,1) diagonal; right column; bottom-left pair
  assert.equal(labels[0], labels[5]);
  assert.notEqual(labels[0], labels[3]);
  const W = 9;
  const disc = new Uint8Array(W * W).fill(1);
  disc[0] = 0; // single background pixel at the corner
  const d = distanceTransform(disc, W, W);
  assert.ok(Math.abs(d[W * W - 1] - Math.hypot(8, 8)) < 1e-5);
  assert.ok(Math.abs(d[3 * W + 4] - 5) < 1e-6);
});

test('BBBC022 fields: plausible nucleus counts (visual counts ≈ 70 and ≈ 130), centres on nuclei', async () => {
  for (const [f, lo, hi] of [
    ['bbbc022/IXMtest_A01_s1_w164FBEEF7-F77C-4892-86F5-72D0160D4FB2.tif', 60, 85],
    ['bbbc022/IXMtest_E05_s6_w1A1A21FBC-5638-47D7-8E40-41FDFA080C60.tif', 110, 150],
  ] as const) {
    const img = await readImage(join(FIX, f));
    const seg = segmentNuclei(img);
    assert.ok(seg.nuclei.length >= lo && seg.nuclei.length <= hi, `${f}: ${seg.nuclei.length} nuclei`);
    // Centres are on bright pixels: above the threshold in the raw image (nuclei are convex-ish).
    let onNucleus = 0;
    for (const n of seg.nuclei)
      if (img.data[Math.round(n.y) * img.width + Math.round(n.x)] > seg.threshold) onNucleus++;
    assert.ok(onNucleus >= 0.95 * seg.nuclei.length, `${onNucleus}/${seg.nuclei.length} centres on nuclei`);
    const areas = seg.nuclei.map((n) => n.area).sort((a, b) => a - b);
    const med = areas[areas.length >> 1];
    assert.ok(med > 500 && med < 1500, `median area ${med}`); // U2OS nuclei at 20×: ~30 px across
  }
});

test('BBBC006: the sharp field gives its ~10 nuclei; the out-of-focus z=00 field still gives centres (for QC crops)', async () => {
  const sharp = segmentNuclei(await readImage(join(FIX, 'bbbc006/BBBC006_z_aligned__a01__s1__w1_10.png')));
  assert.ok(sharp.nuclei.length >= 8 && sharp.nuclei.length <= 14, `sharp: ${sharp.nuclei.length}`);
  const blurImg = await readImage(
    join(FIX, 'bbbc006/00_mcf-z-stacks-03212011_k06_s2_w12667264a-6432-4f7e-bf58-625a1319a1c9.tif'),
  );
  const blur = segmentNuclei(blurImg);
  assert.ok(blur.nuclei.length >= 20 && blur.nuclei.length <= 90, `blurred: ${blur.nuclei.length}`);
  // Blurred objects are larger than in-focus ones.
  const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1];
  assert.ok(med(blur.nuclei.map((n) => n.area)) > med(sharp.nuclei.map((n) => n.area)));
});

test('CellProfiler object table: centres by plate/well/site, by ImageNumber, and a clear error without location columns', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-cp-'));
  const fields: Field[] = [
    { field_id: '20585_A01_s1', plate: '20585', well: 'A01', site: 1, channels: {}, metadata: { image_number: '1' } },
    { field_id: '20585_A01_s2', plate: '20585', well: 'A01', site: 2, channels: {}, metadata: { image_number: '2' } },
  ];
  writeFileSync(
    join(dir, 'Nuclei.csv'),
    'ImageNumber,ObjectNumber,Metadata_Plate,Metadata_Well,Metadata_Site,AreaShape_Area,Location_Center_X,Location_Center_Y\n1,1,20585,A01,1,900,10.5,20.25\n1,2,20585,A01,1,800,100,200\n2,1,20585,a01,2,700,5,6\n3,1,20585,B01,1,700,5,6\n',
  );
  const a = readCellProfilerCentres(join(dir, 'Nuclei.csv'), fields);
  assert.deepEqual(a.centres.get('20585_A01_s1'), [
    { x: 10.5, y: 20.25, area: 900 },
    { x: 100, y: 200, area: 800 },
  ]);
  assert.equal(a.centres.get('20585_A01_s2')?.length, 1);
  assert.equal(a.unmatched, 1);
  writeFileSync(
    join(dir, 'byimage.csv'),
    'ImageNumber,ObjectNumber,Nuclei_Location_Center_X,Nuclei_Location_Center_Y\n2,1,7,8\n',
  );
  const b = readCellProfilerCentres(join(dir, 'byimage.csv'), fields);
  assert.deepEqual(b.centres.get('20585_A01_s2'), [{ x: 7, y: 8, area: 0 }]);
  writeFileSync(join(dir, 'bad.csv'), 'ImageNumber,X,Y\n1,2,3\n');
  assert.throws(
    () => readCellProfilerCentres(join(dir, 'bad.csv'), fields),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_CSV_COLUMNS' && e.context.file === join(dir, 'bad.csv'),
  );
});

test('quickselect agrees with sorting', () => {
  const r = rng(3);
  for (const n of [1, 2, 7, 100, 1001]) {
    const a = Float32Array.from({ length: n }, () => Math.floor(r() * 20));
    const sorted = Float32Array.from(a).sort();
    for (const k of [0, n >> 1, n - 1]) assert.equal(select(Float32Array.from(a), k), sorted[k]);
  }
});
