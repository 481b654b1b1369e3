/**
 * The report: rebuilds every table, chart and the HTML report from a results directory. A pure function of
 * the results (and the paper's reference table): the same results always give byte-identical tables and charts.
 *
 * Output layout (`--out`, default `reports/out/`):
 * ```
 * index.html                          self-contained report (works offline)
 * tables/table{1,2,3}.{md,csv,tex}    the paper's Tables 1–3 with the paper's figures beside ours
 * tables/all-results.{md,csv}         every (encoder × task × budget × test set) group
 * tables/cells.csv                    every cell (per seed) with bootstrap intervals
 * tables/recall-by-type.{md,csv}      recall of abnormal images per artefact type (when types are known)
 * tables/second-order.{md,csv}        the paper's planar second-order tests per network over seeds (when stored)
 * tables/second-order-qc.{md,csv}     quadratic head / second-order CNN against their first-order twins
 * charts/<name>.{vl.json,svg,png}     Vega-Lite specs and their renderings, including the second-order decision
 *                                     maps (second-order-<experiment>-<network>)
 * charts/misclassified-crops.vl.json  the montages as a Vega-Lite figure of image marks (no SVG/PNG of its own)
 * montages/<cellId>.png               full-resolution copies of the montages that figure shows (URLs relative to the
 *                                     report folder); index.html inlines downscaled JPEG previews and links these
 * ```
 * Second-order results are read from `<results>/second-order/`, where `qcbench second-order spirals|rings --out`
 * writes them (src/reports/second-order.ts).
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aggregate } from './aggregate.js';
import { buildCharts } from './charts.js';
import { buildHtml } from './html.js';
import { loadResults } from './load.js';
import { collectMontages, montageChart, montagePreviews } from './montages.js';
import { loadReference, Reference } from './reference.js';
import { renderSvg, svgToPng } from '../render/vega.js';
import {
  loadSecondOrder,
  qcPairsCsv,
  qcPairsMarkdown,
  secondOrderCharts,
  secondOrderCsv,
  secondOrderMarkdown,
  secondOrderQcPairs,
  secondOrderRows,
} from './second-order.js';
import { cellsCsv, groupsCsv, recallCsv, tableCsv } from './tables/csv.js';
import { tableLatex } from './tables/latex.js';
import { groupsMarkdown, recallMarkdown, tableMarkdown } from './tables/markdown.js';
import { buildRecallTable, buildTables } from './tables/model.js';
import { writeFileAtomic } from '../util/fs.js';
import { logger as defaultLogger, type Logger } from '../util/log.js';

/**
 * The paper's Tables 1–3, shipped inside the package (`reports/reference/`, in package.json `files`) so that a report
 * made in a fresh clone or an installed copy shows the paper's column.
 */
export const DEFAULT_REFERENCE = fileURLToPath(
  new URL('../../reports/reference/masud2022_tables.csv', import.meta.url),
);

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
 * (e.g. a chart for a budget that was removed) are deleted from outDir/tables, outDir/charts and outDir/montages;
 * nothing else is.
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
  const so = loadSecondOrder(res.dir);
  const soRows = secondOrderRows(so);
  const soPairs = secondOrderQcPairs(agg);
  const soCharts = secondOrderCharts(so);
  const { montages, notes: montageNotes } = collectMontages(
    res.dir,
    agg.groups.flatMap((g) => g.done),
  );
  // the JPEG previews index.html inlines are encoded on sharp's thread pool while the charts render below
  const previews = montagePreviews(montages);
  previews.catch(() => {}); // awaited below; this only keeps an early failure from being an unhandled rejection
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
  if (soRows.length) {
    put('tables/second-order.md', secondOrderMarkdown(soRows));
    put('tables/second-order.csv', secondOrderCsv(soRows));
  }
  if (soPairs.length) {
    put('tables/second-order-qc.md', qcPairsMarkdown(soPairs));
    put('tables/second-order-qc.csv', qcPairsCsv(soPairs));
  }
  for (const m of montages) put(m.href, m.png);

  const warnings: string[] = [];
  const png = opts.png ?? true;
  // PNG rasterising runs on sharp's thread pool while vega lays out the next chart on the main thread
  const pngs: Promise<void>[] = [];
  for (const ch of [...charts, ...soCharts]) {
    put(`charts/${ch.name}.vl.json`, `${JSON.stringify(ch.spec, null, 2)}\n`);
    if (ch.specOnly) continue;
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
  const montageFig = montageChart(montages, await previews);
  if (montageFig) put(`charts/${montageFig.name}.vl.json`, `${JSON.stringify(montageFig.spec, null, 2)}\n`);
  const allCharts = [...charts, ...(montageFig ? [montageFig] : []), ...soCharts];

  if (opts.html ?? true) {
    const html = buildHtml({
      run: res.run,
      agg,
      tables,
      recall,
      charts,
      montageChart: montageFig,
      montageNotes,
      montageFiles: montages.map((m) => ({ label: m.label, href: m.href })),
      secondOrder:
        soRows.length || soPairs.length || so.notes.length
          ? {
              rows: soRows,
              qc: soPairs,
              charts: soCharts,
              notes: [
                ...so.notes,
                ...(soRows.length
                  ? []
                  : [
                      "The paper's planar tests (two spirals, concentric rings) are not in this results directory: `qcbench second-order spirals --out <results>/second-order` (and `rings`) adds them and their decision maps to this section.",
                    ]),
              ],
            }
          : undefined,
      notes: [...notes, ...tables.flatMap((t) => t.notes.filter((n) => n.startsWith('Data differ'))).slice(0, 1)],
      tableFiles: (id) =>
        (/^table\d$/.test(id) ? ['md', 'csv', 'tex'] : ['md', 'csv']).map((e) => ({
          label: e.toUpperCase() === 'TEX' ? 'LaTeX' : e === 'md' ? 'Markdown' : 'CSV',
          href: `tables/${id}.${e}`,
        })),
      chartFiles: (ch) =>
        ch.specOnly
          ? [{ label: 'Vega-Lite', href: `charts/${ch.name}.vl.json` }]
          : [
              { label: 'Vega-Lite', href: `charts/${ch.name}.vl.json` },
              { label: 'SVG', href: `charts/${ch.name}.svg` },
              ...(png ? [{ label: 'PNG', href: `charts/${ch.name}.png` }] : []),
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
    charts: allCharts.map((c) => c.name),
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

/** Deletes report files of an earlier build that this build did not write (only in tables/, charts/, montages/). */
function removeStale(outDir: string, keep: Set<string>): void {
  for (const sub of ['tables', 'charts', 'montages']) {
    const d = join(outDir, sub);
    if (!existsSync(d) || !statSync(d).isDirectory()) continue;
    for (const f of readdirSync(d)) {
      const rel = `${sub}/${f}`;
      if (!keep.has(rel) && /\.(md|csv|tex|vl\.json|svg|png)$/.test(f)) rmSync(join(d, f), { force: true });
    }
  }
}

/** Where runs write by default (the protocol's `workdir`, `.qcbench`, + `results/<protocol name>`). */
