import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildReport } from '../../src/reports/build.js';
import { command as secondOrder } from '../../src/cli/second-order.js';
import { QcbError } from '../../src/errors.js';
import { aggregate } from '../../src/reports/aggregate.js';
import { loadResults } from '../../src/reports/load.js';
import { compileSpec } from '../../src/render/vega.js';
import { loadSecondOrder, secondOrderQcPairs } from '../../src/reports/second-order.js';
import type { CellKey } from '../../src/results/schema.js';
import { Logger } from '../../src/util/log.js';
import { makeResults } from './make-results.js';

const reference = fileURLToPath(new URL('../../../shared/reference/masud2022_tables.csv', import.meta.url));
const quiet = new Logger({ quiet: true });
const ctx = { log: new Logger({ level: 'error' }) };
const NETWORKS = ['second-order-2-3-2-1', 'first-order-2-20-10-1'];

test('second-order rings --out <results>/second-order, then report: decision maps as Vega-Lite/SVG/PNG and a "Second-order neurons" section', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-so-report-'));
  try {
    const res = join(root, 'results');
    await makeResults(res, { encoders: ['simclr'], seeds: [0], budgets: [50], bootstrap: 10, montages: 2 });
    // the small settings of test/second-order/cli.test.ts
    const code = await secondOrder.run(
      ['rings', '--seeds', '1', '--iterations', '300', '--out', join(res, 'second-order')],
      ctx,
    );
    assert.equal(code, 0);
    const stored = readdirSync(join(res, 'second-order')).sort();
    assert.ok(stored.includes('rings-results.json') && stored.includes('rings-maps.json'), stored.join(', '));
    const maps = JSON.parse(readFileSync(join(res, 'second-order', 'rings-maps.json'), 'utf8'));
    assert.equal(maps.schema, 'qcbench.second-order-maps/1');
    assert.deepEqual(
      maps.maps.map((m: { network: string }) => m.network),
      NETWORKS,
    );
    assert.equal(maps.maps[0].map.points.length, 240);
    assert.equal(maps.maps[0].map.grid.length, 50 * 50);

    const out = join(root, 'out');
    const s = await buildReport(res, out, { reference, log: quiet });
    assert.deepEqual(s.warnings, [], 'every rendered chart compiles without warnings');
    // the montage figure (written as a spec only) compiles cleanly too
    const montageSpec = JSON.parse(readFileSync(join(out, 'charts', 'misclassified-crops.vl.json'), 'utf8'));
    assert.deepEqual(compileSpec(montageSpec, 'misclassified-crops').warnings, []);
    for (const n of NETWORKS) {
      const name = `second-order-rings-${n}`;
      assert.ok(s.charts.includes(name), `${name} in ${s.charts.join(', ')}`);
      const spec = JSON.parse(readFileSync(join(out, 'charts', `${name}.vl.json`), 'utf8'));
      // heatmap of the network output with the 240 training points on top
      assert.equal(spec.layer[0].mark.type, 'rect');
      assert.equal(spec.layer[0].data.values.length, 2500);
      assert.equal(spec.layer[1].data.values.length, 240);
      assert.ok(readFileSync(join(out, 'charts', `${name}.svg`), 'utf8').startsWith('<svg'));
      assert.ok(
        readFileSync(join(out, 'charts', `${name}.png`))
          .subarray(1, 4)
          .toString() === 'PNG',
      );
    }
    const md = readFileSync(join(out, 'tables', 'second-order.md'), 'utf8');
    assert.match(
      md,
      /\| rings: four concentric rings .*\| second-order-2-3-2-1 \| 1 \| [01]\/1 \| \d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \|/,
    );
    const csv = readFileSync(join(out, 'tables', 'second-order.csv'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(csv.length, 3);
    assert.ok(csv[1].startsWith('rings,second-order-2-3-2-1,2,2-3-2-1,engine,100,1,'));
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.match(html, /<h2>Second-order neurons<\/h2>/);
    for (const n of NETWORKS) assert.ok(html.includes(`data-chart="second-order-rings-${n}"`), n);
    assert.ok(html.includes('href="charts/second-order-rings-second-order-2-3-2-1.png"'));
    assert.ok(html.includes('href="tables/second-order.csv"'));
    // the figures are embedded like the others: one spec per chart container
    assert.equal((html.match(/<div class="chart" id="chart-\d+"/g) ?? []).length, s.charts.length);

    // the report is a pure function of the results directory: a rebuild is byte-identical
    const again = join(root, 'again');
    await buildReport(res, again, { reference, log: quiet });
    for (const f of s.files) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(again, f))), f);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('second-order --out a results directory writes into its second-order/ folder; a directory with only second-order results reports', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-so-report-'));
  try {
    const res = join(root, 'results');
    await makeResults(res, { encoders: ['swav'], seeds: [0], budgets: [50], bootstrap: 10 });
    assert.equal(await secondOrder.run(['rings', '--seeds', '1', '--iterations', '50', '--out', res], ctx), 0);
    assert.ok(existsSync(join(res, 'second-order', 'rings-results.json')));
    assert.ok(!existsSync(join(res, 'rings-results.json')));

    // only second-order results, no run.json: the report has the section and no benchmark tables
    const only = join(root, 'only');
    mkdirSync(join(only, 'second-order'), { recursive: true });
    for (const f of ['rings-results.json', 'rings-maps.json'])
      writeFileSync(join(only, 'second-order', f), readFileSync(join(res, 'second-order', f)));
    const out = join(root, 'out');
    const s = await buildReport(only, out, { reference, png: false, log: quiet });
    assert.deepEqual(s.tables, []);
    assert.deepEqual(
      s.charts,
      NETWORKS.map((n) => `second-order-rings-${n}`),
    );
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.match(html, /Second-order neurons/);
    assert.ok(!html.includes('id="montages"'), 'no montage section without benchmark cells');

    // maps missing: the table still shows, with a note; a file of another schema is an error naming it
    rmSync(join(only, 'second-order', 'rings-maps.json'));
    await buildReport(only, out, { reference, png: false, log: quiet });
    assert.match(readFileSync(join(out, 'index.html'), 'utf8'), /No decision maps are stored for rings/);
    writeFileSync(join(only, 'second-order', 'spirals-results.json'), '{"schema": "other", "experiment": "spirals"}');
    assert.throws(
      () => loadSecondOrder(only),
      (e: unknown) =>
        e instanceof QcbError &&
        e.code === 'QCB_FILE_FORMAT' &&
        e.context.file?.endsWith('spirals-results.json') === true,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('QC benchmark cells: the quadratic head beside the linear probe, soq-cnn beside foq-cnn', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-so-report-'));
  try {
    const res = join(root, 'results');
    const keys: CellKey[] = [];
    for (const seed of [0, 1]) {
      for (const task of ['linear', 'quadratic'] as const)
        keys.push({ encoder: 'simclr', task, budget: 100, seed, train_set: 'synthetic-a', test_set: 'synthetic-a' });
      for (const encoder of ['soq-cnn', 'foq-cnn'])
        keys.push({ encoder, task: 'finetune', budget: 20, seed, train_set: 'synthetic-a', test_set: 'synthetic-a' });
    }
    await makeResults(res, { cells: keys.map((key, i) => ({ id: `cell-${i}`, key })), bootstrap: 10 });
    const pairs = secondOrderQcPairs(aggregate(loadResults(res)));
    assert.deepEqual(
      pairs.map((p) => [
        p.comparison,
        p.second.key.encoder,
        p.second.key.task,
        p.first?.key.encoder,
        p.first?.key.task,
      ]),
      [
        ['quadratic head vs linear probe', 'simclr', 'quadratic', 'simclr', 'linear'],
        ['second-order CNN vs first-order twin', 'soq-cnn', 'finetune', 'foq-cnn', 'finetune'],
      ],
    );
    const out = join(root, 'out');
    await buildReport(res, out, { reference, png: false, log: quiet });
    const md = readFileSync(join(out, 'tables', 'second-order-qc.md'), 'utf8');
    assert.match(
      md,
      /\| quadratic head vs linear probe \| SimCLR \| 100 \| synthetic-a \| \d+\.\d\d ± \d+\.\d\d \| \d+\.\d\d ± \d+\.\d\d \| (0\.00|[+−]\d+\.\d\d) \|/,
    );
    const csv = readFileSync(join(out, 'tables', 'second-order-qc.csv'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(csv.length, 3);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.match(html, /In the QC benchmark: second-order against first-order twins/);
    // no planar tests in this directory: the section says how to add them
    assert.match(html, /qcbench second-order spirals --out &lt;results&gt;\/second-order/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
