import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { buildReport } from '../../src/reports/build.js';
import { command } from '../../src/cli/report.js';
import { meanSd } from '../../src/metrics/summary.js';
import { evaluate } from '../../src/metrics/classification.js';
import { PREVIEW_WIDTH } from '../../src/reports/montages.js';
import type { CellRecord } from '../../src/results/schema.js';
import { Logger } from '../../src/util/log.js';
import { makeResults } from './make-results.js';

const reference = fileURLToPath(new URL('../../../shared/reference/masud2022_tables.csv', import.meta.url));
const quiet = new Logger({ quiet: true });

function listFiles(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(dir, join(rel, e.name)) : [join(rel, e.name)]))
    .sort();
}

function cellsOf(dir: string): CellRecord[] {
  return readdirSync(join(dir, 'cells')).map(
    (f) => JSON.parse(readFileSync(join(dir, 'cells', f), 'utf8')) as CellRecord,
  );
}

test('full-size results: tables carry mean ± sd over seeds, the paper figures and Δ; skipped, failed and pending cells are shown', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-report-'));
  try {
    const res = join(root, 'results');
    await makeResults(res, { skipTl: true, failed: 2, pending: 1, montages: 4, bootstrap: 20 });
    const out = join(root, 'out');
    const s = await buildReport(res, out, { reference, png: false, log: quiet });
    assert.deepEqual(s.tables, ['table1', 'table2', 'table3']);
    assert.equal(s.counts.total, 240);
    assert.equal(s.counts.skipped, 72); // 3 ImageNet encoders × 8 settings × 3 seeds
    assert.equal(s.counts.failed, 2);
    assert.equal(s.counts.pending, 1);

    // SimCLR kNN accuracy: mean ± sd of the three seeds, beside the paper's 90.62 and the difference
    const cells = cellsOf(res);
    const acc = cells
      .filter((c) => c.key.encoder === 'simclr' && c.key.task === 'knn')
      .sort((a, b) => a.key.seed - b.key.seed)
      .map((c) => c.metrics!.accuracy);
    assert.equal(acc.length, 3);
    const ms = meanSd(acc);
    const md1 = readFileSync(join(out, 'tables/table1.md'), 'utf8');
    const d = ms.mean - 90.62;
    const expected = `${ms.mean.toFixed(2)} ± ${ms.sd.toFixed(2)} (90.62, ${d < 0 ? '−' : '+'}${Math.abs(d).toFixed(2)})`;
    const simclrRow = md1.split('\n').find((l) => l.startsWith('| SimCLR |'))!;
    assert.ok(simclrRow.includes(expected), `${simclrRow} lacks ${expected}`);
    // skipped TL rows: the reason and the fix command
    const vggRow = md1.split('\n').find((l) => l.startsWith('| VGG16 |'))!;
    assert.match(vggRow, /skipped: ImageNet weights for vgg16 are not in QCBENCH_WEIGHTS \[1\] \(paper 96\.09\)/);
    assert.match(md1, /\[1\] skipped: ImageNet weights for vgg16 .*Fix: `qcbench weights fetch vgg16`/);
    // encoders the paper lacks show "—" for the paper
    const ctrl = md1.split('\n').find((l) => l.startsWith('| Random ResNet18 (control) |'))!;
    assert.match(ctrl, /\d+\.\d\d ± \d+\.\d\d \(—, —\)/);
    assert.ok(!md1.includes('Data differ'), 'BBBC022 run needs no data note');

    // Table 2: budget columns largest first; Table 3: the paper's BBBC021 figures
    const md2 = readFileSync(join(out, 'tables/table2.md'), 'utf8');
    assert.ok(md2.indexOf('350 training images: Acc') < md2.indexOf('10 training images: Acc'));
    assert.ok(md2.includes('(98.44, '), 'SimCLR fine-tuned 350 accuracy from the paper');
    const md3 = readFileSync(join(out, 'tables/table3.md'), 'utf8');
    assert.ok(md3.includes('(73.66, '), "SimCLR's BBBC021 accuracy from the paper");
    // the failed cells (last in the run's list, swav/resnet18-fractaldb region) appear as failed somewhere
    const all = readFileSync(join(out, 'tables/all-results.md'), 'utf8');
    assert.match(all, /failed \(QCB_NAN_LOSS\)/);
    assert.match(all, /1 pending/);

    // CSV: long form with numbers and the paper's figure
    const csv1 = readFileSync(join(out, 'tables/table1.csv'), 'utf8').trim().split('\n');
    assert.equal(
      csv1[0],
      'table,encoder,encoder_label,kind,task,train_set,test_set,budget,metric,status,seeds,n_done,mean,sd,min,max,paper,paper_train_images,diff,note',
    );
    const line = csv1.find((l) => l.startsWith('table1,simclr,SimCLR,ssl,knn,bbbc022,bbbc022,350,accuracy,done,3,3,'))!;
    assert.ok(line, 'SimCLR kNN accuracy line');
    const f = line.split(',');
    assert.ok(Math.abs(Number(f[12]) - ms.mean) < 1e-5);
    assert.equal(f[16], '90.62');
    assert.ok(
      csv1.some(
        (l) =>
          l.startsWith('table1,vgg16,VGG16,tl,knn,') &&
          l.includes(',skipped,') &&
          l.includes('qcbench weights fetch vgg16'),
      ),
    );
    // LaTeX: booktabs table with \pm and an escaped failure code where present
    const tex2 = readFileSync(join(out, 'tables/table2.tex'), 'utf8');
    assert.match(tex2, /\\begin\{tabular\}\{ll c{15}\}|\\begin\{tabular\}\{llccccccccccccccc\}/);
    assert.match(tex2, /\$\d+\.\d\d \\pm \d+\.\d\d\$/);
    assert.ok(!/QCB_NAN/.test(tex2) || /QCB\\_NAN\\_LOSS/.test(tex2));
    for (const id of ['table1', 'table2', 'table3']) {
      const tex = readFileSync(join(out, `tables/${id}.tex`), 'utf8');
      assert.ok(
        [...tex].every((ch) => ch.charCodeAt(0) < 128),
        `${id}.tex must be plain ASCII for pdfLaTeX`,
      );
    }
    // recall per artefact type: mean over seeds of each cell's recall
    const rec = readFileSync(join(out, 'tables/recall-by-type.csv'), 'utf8').trim().split('\n');
    const oof = rec.find((l) => l.startsWith('simclr,SimCLR,knn,bbbc022,bbbc022,350,out-of-focus,3,'))!;
    assert.ok(oof, 'SimCLR kNN out-of-focus recall line');
    const expRecall = meanSd(
      cells
        .filter((c) => c.key.encoder === 'simclr' && c.key.task === 'knn')
        .map((c) => c.metrics!.recall_by_type!['out-of-focus'].recall),
    ).mean;
    assert.ok(Math.abs(Number(oof.split(',')[8]) - expRecall) < 1e-5);
    assert.match(
      readFileSync(join(out, 'tables/recall-by-type.md'), 'utf8'),
      /\| debris \| out-of-focus \| saturated \|/,
    );
    // per-seed cells with bootstrap intervals
    const cellsCsv = readFileSync(join(out, 'tables/cells.csv'), 'utf8').trim().split('\n');
    assert.equal(cellsCsv.length, 1 + 239);

    // HTML: offline (no http(s) script or link sources), with every chart's container and the montages
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.ok(!/<script[^>]+src=/i.test(html) && !/<link[^>]+href="https?:/i.test(html));
    for (const name of s.charts) assert.ok(html.includes(`data-chart="${name}"`), name);
    // the montages are inlined as JPEG previews, not as the PNGs
    assert.equal((html.match(/data:image\/png;base64,/g) ?? []).length, 0);
    assert.equal((html.match(/data:image\/jpeg;base64,/g) ?? []).length, 4);
    // the montages are a Vega-Lite figure too: image marks over copies in the report folder (no SVG/PNG of it)
    assert.ok(s.charts.includes('misclassified-crops'));
    const mspec = JSON.parse(readFileSync(join(out, 'charts/misclassified-crops.vl.json'), 'utf8'));
    const urls = (mspec.concat as { data: { values: { url: string }[] }; mark: { type: string } }[]).map((p) => {
      assert.equal(p.mark.type, 'image');
      return p.data.values[0].url;
    });
    assert.equal(urls.length, 4);
    for (const u of urls) {
      assert.match(u, /^montages\/[0-9a-f]+\.png$/);
      assert.ok(readFileSync(join(out, u)).equals(readFileSync(join(res, u))), u);
      // the page links every full-resolution PNG
      assert.ok(html.includes(`<a href="${u}">`), u);
    }
    for (const p of mspec.concat as { data: { values: { url: string; href: string }[] } }[])
      assert.equal(p.data.values[0].href, p.data.values[0].url, 'each panel links its full-resolution PNG');
    assert.ok(!existsSync(join(out, 'charts/misclassified-crops.svg')));
    assert.ok(html.includes('skipped: ImageNet weights for vgg16'));
    assert.ok(html.includes('qcbench weights fetch vgg16'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a second build of the same results is byte-identical, and stale chart files are removed', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-report-'));
  try {
    const res = join(root, 'results');
    // montages of the runner's size, so that the inlined JPEG previews are downscaled (and must be byte-identical)
    await makeResults(res, {
      encoders: ['simclr', 'random-resnet18'],
      budgets: [100, 25],
      failed: 1,
      bootstrap: 20,
      montages: 3,
      montageSize: [1042, 522],
    });
    const a = join(root, 'a');
    const b = join(root, 'b');
    const sa = await buildReport(res, a, { reference, log: quiet });
    writeFileSync(join(a, 'charts', 'old-chart.svg'), '<svg/>');
    await buildReport(res, a, { reference, log: quiet });
    await buildReport(res, b, { reference, log: quiet });
    assert.ok(!existsSync(join(a, 'charts', 'old-chart.svg')));
    const fa = listFiles(a);
    assert.deepEqual(fa, listFiles(b));
    assert.deepEqual(fa, sa.files.map((f) => f.split('/').join('/')).sort());
    for (const f of fa) assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs`);
    assert.match(readFileSync(join(a, 'index.html'), 'utf8'), /data:image\/jpeg;base64,/, 'JPEG previews inlined');
    // no timestamps in tables
    for (const f of fa.filter((x) => x.startsWith('tables')))
      assert.ok(!/20\d\d-\d\d-\d\dT/.test(readFileSync(join(a, f), 'utf8')), f);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('index.html inlines JPEG previews at most PREVIEW_WIDTH px wide; the full-resolution PNGs are linked beside it', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-report-'));
  try {
    const res = join(root, 'results');
    // montages of the runner's size (32 crops of 128 px)
    await makeResults(res, {
      encoders: ['simclr'],
      seeds: [0],
      budgets: [50],
      montages: 2,
      montageSize: [1042, 522],
    });
    const out = join(root, 'out');
    await buildReport(res, out, { reference, png: false, log: quiet });
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    const previews = [...html.matchAll(/data:image\/jpeg;base64,([A-Za-z0-9+/=]+)/g)].map((m) =>
      Buffer.from(m[1], 'base64'),
    );
    assert.equal(previews.length, 2);
    const mspec = JSON.parse(readFileSync(join(out, 'charts/misclassified-crops.vl.json'), 'utf8'));
    const urls = (mspec.concat as { data: { values: { url: string; href: string }[] } }[]).map(
      (p) => p.data.values[0].url,
    );
    for (const [i, jpeg] of previews.entries()) {
      const meta = await sharp(jpeg).metadata();
      assert.equal(meta.format, 'jpeg');
      assert.equal(meta.width, PREVIEW_WIDTH);
      assert.equal(meta.height, Math.round((522 * PREVIEW_WIDTH) / 1042));
      const full = readFileSync(join(out, urls[i]));
      assert.equal((await sharp(full).metadata()).width, 1042, 'the linked copy keeps full resolution');
      assert.ok(jpeg.length < full.length, 'the preview is smaller than the PNG');
    }
    assert.match(html, /Full-resolution montages \(2 PNG files in <code>montages\/<\/code>/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('run timestamps and cell timings do not change the report (a sharded run reports like an unsharded one)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-report-'));
  try {
    const one = join(root, 'one');
    const two = join(root, 'two');
    const opts = { encoders: ['simclr', 'random-resnet18'], budgets: [50], seeds: [0, 1], bootstrap: 10, montages: 1 };
    await makeResults(one, opts);
    await makeResults(two, opts);
    const run = JSON.parse(readFileSync(join(two, 'run.json'), 'utf8'));
    run.started_at = '2030-05-05T05:05:05.000Z';
    writeFileSync(join(two, 'run.json'), JSON.stringify(run));
    for (const f of readdirSync(join(two, 'cells'))) {
      const c = JSON.parse(readFileSync(join(two, 'cells', f), 'utf8'));
      c.finished_at = '2030-05-05T06:00:00.000Z';
      c.timing = { features: 99, downstream: 1 };
      writeFileSync(join(two, 'cells', f), JSON.stringify(c));
    }
    const a = join(root, 'ra');
    const b = join(root, 'rb');
    await buildReport(one, a, { reference, png: false, log: quiet });
    await buildReport(two, b, { reference, png: false, log: quiet });
    const files = listFiles(a);
    assert.deepEqual(files, listFiles(b));
    for (const f of files) assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('synthetic-data runs say the data differ; the paper has no row for other budgets', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-report-'));
  try {
    const res = join(root, 'results');
    await makeResults(res, {
      encoders: ['simclr', 'resnet18-fractaldb'],
      seeds: [0],
      trainSet: 'synthetic-a',
      shiftSet: 'synthetic-b',
      budgets: [64, 16],
    });
    const out = join(root, 'out');
    await buildReport(res, out, { reference, png: false, log: quiet });
    const md1 = readFileSync(join(out, 'tables/table1.md'), 'utf8');
    assert.match(
      md1,
      /Data differ from the paper: this run trained and tested on synthetic-a \(shifted test: synthetic-b\)/,
    );
    assert.match(md1, /this run used 64 training images; the paper's figures beside are for 350/);
    // one seed: no ± and the paper's 350-image figure beside
    const row = md1.split('\n').find((l) => l.startsWith('| SimCLR |'))!;
    assert.match(row, /\| \d+\.\d\d \(90\.62, [+−]\d+\.\d\d\) \|/);
    const md2 = readFileSync(join(out, 'tables/table2.md'), 'utf8');
    assert.match(md2.split('\n').find((l) => l.startsWith('| SimCLR |'))!, /\(—, —\)/);
    const md3 = readFileSync(join(out, 'tables/table3.md'), 'utf8');
    assert.match(md3, /Tested on synthetic-b/);
    assert.match(md3, /\(73\.66, /);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    assert.match(html, /Data differ from the paper/);
    assert.match(html, /no montages of misclassified crops/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('qcbench report: exit 0 with --json summary; a missing or malformed results directory is a QcbError', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-report-'));
  try {
    const res = join(root, 'results');
    await makeResults(res, { encoders: ['swav'], seeds: [0, 1], budgets: [50] });
    const out = join(root, 'out');
    const code = await command.run(['--results', res, '--out', out, '--reference', reference, '--no-png'], {
      log: quiet,
    });
    assert.equal(code, 0);
    assert.ok(existsSync(join(out, 'index.html')));
    assert.ok(!readdirSync(join(out, 'charts')).some((f) => f.endsWith('.png')));
    await assert.rejects(
      command.run(['--results', join(root, 'nope'), '--out', out], { log: quiet }),
      (e: Error & { code?: string; context?: { fix?: string } }) =>
        e.code === 'QCB_FILE_NOT_FOUND' && /qcbench run/.test(e.context?.fix ?? ''),
    );
    await assert.rejects(
      command.run(['--bogus'], { log: quiet }),
      (e: Error & { code?: string }) => e.code === 'QCB_USAGE',
    );
    await assert.rejects(
      command.run(['--results', res, '--out', out, '--reference', join(root, 'missing.csv')], { log: quiet }),
      (e: Error & { code?: string }) => e.code === 'QCB_FILE_NOT_FOUND',
    );
    const bad = readdirSync(join(res, 'cells'))[0];
    writeFileSync(join(res, 'cells', bad), '{"schema": "qcbench.cell/1", "id": "x"');
    await assert.rejects(
      buildReport(res, out, { reference, log: quiet }),
      (e: Error & { code?: string; context?: { file?: string } }) =>
        e.code === 'QCB_FILE_FORMAT' && e.context?.file?.endsWith(bad) === true,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('qcbench report without --results reads the only run under ./.qcbench/results, where runs write by default', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-report-'));
  try {
    await makeResults(join(root, '.qcbench', 'results', 'quick'), { encoders: ['swav'], seeds: [0], budgets: [50] });
    const bin = fileURLToPath(new URL('../../bin/qcbench.js', import.meta.url));
    const r = spawnSync(process.execPath, [bin, 'report', '--no-png', '--json', '--reference', reference], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, CI: '1' },
    });
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.outDir, join(root, 'reports', 'out'));
    assert.equal(summary.counts.total, 4);
    assert.ok(existsSync(join(root, 'reports', 'out', 'index.html')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the report says whether each seed pretrained its own encoders (pretrain.per_seed); the tables do not change', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-report-'));
  try {
    const opts = { encoders: ['simclr', 'random-resnet18'], budgets: [50], seeds: [0, 1], bootstrap: 10, montages: 0 };
    const protocol = { name: 'test-protocol', file: 'protocols/test.yaml', version: 1, hash: 'test' };
    const shared = join(root, 'shared');
    const own = join(root, 'own');
    await makeResults(shared, { ...opts, protocol: { ...protocol, pretrain_per_seed: false } });
    await makeResults(own, { ...opts, protocol: { ...protocol, pretrain_per_seed: true } });
    const a = join(root, 'ra');
    const b = join(root, 'rb');
    await buildReport(shared, a, { reference, png: false, log: quiet });
    await buildReport(own, b, { reference, png: false, log: quiet });
    const htmlA = readFileSync(join(a, 'index.html'), 'utf8');
    const htmlB = readFileSync(join(b, 'index.html'), 'utf8');
    assert.match(htmlA, /pretraining: one shared by every seed/);
    assert.doesNotMatch(htmlA, /pretraining: one per seed/);
    assert.match(htmlB, /pretraining: one per seed/);
    const tables = listFiles(a).filter((f) => /\.(md|csv)$/.test(f));
    assert.ok(tables.length > 0);
    for (const f of tables) assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a degenerate cell (all test predictions one class) is marked in every table and left out of the mean ± sd', async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-report-degenerate-'));
  try {
    const res = join(root, 'results');
    await makeResults(res, { encoders: ['simclr', 'random-resnet18'], budgets: [350], bootstrap: 10 });
    const files = readdirSync(join(res, 'cells'));
    const read = (f: string) => JSON.parse(readFileSync(join(res, 'cells', f), 'utf8')) as CellRecord;
    // a constant predictor: SimCLR kNN seed 0, and every seed of SimCLR linear (the last one without the flag, as a
    // record written before the flag existed)
    const constant = (f: string, flag: boolean) => {
      const c = read(f);
      const predictions = c.predictions!.map((p) => ({ ...p, pred: 'normal', score: 0.1 }));
      const metrics = evaluate(predictions, { bootstrap: 10, seed: c.key.seed, nTrain: c.key.budget });
      writeFileSync(
        join(res, 'cells', f),
        JSON.stringify({ ...c, predictions, metrics, ...(flag ? { degenerate: true } : {}) }),
      );
    };
    const of = (task: string, seed?: number) =>
      files.filter((f) => {
        const c = read(f);
        return c.key.encoder === 'simclr' && c.key.task === task && (seed === undefined || c.key.seed === seed);
      });
    constant(of('knn', 0)[0], true);
    of('linear').forEach((f, i) => {
      constant(f, i < 2);
    });
    const out = join(root, 'out');
    await buildReport(res, out, { reference, png: false, log: quiet });
    const md1 = readFileSync(join(out, 'tables/table1.md'), 'utf8');
    const row = md1.split('\n').find((l) => l.startsWith('| SimCLR |'))!;
    const knn = meanSd(
      files
        .map(read)
        .filter((c) => c.key.encoder === 'simclr' && c.key.task === 'knn' && c.key.seed !== 0)
        .map((c) => c.metrics!.accuracy),
    );
    assert.ok(
      row.includes(`${knn.mean.toFixed(2)} ± ${knn.sd.toFixed(2)} (`),
      `${row} lacks the mean of the other seeds`,
    );
    assert.match(row, /2\/3 seeds; 1 degenerate \(one class predicted, not in the mean\)/);
    assert.match(row, /degenerate: 3\/3 seeds predicted one class/);
    assert.match(md1, /> Degenerate: a seed whose test predictions are all one class/);
    assert.match(readFileSync(join(out, 'tables/all-results.md'), 'utf8'), /3 degenerate \(one class predicted/);
    assert.match(readFileSync(join(out, 'tables/table1.csv'), 'utf8'), /,degenerate,3,0,/);
    assert.match(readFileSync(join(out, 'tables/table1.tex'), 'utf8'), /degenerate: 3\/3 seeds one class/);

    // the same results without degenerate cells: no mark and no note
    const clean = join(root, 'clean');
    await makeResults(clean, { encoders: ['simclr', 'random-resnet18'], budgets: [350], bootstrap: 10 });
    await buildReport(clean, join(root, 'out-clean'), { reference, png: false, log: quiet });
    assert.ok(!/degenerate/i.test(readFileSync(join(root, 'out-clean', 'tables/table1.md'), 'utf8')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
