/**
 * `qcbench report`: rebuilds every table, chart and the HTML report from a results directory. A pure function of
 * the results (and the paper's reference table): the same results always give byte-identical tables and charts.
 *
 * Output layout (`--out`, default `reports/out/`):
 * ```
 * index.html                          self-contained report (works offline)
 * tables/table{1,2,3}.{md,csv,tex}    the paper's Tables 1–3 with the paper's figures beside ours
 * tables/all-results.{md,csv}         every (encoder × task × budget × test set) group
 * tables/cells.csv                    every cell (per seed) with bootstrap intervals
 * tables/recall-by-type.{md,csv}      recall of abnormal images per artefact type (when types are known)
 * charts/<name>.{vl.json,svg,png}     Vega-Lite specs and their renderings
 * ```
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EXIT, QcbError } from '../errors.js';
import { aggregate } from '../reports/aggregate.js';
import { buildCharts } from '../reports/charts.js';
import { buildHtml, type Montage } from '../reports/html.js';
import { loadResults } from '../reports/load.js';
import { loadReference, Reference } from '../reports/reference.js';
import { renderSvg, svgToPng } from '../reports/render.js';
import {
  buildRecallTable,
  buildTables,
  cellsCsv,
  groupsCsv,
  groupsMarkdown,
  recallCsv,
  recallMarkdown,
  tableCsv,
  tableLatex,
  tableMarkdown,
} from '../reports/tables.js';
import { writeFileAtomic } from '../util/fs.js';
import { logger as defaultLogger, type Logger } from '../util/log.js';
import type { Command } from './types.js';

/** The paper's Tables 1–3 as shipped beside the repository (`../shared/reference/` from the repo root). */
export const DEFAULT_REFERENCE = fileURLToPath(
  new URL('../../../shared/reference/masud2022_tables.csv', import.meta.url),
);

/** At most this many montages are inlined in the HTML (one per group, lowest seed first), to keep it small. */
const MAX_MONTAGES = 60;

export interface ReportOptions {
  /** Paper reference CSV (default DEFAULT_REFERENCE; when the default is absent the report has no paper figures). */
  reference?: string;
  /** Render PNGs beside the SVGs (default true). */
  png?: boolean;
  /** Write index.html (default true). */
  html?: boolean;
  log?: Logger;
}

export interface ReportSummary {
  outDir: string;
  /** Written files, relative to outDir, sorted. */
  files: string[];
  counts: { done: number; failed: number; skipped: number; pending: number; total: number };
  tables: string[];
  charts: string[];
  /** Vega-Lite compile warnings, per chart. */
  warnings: string[];
  seconds: number;
}

/**
 * Builds the report of `resultsDir` into `outDir`. Files of earlier reports that this build no longer produces
 * (e.g. a chart for a budget that was removed) are deleted from outDir/tables and outDir/charts; nothing else is.
 */
export async function buildReport(
  resultsDir: string,
  outDir: string,
  opts: ReportOptions = {},
): Promise<ReportSummary> {
  const t0 = Date.now();
  const log = opts.log ?? defaultLogger;
  const res = loadResults(resultsDir);
  const notes: string[] = [];
  let ref: Reference;
  if (opts.reference !== undefined || existsSync(DEFAULT_REFERENCE)) {
    ref = loadReference(opts.reference ?? DEFAULT_REFERENCE);
  } else {
    ref = new Reference([], '');
    const msg = `the paper's reference table was not found at ${DEFAULT_REFERENCE}; the report shows no paper figures`;
    log.warn(msg, { fix: 'pass --reference FILE (masud2022_tables.csv)' });
    notes.push(`${msg}. Pass --reference FILE to add them.`);
  }
  const agg = aggregate(res);
  const tables = buildTables(agg, ref);
  const charts = buildCharts(agg, ref, res.pretrain);
  const written = new Map<string, string | Uint8Array>();
  const put = (rel: string, data: string | Uint8Array) => written.set(rel, data);

  for (const t of tables) {
    put(`tables/${t.id}.md`, tableMarkdown(t));
    put(`tables/${t.id}.csv`, tableCsv(t));
    put(`tables/${t.id}.tex`, tableLatex(t));
  }
  put('tables/all-results.md', groupsMarkdown(agg, ref));
  put('tables/all-results.csv', groupsCsv(agg, ref));
  put('tables/cells.csv', cellsCsv(res.cells));
  const recall = buildRecallTable(agg);
  if (recall) {
    put('tables/recall-by-type.md', recallMarkdown(recall));
    put('tables/recall-by-type.csv', recallCsv(recall));
  }

  const warnings: string[] = [];
  const png = opts.png ?? true;
  // PNG rasterising runs on sharp's thread pool while vega lays out the next chart on the main thread
  const pngs: Promise<void>[] = [];
  for (const ch of charts) {
    put(`charts/${ch.name}.vl.json`, `${JSON.stringify(ch.spec, null, 2)}\n`);
    const { svg, warnings: w } = await renderSvg(ch.spec, ch.name);
    for (const x of w) warnings.push(`${ch.name}: ${x}`);
    put(`charts/${ch.name}.svg`, svg);
    if (png) {
      put(`charts/${ch.name}.png`, new Uint8Array());
      pngs.push(
        svgToPng(svg).then((b) => {
          put(`charts/${ch.name}.png`, b);
        }),
      );
    }
  }
  await Promise.all(pngs);

  if (opts.html ?? true) {
    const { montages, montageNotes } = collectMontages(
      res.dir,
      agg.groups.flatMap((g) => g.done),
    );
    const html = buildHtml({
      run: res.run,
      agg,
      tables,
      recall,
      charts,
      montages,
      montageNotes,
      notes: [...notes, ...tables.flatMap((t) => t.notes.filter((n) => n.startsWith('Data differ'))).slice(0, 1)],
      tableFiles: (id) =>
        (id === 'all-results' || id === 'recall-by-type' ? ['md', 'csv'] : ['md', 'csv', 'tex']).map((e) => ({
          label: e.toUpperCase() === 'TEX' ? 'LaTeX' : e === 'md' ? 'Markdown' : 'CSV',
          href: `tables/${id}.${e}`,
        })),
      chartFiles: (name) => [
        { label: 'Vega-Lite', href: `charts/${name}.vl.json` },
        { label: 'SVG', href: `charts/${name}.svg` },
        ...(png ? [{ label: 'PNG', href: `charts/${name}.png` }] : []),
      ],
    });
    put('index.html', html);
  }

  for (const [rel, data] of written) writeFileAtomic(join(outDir, rel), data);
  removeStale(outDir, new Set(written.keys()));
  const seconds = (Date.now() - t0) / 1000;
  const summary: ReportSummary = {
    outDir,
    files: [...written.keys()].sort(),
    counts: agg.counts,
    tables: tables.map((t) => t.id),
    charts: charts.map((c) => c.name),
    warnings,
    seconds,
  };
  log.info('report written', {
    out: outDir,
    tables: summary.tables.length,
    charts: summary.charts.length,
    cells: agg.counts.total,
    failed: agg.counts.failed,
    skipped: agg.counts.skipped,
    pending: agg.counts.pending,
    seconds: Number(seconds.toFixed(1)),
  });
  return summary;
}

/** One montage per group (lowest seed), in report order, at most MAX_MONTAGES; notes say what is left out or missing. */
function collectMontages(
  dir: string,
  done: import('../runner/results.js').CellRecord[],
): { montages: Montage[]; montageNotes: string[] } {
  const withMontage = done.filter((c) => c.montage);
  const notes: string[] = [];
  if (!withMontage.length) {
    notes.push(
      'This results directory has no montages of misclassified crops (montages/*.png): the runner did not write any for these cells.',
    );
    return { montages: [], montageNotes: notes };
  }
  const seen = new Set<string>();
  const firstPerGroup = withMontage.filter((c) => {
    const k = `${c.key.encoder}|${c.key.task}|${c.key.train_set}|${c.key.test_set}|${c.key.budget}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const montages: Montage[] = [];
  const missing: string[] = [];
  for (const c of firstPerGroup) {
    if (montages.length >= MAX_MONTAGES) break;
    const file = resolve(dir, c.montage!);
    if (!existsSync(file)) {
      missing.push(c.montage!);
      continue;
    }
    montages.push({ cell: c, dataUrl: `data:image/png;base64,${readFileSync(file).toString('base64')}` });
  }
  notes.push(
    `Crops of the test set that the classifier got wrong, one montage per setting (lowest seed shown; ${withMontage.length} montage${withMontage.length === 1 ? '' : 's'} in the results directory's montages/).`,
  );
  if (firstPerGroup.length > MAX_MONTAGES) notes.push(`Only the first ${MAX_MONTAGES} settings are shown here.`);
  if (missing.length) notes.push(`Montage files referenced by cells but missing: ${missing.sort().join(', ')}.`);
  return { montages, montageNotes: notes };
}

/** Deletes report files of an earlier build that this build did not write (only in tables/ and charts/). */
function removeStale(outDir: string, keep: Set<string>): void {
  for (const sub of ['tables', 'charts']) {
    const d = join(outDir, sub);
    if (!existsSync(d) || !statSync(d).isDirectory()) continue;
    for (const f of readdirSync(d)) {
      const rel = `${sub}/${f}`;
      if (!keep.has(rel) && /\.(md|csv|tex|vl\.json|svg|png)$/.test(f)) rmSync(join(d, f), { force: true });
    }
  }
}

/** `results/<name>/` when it is the only run under ./results. */
function defaultResultsDir(): string {
  const root = resolve('results');
  const runs = existsSync(root)
    ? readdirSync(root)
        .filter((d) => existsSync(join(root, d, 'run.json')))
        .sort()
    : [];
  if (runs.length === 1) return join(root, runs[0]);
  if (runs.length === 0) {
    throw new QcbError('QCB_FILE_NOT_FOUND', 'no results directory found under ./results', {
      key: '--results',
      fix: 'run a protocol first (qcbench run protocols/quick.yaml) or pass --results DIR',
    });
  }
  throw new QcbError('QCB_USAGE', `several runs under ./results: ${runs.join(', ')}`, {
    key: '--results',
    allowed: runs.map((r) => `results/${r}`).join(', '),
    fix: `pass --results results/${runs[0]} (or another of them)`,
  });
}

const usage = `qcbench report [--results DIR] [--out DIR] [--reference FILE] [--no-png] [--json]

Rebuilds Tables 1–3 of Masud et al. 2022 (Markdown, CSV, LaTeX) with the paper's figure beside each of ours,
the Vega-Lite charts (.vl.json, SVG, PNG) and one self-contained HTML report from a results directory.
The same results always give byte-identical tables.

  --results DIR      results directory of a run (default: the only run under ./results)
  --out DIR          output directory (default: reports/out)
  --reference FILE   the paper's tables as CSV (default: ../shared/reference/masud2022_tables.csv)
  --no-png           skip PNG rendering (SVG and Vega-Lite only)
  --json             print the summary as JSON on stdout

See reports/README.md for how to read the report.`;

export const command: Command = {
  name: 'report',
  summary: 'rebuild tables, charts and the HTML report from a results directory',
  usage,
  async run(args, ctx) {
    let values: {
      results?: string;
      out?: string;
      reference?: string;
      'no-png'?: boolean;
      json?: boolean;
      help?: boolean;
    };
    try {
      ({ values } = parseArgs({
        args,
        options: {
          results: { type: 'string' },
          out: { type: 'string' },
          reference: { type: 'string' },
          'no-png': { type: 'boolean', default: false },
          json: { type: 'boolean', default: false },
          help: { type: 'boolean', short: 'h', default: false },
        },
        allowPositionals: false,
      }));
    } catch (e) {
      throw new QcbError('QCB_USAGE', (e as Error).message, { fix: `usage: ${usage.split('\n')[0]}` });
    }
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return EXIT.ok;
    }
    const results = values.results ? resolve(values.results) : defaultResultsDir();
    const out = resolve(values.out ?? join('reports', 'out'));
    const summary = await buildReport(results, out, {
      reference: values.reference,
      png: !values['no-png'],
      log: ctx.log,
    });
    if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else {
      ctx.log.info(`report: ${join(out, 'index.html')}`);
      if (summary.counts.failed)
        ctx.log.warn(`${summary.counts.failed} cell(s) failed: see the report's "Failed cells"`);
      if (summary.counts.skipped) ctx.log.warn(`${summary.counts.skipped} cell(s) skipped: the tables name the fix`);
    }
    return EXIT.ok;
  },
};
