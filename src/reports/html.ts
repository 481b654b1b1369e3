/**
 * The self-contained HTML report: reading guide, Tables 1–3, every chart (rendered in the page by vega-embed from the
 * inlined Vega-Lite specs), the montages of misclassified crops (a Vega-Lite figure of image marks with downscaled
 * JPEG previews inlined as data URLs, each linking to its full-resolution PNG in `montages/` beside index.html) and,
 * when the results hold them, the second-order neurons (tables and decision maps).
 * vega, vega-lite and vega-embed are read from node_modules and inlined, so the file opens offline, from a mail
 * attachment or a USB stick, and stays small enough to e-mail (`qcbench bench report` measures it).
 */
import { escapeHtml } from '../util/html.js';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { RunRecord } from '../results/schema.js';
import type { Aggregate } from './aggregate.js';
import type { Chart } from './charts.js';
import { KIND_LABELS, METRIC_LABELS, METRICS } from './reference.js';
import {
  fmtAccuracy,
  fmtIterations,
  QC_PAIR_HEADER,
  type QcPair,
  qcPairCells,
  type SecondOrderRow,
} from './second-order.js';
import { fmt, fmtDiff, fmtOurs } from './tables/format.js';
import { degenerateText, type RecallTable, type TableCell, type TableModel, taskTitle } from './tables/model.js';

/** The "Second-order neurons" section (src/reports/second-order.ts). */
export interface SecondOrderHtml {
  /** The paper's planar tests: one row per experiment and network. */
  rows: SecondOrderRow[];
  /** Second-order models of the QC benchmark beside their first-order twins. */
  qc: QcPair[];
  /** Decision maps. */
  charts: Chart[];
  notes: string[];
}

export interface HtmlInput {
  run?: RunRecord;
  agg: Aggregate;
  tables: TableModel[];
  /** Recall of abnormal images per artefact type, when cells recorded types. */
  recall?: RecallTable;
  charts: Chart[];
  /** The montages of misclassified crops as one Vega-Lite figure (montages.ts), when the run wrote any. */
  montageChart?: Chart;
  /** Sentences about montages (absent, capped, missing files). */
  montageNotes: string[];
  /** The full-resolution montage PNGs beside index.html (relative links), in the figure's order. */
  montageFiles?: { label: string; href: string }[];
  secondOrder?: SecondOrderHtml;
  /** General notes shown at the top (reference missing, data differ, …). */
  notes: string[];
  /** Relative links to the other outputs (tables in md/csv/tex), shown under each table. */
  tableFiles: (id: string) => { label: string; href: string }[];
  chartFiles: (chart: Chart) => { label: string; href: string }[];
}

const esc = escapeHtml;

/** JSON safe inside a <script> element. */
const scriptJson = (v: unknown) =>
  JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');

/** The browser builds of vega, vega-lite and vega-embed (their `unpkg` files), with versions. */
export function vegaLibraries(): { name: string; version: string; code: string }[] {
  const require = createRequire(import.meta.url);
  return ['vega', 'vega-lite', 'vega-embed'].map((name) => {
    let dir = dirname(require.resolve(name));
    // climb from the package entry to the package root
    for (let i = 0; i < 5; i++) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
          name?: string;
          version: string;
          unpkg?: string;
        };
        if (pkg.name === name) {
          const code = readFileSync(join(dir, pkg.unpkg ?? `build/${name}.min.js`), 'utf8');
          return { name, version: pkg.version, code: code.replace(/<\/script/gi, '<\\/script') };
        }
      } catch {
        // not the package root yet
      }
      dir = dirname(dir);
    }
    throw new Error(`cannot locate the browser build of ${name}`);
  });
}

function cellHtml(c: TableCell): string {
  const paper = c.paper === undefined ? '—' : fmt(c.paper);
  const paperBudget = c.paperBudget
    ? ` <span class="pb" title="the paper's figure is for ${c.paperBudget} training images">(${c.paperBudget})</span>`
    : '';
  const ref = `<span class="ref">paper ${paper}${paperBudget}`;
  switch (c.status) {
    case 'done':
    case 'partial': {
      const d =
        c.diff === undefined ? '' : ` · Δ <span class="${c.diff < 0 ? 'neg' : 'pos'}">${fmtDiff(c.diff)}</span>`;
      const partial: string[] = [];
      if (c.status === 'partial') {
        partial.push(`${c.n}/${c.seeds} seeds`);
        if (c.degenerateSeeds) partial.push(degenerateText(c));
        if (c.failures.length) partial.push(`failed: ${c.failures.join(', ')}`);
        if (c.skip) partial.push(`skipped<sup>${c.footnote}</sup>`);
        if (c.pendingSeeds) partial.push(`${c.pendingSeeds} pending`);
      }
      return `<td class="${c.status}"><span class="ours">${esc(fmtOurs(c))}</span>${ref}${d}</span>${
        partial.length
          ? `<span class="warn">${partial.map((p) => (p.includes('<sup>') ? p : esc(p))).join('; ')}</span>`
          : ''
      }</td>`;
    }
    case 'skipped':
      return `<td class="skipped"><span class="st">skipped<sup>${c.footnote}</sup></span>${ref}</span></td>`;
    case 'degenerate':
      return `<td class="degenerate"><span class="st">degenerate: ${c.degenerateSeeds}/${c.seeds} seeds predicted one class</span>${ref}</span></td>`;
    case 'failed':
      return `<td class="failed"><span class="st">failed: ${esc(c.failures.join(', '))}</span>${ref}</span></td>`;
    case 'pending':
      return `<td class="pending"><span class="st">pending</span>${ref}</span></td>`;
    default:
      return `<td class="absent"><span class="st">not run</span>${ref}</span></td>`;
  }
}

function tableHtml(t: TableModel, files: { label: string; href: string }[]): string {
  const out: string[] = [
    `<section class="table" id="${t.id}">`,
    `<h3>${esc(t.title)}</h3>`,
    `<p class="caption">${esc(t.caption)}</p>`,
  ];
  for (const n of t.notes) out.push(`<p class="note">${esc(n)}</p>`);
  out.push('<div class="scroll"><table>', '<thead><tr><th rowspan="2">Encoder</th><th rowspan="2">Kind</th>');
  for (const g of t.columnGroups) out.push(`<th colspan="3" class="group">${esc(g.title)}</th>`);
  out.push('</tr><tr>');
  for (const _ of t.columnGroups) for (const m of METRICS) out.push(`<th>${METRIC_LABELS[m]}</th>`);
  out.push('</tr></thead><tbody>');
  for (const r of t.rows) {
    const kind = r.encoder.kind ? KIND_LABELS[r.encoder.kind] : '?';
    out.push(
      `<tr class="kind-${esc(r.encoder.kind ?? 'unknown')}"><th class="enc">${esc(r.encoder.label)}</th><td class="kind">${esc(kind)}</td>`,
    );
    const allSkipped = r.cells.every((c) => c.status === 'skipped' && c.footnote === r.cells[0].footnote);
    if (allSkipped && r.cells.length) {
      const f = t.footnotes.find((x) => x.n === r.cells[0].footnote);
      out.push(
        `<td class="skipped wide" colspan="${r.cells.length}"><span class="st">skipped: ${esc(f?.reason ?? '')}</span>${
          f?.fix ? ` <span class="fix">fix: <code>${esc(f.fix)}</code></span>` : ''
        }<span class="ref">paper: ${r.cells.map((c) => (c.paper === undefined ? '—' : fmt(c.paper))).join(' / ')}</span></td>`,
      );
    } else {
      for (const c of r.cells) out.push(cellHtml(c));
    }
    out.push('</tr>');
  }
  out.push('</tbody></table></div>');
  if (t.footnotes.length) {
    out.push('<ol class="footnotes">');
    for (const f of t.footnotes) {
      out.push(`<li value="${f.n}">skipped: ${esc(f.reason)}${f.fix ? ` — fix: <code>${esc(f.fix)}</code>` : ''}</li>`);
    }
    out.push('</ol>');
  }
  if (files.length)
    out.push(`<p class="files">${files.map((f) => `<a href="${esc(f.href)}">${esc(f.label)}</a>`).join(' · ')}</p>`);
  out.push('</section>');
  return out.join('\n');
}

function recallHtml(r: RecallTable, files: { label: string; href: string }[]): string {
  const out = [
    '<section class="table" id="recall-by-type"><details><summary><h3 style="display:inline">Recall of abnormal images per artefact type</h3></summary>',
    '<p class="caption">Share of abnormal test images of each type that the classifier flagged (percent, mean ± sd over finished seeds; small: number of such images over all seeds). The missed share is what a QC filter lets through.</p>',
    '<div class="scroll"><table><thead><tr><th>Encoder</th><th>Task</th><th>Train</th><th>Test</th><th>Images</th>',
    ...r.types.map((t) => `<th>${esc(t)}</th>`),
    '</tr></thead><tbody>',
  ];
  for (const { group: g, recall } of r.rows) {
    out.push(
      `<tr class="kind-${esc(g.kind ?? 'unknown')}"><th class="enc">${esc(g.label)}</th><td class="kind">${esc(taskTitle(g.key.task))}</td><td class="kind">${esc(g.key.train_set)}</td><td class="kind">${esc(g.key.test_set)}</td><td>${g.key.budget}</td>`,
    );
    for (const t of r.types) {
      const x = recall[t];
      out.push(
        x
          ? `<td><span class="ours">${Number.isFinite(x.sd) ? `${fmt(x.mean)} ± ${fmt(x.sd)}` : fmt(x.mean)}</span><span class="ref">${x.images} images</span></td>`
          : '<td>—</td>',
      );
    }
    out.push('</tr>');
  }
  out.push('</tbody></table></div></details>');
  if (files.length)
    out.push(`<p class="files">${files.map((f) => `<a href="${esc(f.href)}">${esc(f.label)}</a>`).join(' · ')}</p>`);
  out.push('</section>');
  return out.join('\n');
}

/**
 * What the ± sd over seeds spans (protocol `pretrain.per_seed`, from the run record): with one pretraining per seed it
 * includes pretraining and initialisation variance, with one shared pretraining (the paper's) it does not.
 */
function seedsNote(run: RunRecord | undefined): string {
  const perSeed = run?.protocol.pretrain_per_seed ?? false;
  return perSeed
    ? 'pretraining: one per seed (each seed pretrains the SSL encoders and initialises the control itself; ± sd includes that variance)'
    : "pretraining: one shared by every seed (the paper's; ± sd is over label sampling and head training only)";
}

function readingGuide(run: RunRecord | undefined): string {
  return `<section id="guide">
<h2>How to read this report</h2>
<p><b>The question.</b> Which image encoder should a screening lab use to flag abnormal images (out of focus, debris,
saturation, dead or floating cells) when only a few hundred crops are annotated? Each encoder turns a single-cell crop
into a feature vector; three downstream classifiers, trained on the small annotated set only, then separate normal from
abnormal crops (Masud et al. 2022, §3.3): <b>kNN</b> (k = 5) on the frozen features, a <b>linear layer</b> on the frozen
encoder, and a linear layer with the whole encoder <b>fine-tuned</b>.</p>
<p><b>Transfer learning (TL) against self-supervised learning (SSL).</b> TL encoders (VGG16, ResNet18, ConvNext) were
pretrained on ImageNet's labelled natural images and are used as they are. SSL encoders (SimCLR, Barlow Twins, VICReg,
DeepClusterV2, SwAV; all a ResNet18) are pretrained on the screen's own unlabelled crops, which costs a pretraining run
and its hyperparameters. Rows the paper does not have: a <b>random-init control</b> (an untrained ResNet18: any useful
pretraining must beat it) and <b>ResNet18 (FractalDB)</b>, supervised transfer from generated fractal images, which needs
no download.</p>
<p><b>The incumbent: CellProfiler image quality (hand-made).</b> Hand-made QC metrics (CellProfiler MeasureImageQuality),
standardised, kNN / linear: per crop and channel FocusScore, LocalFocusScore, Correlation, PowerLogLogSlope,
PercentMaximal / PercentMinimal and the intensity statistics, as CellProfiler computes them, z-scored with the training
crops' means and sds, then the same kNN and linear layer as the encoders. This is what screening labs run today; a deep
encoder is worth its cost only where it beats this row. It has no network, so fine-tuning does not apply: its
fine-tuning cells are skipped as <i>n/a</i>.</p>
<p><b>Numbers.</b> Accuracy, F1 and ROC AUC, each a support-weighted average over the two classes, in percent (§3.4);
F1 is the paper's main metric. Each of our cells is the mean ± sample sd over seeds (label-budget sampling and training
seeds; ${esc(seedsNote(run))}); beside it is the paper's figure and the difference Δ = ours − paper. Per-seed values with bootstrap 95%
intervals are in <code>tables/cells.csv</code>.</p>
<p><b>What the paper found.</b> TL beat every SSL method in every setting. Frozen encoder (Table 1): ConvNext with a
linear layer reached 98.47% accuracy, the best SSL method (DeepClusterV2) 94.57%, and VICReg with kNN only 76.30%.
Fine-tuning on 350 images (Table 2) brought SSL close (SimCLR 98.44%), but with fewer labels SSL fell behind again
(10 images: best SSL SimCLR 84.89%, TL 93.75–96.87%). Under domain shift to BBBC021 (Table 3) TL held up (ConvNext
98.66%) while the best SSL methods dropped to 73.66% (SimCLR) and 72.32% (DeepClusterV2).</p>
<p><b>Caveats.</b> The paper reports one run per cell on 130 test images (one image ≈ 0.8 percentage points), so
differences of a few points are within noise; compare rankings and gaps between TL and SSL rather than single numbers.
Its AUCs sit close to its accuracies, which suggests they came from hard predictions; ours use the classifier's
abnormal score. When this run used other data than BBBC022/BBBC021 (e.g. the synthetic screen of the quick protocol),
the paper's figures are shown for orientation only. Skipped cells (e.g. ImageNet weights absent) name their reason and
the command that fixes them.</p>
</section>`;
}

function secondOrderHtml(
  so: SecondOrderHtml,
  figure: (ch: Chart) => string,
  tableFiles: (id: string) => { label: string; href: string }[],
): string {
  const files = (id: string) => {
    const f = tableFiles(id);
    return f.length
      ? `<p class="files">${f.map((x) => `<a href="${esc(x.href)}">${esc(x.label)}</a>`).join(' · ')}</p>`
      : '';
  };
  const out: string[] = ['<section id="second-order"><h2>Second-order neurons</h2>'];
  out.push(
    "<p>Second-order (quadratic) neurons (Fan, Cong &amp; Wang 2017) replace a neuron's inner product by a quadratic form, <code>(w<sub>r</sub>·x + b<sub>r</sub>)(w<sub>g</sub>·x + b<sub>g</sub>) + w<sub>b</sub>·x² + c</code>, before the activation. Below: the paper's two planar tests over seeds with their decision maps, and what the quadratic head and the small second-order CNN do in the QC benchmark against their first-order twins.</p>",
  );
  for (const n of so.notes) out.push(`<p class="note">${esc(n)}</p>`);
  if (so.rows.length) {
    out.push(
      '<section class="table" id="second-order-planar"><h3>The paper\'s planar tests: training accuracy per network over seeds</h3>',
      '<p class="caption">Two spirals (194 points) and four concentric rings (240 points), full-batch gradient descent. Training accuracy in percent, mean ± sd [min, max] over seeds; iterations = updates until the target accuracy was first reached, median (mean) [min, max] over the seeds that reached it (runs stop there).</p>',
      '<div class="scroll"><table><thead><tr><th class="l">Experiment</th><th class="l">Network</th><th>Seeds</th><th>Reached target</th><th>Training accuracy (%)</th><th>Iterations to target</th><th>Budget</th></tr></thead><tbody>',
    );
    for (const r of so.rows) {
      out.push(
        `<tr><td class="l">${esc(r.experiment)}: ${esc(r.title)} <span class="ref">target ${r.target}%, ${esc(r.backend)} backend</span></td><th class="enc">${esc(r.network)}</th><td>${r.seeds}</td><td>${r.converged}/${r.seeds}</td><td>${esc(fmtAccuracy(r.accuracy))}</td><td>${esc(fmtIterations(r.iterations))}</td><td>${r.budget ?? '—'}</td></tr>`,
      );
    }
    out.push('</tbody></table></div>', files('second-order'), '</section>');
  }
  if (so.charts.length) {
    out.push(
      '<h3>Decision maps</h3>',
      '<p class="caption">Each network\'s output over the plane for its most accurate seed, with the training points on top, as the paper\'s Figs. 3–5.</p>',
      '<div class="maps">',
    );
    for (const ch of so.charts) out.push(figure(ch));
    out.push('</div>');
  }
  if (so.qc.length) {
    out.push(
      '<section class="table" id="second-order-qc"><h3>In the QC benchmark: second-order against first-order twins</h3>',
      '<p class="caption">Percent, mean ± sd over finished seeds; Δ = second-order − first-order. Quadratic head: one layer of quadratic neurons on the frozen encoder beside the linear probe on the same features. Second-order CNN: <code>soq-cnn</code> (the paper\'s Fig. 6 network) beside its first-order twin <code>foq-cnn</code>, both trained from scratch.</p>',
      `<div class="scroll"><table><thead><tr>${QC_PAIR_HEADER.map((h, i) => `<th${i < 2 ? ' class="l"' : ''}>${esc(h)}</th>`).join('')}</tr></thead><tbody>`,
    );
    for (const p of so.qc) {
      const cells = qcPairCells(p);
      out.push(
        `<tr>${cells.map((v, i) => (i < 2 ? `<td class="l">${esc(v)}</td>` : `<td>${esc(v)}</td>`)).join('')}</tr>`,
      );
    }
    out.push('</tbody></table></div>', files('second-order-qc'), '</section>');
  }
  out.push('</section>');
  return out.join('\n');
}

const CSS = `
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;color:#222;max-width:1280px;margin:24px auto;padding:0 20px;line-height:1.45;font-size:14px}
h1{font-weight:normal;font-size:26px;margin-bottom:4px}h2{font-weight:normal;font-size:20px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:36px}
h3{font-weight:normal;font-size:16px;margin-bottom:4px}.meta{color:#555}.note{color:#7a4b00;background:#fff8e6;border-left:3px solid #e0a800;padding:6px 10px;margin:6px 0}
.counts span{display:inline-block;margin-right:14px}.counts .failed b{color:#b00020}.counts .skipped b{color:#8a6d00}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:12.5px;margin:8px 0}th,td{padding:4px 8px;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top;white-space:nowrap}
thead th{border-bottom:1px solid #999;font-weight:normal;color:#333}thead th[rowspan]{text-align:left;vertical-align:bottom}th.group{text-align:center;border-bottom:1px solid #ccc}th.enc,td.kind{text-align:left}td.kind{color:#666}
tr.kind-ssl th.enc{color:#1a4f8a}tr.kind-control th.enc,tr.kind-supervised-synthetic th.enc{font-style:italic}
.ours{display:block;font-variant-numeric:tabular-nums}.ref{display:block;color:#777;font-size:11px}.neg{color:#b00020}.pos{color:#1b7f3b}.pb{color:#999}
.warn{display:block;color:#b00020;font-size:11px}td.skipped .st,td.pending .st,td.absent .st{color:#8a6d00}td.failed .st{color:#b00020}td.wide{text-align:left;white-space:normal}
.fix code,.footnotes code{background:#f3f3f3;padding:1px 4px;border-radius:3px}.footnotes{font-size:12px;color:#555}.files{font-size:12px}
figure{margin:22px 0;page-break-inside:avoid}figcaption{font-size:13px;color:#444;max-width:900px}.chart{min-height:60px}
td.l,th.l{text-align:left}.maps{display:flex;flex-wrap:wrap;gap:0 28px}.maps figure{max-width:560px}
footer{margin-top:40px;color:#777;font-size:12px;border-top:1px solid #ddd;padding-top:8px}
@media print{body{max-width:none}.files{display:none}}
`;

/** The whole report page. Pure: the same input gives the same bytes. */
export function buildHtml(input: HtmlInput): string {
  const { run, agg } = input;
  const libs = vegaLibraries();
  const name = run?.protocol.name ?? 'results';
  const c = agg.counts;
  const parts: string[] = [];
  parts.push('<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">');
  parts.push(`<title>qcbench report — ${esc(name)}</title>`);
  parts.push('<meta name="viewport" content="width=device-width, initial-scale=1">');
  parts.push(`<style>${CSS}</style>`);
  for (const l of libs)
    parts.push(`<script>/* ${l.name} ${l.version} (BSD-3-Clause), inlined for offline use */\n${l.code}\n</script>`);
  parts.push('</head>', '<body>');
  parts.push(`<h1>qcbench report — ${esc(name)}</h1>`);
  const meta: string[] = [];
  if (run) {
    meta.push(
      `protocol <code>${esc(run.protocol.file)}</code> (version ${run.protocol.version}, hash ${esc(run.protocol.hash.slice(0, 12))})`,
    );
    // no run timestamps: a sharded and an unsharded run of the same protocol give the same report
    meta.push(`qcbench ${esc(run.qcbench_version)}`);
  }
  meta.push(esc(seedsNote(run)));
  meta.push(
    `training sets: ${esc(agg.trainSets.join(', '))}; test sets: ${esc(agg.testSets.join(', '))}; seeds: ${agg.seeds.join(', ')}`,
  );
  parts.push(`<p class="meta">${meta.join(' · ')}</p>`);
  parts.push(
    `<p class="counts"><span>cells: <b>${c.total}</b></span><span>done: <b>${c.done}</b></span><span class="failed">failed: <b>${c.failed}</b></span><span class="skipped">skipped: <b>${c.skipped}</b></span><span>pending: <b>${c.pending}</b></span></p>`,
  );
  for (const n of input.notes) parts.push(`<p class="note">${esc(n)}</p>`);
  const failed = agg.groups.flatMap((g) => g.failed);
  if (failed.length) {
    parts.push('<details class="failures"><summary>Failed cells</summary><ul>');
    for (const f of failed) {
      const k = f.key;
      parts.push(
        `<li>${esc(f.encoder_label)} · ${esc(taskTitle(k.task))} · ${k.budget} images · seed ${k.seed} · ${esc(k.test_set)}: <b>${esc(f.error?.code ?? 'error')}</b> ${esc(f.error?.message ?? '')}${f.error?.fix ? ` — fix: ${esc(f.error.fix)}` : ''}</li>`,
      );
    }
    parts.push('</ul></details>');
  }
  parts.push(readingGuide(run));
  parts.push('<section id="tables"><h2>Tables</h2>');
  if (!input.tables.length) parts.push('<p>No finished, failed or skipped cells match Tables 1–3 yet.</p>');
  for (const t of input.tables) parts.push(tableHtml(t, input.tableFiles(t.id)));
  if (input.recall) parts.push(recallHtml(input.recall, input.tableFiles('recall-by-type')));
  const allFiles = input.tableFiles('all-results');
  parts.push(
    `<p class="files">Every group of cells (all tasks, budgets and test sets): ${allFiles.map((f) => `<a href="${esc(f.href)}">${esc(f.label)}</a>`).join(' · ')}</p>`,
  );
  parts.push('</section>');
  // every Vega-Lite figure of the page, in order of appearance: chart-<i> is embedded[i]
  const embedded: Chart[] = [];
  const figure = (ch: Chart) => {
    const i = embedded.length;
    embedded.push(ch);
    const files = input
      .chartFiles(ch)
      .map((f) => `<a href="${esc(f.href)}">${esc(f.label)}</a>`)
      .join(' · ');
    return `<figure id="fig-${esc(ch.name)}"><div class="chart" id="chart-${i}" data-chart="${esc(ch.name)}"></div><figcaption><b>Figure ${i + 1}.</b> ${esc(ch.caption)}${files ? ` <span class="files">(${files})</span>` : ''}</figcaption></figure>`;
  };
  parts.push('<section id="figures"><h2>Figures</h2>');
  if (!input.charts.length) parts.push('<p>No finished cells to plot yet.</p>');
  for (const ch of input.charts) parts.push(figure(ch));
  parts.push('</section>');
  if (c.total > 0 || input.montageChart) {
    parts.push('<section id="montages"><h2>Misclassified crops</h2>');
    for (const n of input.montageNotes) parts.push(`<p>${esc(n)}</p>`);
    if (input.montageChart) parts.push(figure(input.montageChart));
    const mf = input.montageFiles ?? [];
    if (mf.length) {
      parts.push(
        `<details class="files"><summary>Full-resolution montages (${mf.length} PNG file${mf.length === 1 ? '' : 's'} in <code>montages/</code> beside this page)</summary>`,
        '<p>The figure shows reduced JPEG previews so that this page stays small enough to e-mail; the PNGs open only where the <code>montages/</code> folder sits next to index.html.</p>',
        `<ul>${mf.map((f) => `<li><a href="${esc(f.href)}">${esc(f.label)}</a></li>`).join('')}</ul></details>`,
      );
    }
    parts.push('</section>');
  }
  if (input.secondOrder) parts.push(secondOrderHtml(input.secondOrder, figure, input.tableFiles));
  parts.push(
    `<footer>Generated by <code>qcbench report</code> from the results directory alone (the same results give the same report). Charts: ${libs.map((l) => `${l.name} ${l.version}`).join(', ')}. Reference: Masud, Cohen, Bendidi, Bollot, Genovesio, <i>Comparison of semi-supervised learning methods for High Content Screening quality control</i>, 2022. Data: Broad Bioimage Benchmark Collection (Ljosa et al., Nature Methods 2012).</footer>`,
  );
  parts.push(
    `<script>
(function () {
  var specs = ${scriptJson(embedded.map((ch) => ch.embedSpec ?? ch.spec))};
  window.qcbenchCharts = { total: specs.length, rendered: 0, failed: 0 };
  specs.forEach(function (spec, i) {
    var el = document.getElementById('chart-' + i);
    vegaEmbed(el, spec, { actions: false, renderer: 'svg', loader: { target: '_blank' } }).then(function () {
      el.setAttribute('data-rendered', '1');
      window.qcbenchCharts.rendered++;
    }).catch(function (err) {
      window.qcbenchCharts.failed++;
      el.textContent = 'This chart could not be drawn: ' + err;
      console.error(err);
    });
  });
})();
</script>`,
  );
  parts.push('</body>', '</html>', '');
  return parts.join('\n');
}
