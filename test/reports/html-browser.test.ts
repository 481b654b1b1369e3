import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { buildReport } from '../../src/reports/build.js';
import { command as secondOrder } from '../../src/cli/second-order.js';
import { Logger } from '../../src/util/log.js';
import { makeResults } from './make-results.js';

const CHROMIUM = '/usr/bin/chromium';
const reference = fileURLToPath(new URL('../../../shared/reference/masud2022_tables.csv', import.meta.url));

test('the HTML report opens offline in headless Chromium without console errors and draws every chart', {
  skip: existsSync(CHROMIUM)
    ? false
    : `${CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium) to run this test`,
}, async (t) => {
  const { chromium } = await import('playwright-core');
  const root = mkdtempSync(join(tmpdir(), 'qcb-html-'));
  const keep = process.env.QCBENCH_KEEP_TMP === '1';
  try {
    const res = join(root, 'results');
    await makeResults(res, {
      encoders: ['vgg16', 'simclr', 'barlow_twins', 'random-resnet18', 'resnet18-fractaldb'],
      bootstrap: 20,
      skipTl: true,
      seeds: [0, 1, 2],
      failed: 1,
      pending: 1,
      montages: 3,
    });
    // decision maps of the second-order rings test (small settings), stored where the report reads them
    await secondOrder.run(['rings', '--seeds', '1', '--iterations', '100', '--out', join(res, 'second-order')], {
      log: new Logger({ level: 'error' }),
    });
    const out = join(root, 'report');
    const summary = await buildReport(res, out, { reference, png: false, log: new Logger({ quiet: true }) });
    assert.ok(summary.charts.length >= 8);

    const ctx = await chromium.launchPersistentContext(join(root, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
      ],
      viewport: { width: 1360, height: 900 },
    });
    try {
      const page = await ctx.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('request', (r) => {
        if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) requests.push(r.url());
      });
      await page.goto(pathToFileURL(join(out, 'index.html')).href);
      await page.waitForFunction(
        () => {
          const s = (globalThis as unknown as { qcbenchCharts?: { total: number; rendered: number; failed: number } })
            .qcbenchCharts;
          return s !== undefined && s.rendered + s.failed === s.total;
        },
        undefined,
        { timeout: 20000 },
      );
      const state = await page.evaluate(
        () =>
          (globalThis as unknown as { qcbenchCharts: { total: number; rendered: number; failed: number } })
            .qcbenchCharts,
      );
      assert.equal(state.total, summary.charts.length);
      assert.equal(state.failed, 0);
      assert.equal(state.rendered, summary.charts.length);
      // every chart container holds a drawn SVG with marks; the montages are image marks with inlined JPEG previews
      const drawn = await page.$$eval('div.chart', (els) =>
        els.map((el) => {
          const svg = el.querySelector('svg');
          return {
            name: el.getAttribute('data-chart') ?? '',
            marks: svg ? svg.querySelectorAll('path, line, rect, text').length : 0,
            images: svg
              ? [...svg.querySelectorAll('image')].filter(
                  (i) =>
                    (i.getAttribute('href') ?? i.getAttribute('xlink:href') ?? '').startsWith('data:image/jpeg') &&
                    Number(i.getAttribute('width')) > 0,
                ).length
              : 0,
          };
        }),
      );
      assert.deepEqual(
        drawn.map((d) => d.name),
        summary.charts,
      );
      for (const d of drawn) {
        if (d.name === 'misclassified-crops') assert.equal(d.images, 3, 'three montages drawn');
        else assert.ok(d.marks > 20, `chart ${d.name} has ${d.marks} marks`);
      }
      // clicking a montage preview opens its full-resolution PNG beside the report, in a new tab
      const [popup] = await Promise.all([
        ctx.waitForEvent('page', { timeout: 10000 }),
        page.locator('div.chart[data-chart="misclassified-crops"] svg image').first().click(),
      ]);
      assert.match(popup.url(), /^file:.*\/report\/montages\/[0-9a-f]+\.png$/);
      await popup.close();
      assert.ok(summary.charts.includes('second-order-rings-second-order-2-3-2-1'));
      assert.ok((await page.textContent('#table1'))?.includes('skipped'));
      assert.deepEqual(errors, []);
      assert.deepEqual(requests, [], 'the report must not touch the network');
      const shot = join(root, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      const meta = await sharp(shot).metadata();
      assert.equal(meta.width, 1360);
      assert.ok((meta.height ?? 0) > 2000 && statSync(shot).size > 50_000);
      t.diagnostic(`screenshot: ${shot}${keep ? '' : ' (deleted; set QCBENCH_KEEP_TMP=1 to keep it)'}`);
    } finally {
      await ctx.close();
    }
  } finally {
    if (!keep) rmSync(root, { recursive: true, force: true });
  }
});
