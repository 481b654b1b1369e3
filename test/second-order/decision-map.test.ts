import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileSpec, renderSvg } from '../../src/render/vega.js';
import { predict } from '../../src/second-order/analytic.js';
import { decisionGrid, decisionMapSpec } from '../../src/second-order/decision-map.js';
import { concentricRings } from '../../src/second-order/rings.js';
import { PLANE_TASKS, scaleInputs, trainPlane } from '../../src/second-order/train.js';

test('decision map of a trained rings network: grid agrees with the network, spec compiles with vega-lite and renders', async () => {
  const ds = concentricRings();
  const cfg = PLANE_TASKS.rings.networks[0].config;
  const r = await trainPlane(ds, { ...cfg, seed: 1, backend: 'analytic' });
  assert.equal(r.accuracy, 1);
  const R = 40;
  const grid = decisionGrid(r.net, ds, { resolution: R, inputScale: cfg.inputScale });
  assert.equal(grid.length, R * R);
  assert.ok(grid.every((c) => c.p >= 0 && c.p <= 1 && c.x2 > c.x && c.y2 > c.y));
  // the cell under each training point predicts the point's class on most points (cells are 1/40 wide)
  let agree = 0;
  for (let i = 0; i < ds.n; i++) {
    const j = Math.min(R - 1, Math.floor(ds.x[2 * i] * R));
    const k = Math.min(R - 1, Math.floor(ds.x[2 * i + 1] * R));
    if ((grid[k * R + j].p > 0.5 ? 1 : 0) === ds.y[i]) agree++;
  }
  assert.ok(agree / ds.n > 0.85, `cells agree with ${agree}/${ds.n} training labels`);
  // grid values are the network's own outputs at the cell centres
  const c = grid[17 * R + 23];
  const p = predict(r.net, scaleInputs([(c.x + c.x2) / 2, (c.y + c.y2) / 2], cfg.inputScale ?? 8), 1)[0];
  assert.ok(Math.abs(p - c.p) < 1e-4);

  const spec = decisionMapSpec(r.net, ds, { resolution: R, inputScale: cfg.inputScale, title: 'rings' });
  const { vega } = compileSpec(spec, 'rings');
  assert.ok(Array.isArray((vega as { marks?: unknown[] }).marks) && (vega as { marks: unknown[] }).marks.length >= 2);
  const layers = spec.layer as { data: { values: unknown[] } }[];
  assert.equal(layers[1].data.values.length, ds.n);
  const { svg } = await renderSvg(spec, 'rings');
  assert.ok(svg.startsWith('<svg') && svg.includes('rings'));
});
