import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { aggregate } from '../../src/reports/aggregate.js';
import { buildCharts } from '../../src/reports/charts.js';
import { loadResults } from '../../src/reports/load.js';
import { loadReference } from '../../src/reports/reference.js';
import { compileSpec, renderSvg, renumberIds, svgToPng } from '../../src/render/vega.js';
import { makeResults } from './make-results.js';

const reference = fileURLToPath(new URL('../../../shared/reference/masud2022_tables.csv', import.meta.url));

test('every chart spec compiles without warnings and renders to SVG and PNG', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-charts-'));
  try {
    await makeResults(root, {
      encoders: ['vgg16', 'simclr', 'vicreg', 'random-resnet18'],
      budgets: [350, 50, 10],
      seeds: [0, 1],
      failed: 1,
    });
    const res = loadResults(root);
    const agg = aggregate(res);
    const charts = buildCharts(agg, loadReference(reference), res.pretrain);
    const names = charts.map((c) => c.name);
    assert.deepEqual(names, [
      'label-budget-finetune',
      'tasks',
      'domain-shift',
      'pretrain-loss',
      'pretrain-knn-monitor',
      'confusion-knn-350-bbbc022',
      'confusion-linear-350-bbbc022',
      'confusion-finetune-350-bbbc022',
      'confusion-finetune-50-bbbc022',
      'confusion-finetune-10-bbbc022',
      'confusion-finetune-350-bbbc021',
    ]);
    for (const c of charts) {
      const { warnings } = compileSpec(c.spec, c.name);
      assert.deepEqual(warnings, [], c.name);
      const { svg } = await renderSvg(c.spec, c.name);
      assert.match(svg, /^<svg[^>]+width="\d+"/, c.name);
      const w = Number(svg.match(/width="(\d+)"/)![1]);
      const h = Number(svg.match(/height="(\d+)"/)![1]);
      assert.ok(w > 200 && h > 150, `${c.name} ${w}×${h}`);
      const png = await svgToPng(svg);
      const meta = await sharp(png).metadata();
      assert.equal(meta.format, 'png');
      assert.equal(meta.width, 2 * w, c.name);
      // a real figure has ink: not a blank page
      const stats = await sharp(png).stats();
      assert.ok(stats.channels[0].min < 100, `${c.name} looks blank`);
    }
    // the label-budget curve has our three budgets per encoder and the paper's Table 2 for the paper's encoders
    const lb = charts[0].spec as { data: { values: { encoder: string; budget: number; source: string }[] } };
    const ours = lb.data.values.filter((v) => v.source === 'ours');
    const paper = lb.data.values.filter((v) => v.source !== 'ours');
    assert.deepEqual(
      [...new Set(ours.map((v) => v.budget))].sort((a, b) => a - b),
      [10, 50, 350],
    );
    assert.deepEqual([...new Set(paper.map((v) => v.encoder))].sort(), ['SimCLR', 'VGG16', 'VICReg']);
    assert.equal(paper.filter((v) => v.encoder === 'SimCLR').length, 5);
    // domain shift: both test sets for each encoder
    const ds = charts[2].spec as { data: { values: { test: string; source: string; encoder: string; f1: number }[] } };
    assert.deepEqual([...new Set(ds.data.values.map((v) => v.test))].sort(), [
      'in-domain (bbbc022)',
      'shifted (bbbc021)',
    ]);
    assert.ok(ds.data.values.some((v) => v.source !== 'ours' && v.encoder === 'VICReg' && v.f1 === 40));
    // confusion counts summed over seeds equal the number of test predictions of the finished cells
    const cf = charts[5].spec as { data: { values: { encoder: string; count: number }[] } };
    const simclr = cf.data.values.filter((v) => v.encoder === 'SimCLR').reduce((a, v) => a + v.count, 0);
    assert.equal(simclr, 2 * 130);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('SVG ids are renumbered per file so repeated renders are identical', async () => {
  assert.equal(
    renumberIds(
      '<linearGradient id="gradient_7"/><path fill="url(#gradient_7)" clip-path="url(#clip12)"/><clipPath id="clip12"/><x id="gradient_9"/>',
    ),
    '<linearGradient id="gradient_0"/><path fill="url(#gradient_0)" clip-path="url(#clip0)"/><clipPath id="clip0"/><x id="gradient_1"/>',
  );
  const spec = {
    data: {
      values: [
        { a: 1, b: 0.2 },
        { a: 2, b: 0.9 },
      ],
    },
    mark: 'rect',
    encoding: { x: { field: 'a', type: 'ordinal' }, color: { field: 'b', type: 'quantitative' } },
  };
  const one = await renderSvg(spec);
  const two = await renderSvg(spec);
  assert.match(one.svg, /gradient_0/);
  assert.equal(one.svg, two.svg);
});

test('an invalid spec is reported as a QcbError naming the chart', async () => {
  await assert.rejects(
    renderSvg({ data: { values: [] }, mark: 'no-such-mark' }, 'broken'),
    (e: Error & { code?: string }) => e.code === 'QCB_INTERNAL' && /broken/.test(e.message),
  );
});
