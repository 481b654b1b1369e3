/**
 * Vega-Lite specifications of the report's figures, each with its data inlined (so a `.vl.json` file is complete on
 * its own and renders offline):
 * - `label-budget-<task>`: F1 against the number of training images, one line per encoder (mean over seeds) with a
 *   ±1 sd band, the paper's Table 2 dashed beside (paper §4.2);
 * - `domain-shift`: F1 in-domain against the shifted test set per encoder, paper's figures as ticks (§4.3);
 * - `tasks`: F1 per encoder for each downstream task (kNN, linear, fine-tuned), ours against the paper (§4.1);
 * - `pretrain-loss` (and `pretrain-knn-monitor`): SSL pretraining loss curves per method (§3.2);
 * - `confusion-<task>-<images>-<test set>`: confusion matrices summed over seeds, one panel per encoder.
 * Further figures come from other modules: `misclassified-crops` (montages.ts: image marks over the runner's montage
 * PNGs) and the second-order decision maps `second-order-<experiment>-<network>` (second-order.ts).
 */
import type { PretrainRecord } from '../results/schema.js';
import { type Aggregate, type Group, TASK_ORDER, taskRank } from './aggregate.js';
import type { VlSpec } from '../render/vega.js';
import { encoderLabel, METRICS, PAPER_LABELS, type Reference } from './reference.js';
import { paperFigure, primaryTrainSet, taskTitle } from './tables/model.js';

export interface Chart {
  /** File stem: `<name>.vl.json`, `.svg`, `.png`. */
  name: string;
  title: string;
  /** One or two sentences under the figure: what is plotted and how to read it. */
  caption: string;
  spec: VlSpec;
  /** The spec index.html embeds when it differs from the file's (e.g. images inlined as data URLs). */
  embedSpec?: VlSpec;
  /** Written as `.vl.json` only, without an SVG/PNG rendering (e.g. montages, which are PNG files already). */
  specOnly?: boolean;
}

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

/** A sober, print-like theme: white background, thin grey grid, normal-weight titles. */
export const CONFIG = {
  font: FONT,
  background: 'white',
  padding: 8,
  view: { stroke: '#bbb', strokeWidth: 0.5 },
  axis: {
    labelFontSize: 11,
    titleFontSize: 12,
    titleFontWeight: 'normal',
    labelColor: '#222',
    titleColor: '#222',
    domainColor: '#555',
    tickColor: '#555',
    gridColor: '#ececec',
    // no truncation: without node-canvas vega over-estimates text widths (≈ 0.8 em per character)
    labelLimit: 0,
  },
  legend: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'normal', symbolSize: 90, labelLimit: 0 },
  header: { labelFontSize: 12, titleFontSize: 12, labelFontWeight: 'normal', labelLimit: 0 },
  title: {
    fontSize: 14,
    fontWeight: 'normal',
    anchor: 'start',
    subtitleFontSize: 11,
    subtitleColor: '#555',
    offset: 10,
  },
  line: { strokeWidth: 1.8 },
  point: { size: 36, filled: true },
} as const;

/** Tableau-10 then a second, lighter set: encoders keep one colour across every chart. */
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
  '#1f77b4',
  '#aec7e8',
  '#ff7f0e',
  '#98df8a',
  '#d62728',
  '#9467bd',
  '#c5b0d5',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
];

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const PAPER_NAME = 'paper (Masud et al. 2022)';

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** A top-level spec in the report's theme (body keys, including `config`, override the defaults). */
export function top(title: string, subtitle: string, body: VlSpec): VlSpec {
  return { $schema: SCHEMA, title: { text: title, subtitle }, config: CONFIG, ...body };
}

/** Every chart of the report, in display order. */
export function buildCharts(agg: Aggregate, ref: Reference, pretrain: readonly PretrainRecord[]): Chart[] {
  const labels = agg.encoders.map((e) => e.label);
  // each encoder keeps its palette colour in every chart, whichever encoders a chart shows
  const colorOf = new Map(labels.map((l, i) => [l, PALETTE[i % PALETTE.length]]));
  const train = primaryTrainSet(agg);
  const done = agg.groups.filter((g) => g.done.length > 0 && g.key.train_set === train);
  const charts: Chart[] = [];
  charts.push(...labelBudgetCharts(done, ref, labels, colorOf));
  const tasks = tasksChart(done, ref, labels);
  if (tasks) charts.push(tasks);
  const shift = domainShiftChart(done, ref, labels);
  if (shift) charts.push(shift);
  charts.push(...pretrainCharts(pretrain, agg, colorOf));
  charts.push(
    ...confusionCharts(
      agg.groups.filter((g) => g.done.length > 0),
      labels,
    ),
  );
  return charts;
}

function f1Rows(g: Group): { encoder: string; seed: number; f1: number }[] {
  return g.done.map((c) => ({ encoder: g.label, seed: c.key.seed, f1: r4(c.metrics!.f1) }));
}

function labelBudgetCharts(done: Group[], ref: Reference, labels: string[], colorOf: Map<string, string>): Chart[] {
  const out: Chart[] = [];
  const tasks = [...new Set(done.filter((g) => !g.shift).map((g) => g.key.task))].sort();
  for (const task of tasks) {
    const gs = done.filter((g) => !g.shift && g.key.task === task);
    const budgets = [...new Set(gs.map((g) => g.key.budget))].sort((a, b) => a - b);
    if (budgets.length < 2) continue;
    const values: Record<string, unknown>[] = [];
    for (const g of gs) for (const r of f1Rows(g)) values.push({ ...r, budget: g.key.budget, source: 'ours' });
    const encs = [...new Set(gs.map((g) => g.key.encoder))];
    for (const enc of encs) {
      const label = (PAPER_LABELS as Record<string, string>)[enc];
      if (!label) continue;
      for (const b of ref.budgets(task, 'bbbc022')) {
        const p = ref.get(label, task, 'bbbc022', b, 'f1');
        if (p)
          values.push({
            encoder: gs.find((g) => g.key.encoder === enc)!.label,
            budget: b,
            f1: p.percent,
            source: PAPER_NAME,
          });
      }
    }
    const allBudgets = [...new Set(values.map((v) => v.budget as number))].sort((a, b) => a - b);
    const x = {
      field: 'budget',
      type: 'quantitative',
      title: 'Training images (log scale)',
      scale: { type: 'log', domain: [allBudgets[0] * 0.85, allBudgets[allBudgets.length - 1] * 1.15], nice: false },
      axis: { values: allBudgets, format: 'd', grid: true },
    };
    const present = labels.filter((l) => values.some((v) => v.encoder === l));
    const scale = { domain: present, range: present.map((l) => colorOf.get(l)!) };
    const colorEnc = {
      field: 'encoder',
      type: 'nominal',
      title: 'Encoder',
      scale,
      sort: present,
      legend: { symbolType: 'stroke', symbolStrokeWidth: 2.5, symbolOpacity: 1 },
    };
    const dash = {
      field: 'source',
      type: 'nominal',
      title: null,
      scale: {
        domain: ['ours', PAPER_NAME],
        range: [
          [1, 0],
          [5, 3],
        ],
      },
      legend: {
        orient: 'bottom',
        direction: 'horizontal',
        symbolType: 'stroke',
        symbolStrokeWidth: 2,
        symbolSize: 300,
      },
    };
    const y = { type: 'quantitative', title: 'F1 (%)', scale: { zero: false } };
    out.push({
      name: `label-budget-${task}`,
      title: `Label budget: ${taskTitle(task)}`,
      caption: `F1 against the number of annotated training images (${taskTitle(task)}, in-domain test). Solid: ours, mean over seeds with a ±1 sd band; dashed: the paper's figures where it has them.`,
      spec: top(`F1 against label budget — ${taskTitle(task)}`, 'mean ± sd over seeds; dashed: Masud et al. 2022', {
        width: 420,
        height: 280,
        data: { values },
        layer: [
          {
            transform: [{ filter: "datum.source === 'ours'" }],
            mark: { type: 'errorband', extent: 'stdev', opacity: 0.14 },
            encoding: { x, y: { ...y, field: 'f1' }, color: colorEnc },
          },
          {
            transform: [{ filter: "datum.source === 'ours'" }],
            mark: { type: 'line', point: true },
            encoding: {
              x,
              y: { ...y, field: 'f1', aggregate: 'mean' },
              color: colorEnc,
              strokeDash: dash,
              tooltip: [
                { field: 'encoder', type: 'nominal' },
                { field: 'budget', type: 'quantitative' },
                { field: 'f1', aggregate: 'mean', type: 'quantitative', format: '.2f', title: 'F1 mean' },
              ],
            },
          },
          {
            transform: [{ filter: `datum.source === '${PAPER_NAME}'` }],
            mark: { type: 'line', opacity: 0.75, strokeWidth: 1.3 },
            encoding: { x, y: { ...y, field: 'f1' }, color: colorEnc, strokeDash: dash },
          },
        ],
      }),
    });
  }
  return out;
}

function tasksChart(done: Group[], ref: Reference, labels: string[]): Chart | undefined {
  const inDomain = done.filter((g) => !g.shift);
  const tasks = TASK_ORDER.filter((t) => inDomain.some((g) => g.key.task === t));
  if (!tasks.length) return undefined;
  const values: Record<string, unknown>[] = [];
  for (const task of tasks) {
    const gs = inDomain.filter((g) => g.key.task === task);
    const budget = Math.max(...gs.map((g) => g.key.budget));
    for (const g of gs.filter((x) => x.key.budget === budget)) {
      const t = `${taskTitle(task)}, ${budget} images`;
      for (const r of f1Rows(g)) values.push({ ...r, task: t, source: 'ours' });
      const p = paperFigure(ref, g.key.encoder, task, 'bbbc022', budget, 'f1');
      if (p) values.push({ encoder: g.label, task: t, source: PAPER_NAME, f1: p.percent });
    }
  }
  const taskOrder = [...new Set(values.map((v) => v.task as string))];
  const encOrder = labels.filter((l) => values.some((v) => v.encoder === l));
  const srcColor = { domain: ['ours', PAPER_NAME], range: ['#4e79a7', '#b5b5b5'] };
  return {
    name: 'tasks',
    title: 'Downstream tasks: ours against the paper',
    caption:
      'F1 of each encoder for each downstream task at the largest label budget, in-domain test. Blue: ours (mean over seeds, bar = ±1 sd); grey: the paper (its Tables 1–2 are for 350 images).',
    spec: top('F1 per downstream task', 'ours (mean ± sd over seeds) against Masud et al. 2022', {
      data: { values },
      facet: { column: { field: 'task', type: 'nominal', title: null, sort: taskOrder } },
      spec: {
        // wide enough for the facet header even with few encoders
        width: Math.max(230, 24 * encOrder.length),
        height: 240,
        layer: [
          {
            mark: { type: 'bar' },
            encoding: {
              x: { field: 'encoder', type: 'nominal', title: null, sort: encOrder, axis: { labelAngle: -45 } },
              xOffset: { field: 'source', type: 'nominal', sort: ['ours', PAPER_NAME] },
              y: { field: 'f1', type: 'quantitative', aggregate: 'mean', title: 'F1 (%)', scale: { domain: [0, 100] } },
              color: { field: 'source', type: 'nominal', title: null, scale: srcColor, legend: { orient: 'bottom' } },
              tooltip: [
                { field: 'encoder', type: 'nominal' },
                { field: 'source', type: 'nominal' },
                { field: 'f1', aggregate: 'mean', type: 'quantitative', format: '.2f', title: 'F1' },
              ],
            },
          },
          {
            transform: [{ filter: "datum.source === 'ours'" }],
            mark: { type: 'errorbar', extent: 'stdev', ticks: { size: 4 }, color: '#222', strokeWidth: 1 },
            encoding: {
              x: { field: 'encoder', type: 'nominal', sort: encOrder },
              xOffset: { field: 'source', type: 'nominal', sort: ['ours', PAPER_NAME] },
              y: { field: 'f1', type: 'quantitative', title: 'F1 (%)' },
            },
          },
        ],
      },
    }),
  };
}

function domainShiftChart(done: Group[], ref: Reference, labels: string[]): Chart | undefined {
  const shifted = done.filter((g) => g.shift);
  // the paper's domain-shift table (Table 3) is fine-tuning; without it, the most trained task that has shifted cells
  const preferred = ['finetune', 'linear', 'knn'];
  const task = [...preferred, ...TASK_ORDER.filter((t) => !preferred.includes(t))].find((t) =>
    shifted.some((g) => g.key.task === t),
  );
  if (!task) return undefined;
  const sh = shifted.filter((g) => g.key.task === task);
  const budget = Math.max(...sh.map((g) => g.key.budget));
  const values: Record<string, unknown>[] = [];
  const roles: string[] = [];
  const addRole = (r: string) => {
    if (!roles.includes(r)) roles.push(r);
  };
  for (const g of done.filter((x) => x.key.task === task && x.key.budget === budget)) {
    if (!sh.some((s) => s.key.encoder === g.key.encoder)) continue;
    const role = g.shift ? `shifted (${g.key.test_set})` : `in-domain (${g.key.test_set})`;
    addRole(role);
    for (const r of f1Rows(g)) values.push({ ...r, test: role, source: 'ours' });
    const p = paperFigure(ref, g.key.encoder, task, g.paperTestSet, budget, 'f1');
    if (p) values.push({ encoder: g.label, test: role, source: PAPER_NAME, f1: p.percent });
  }
  roles.sort(
    (a, b) =>
      (a.startsWith('in-domain') ? -1 : 0) - (b.startsWith('in-domain') ? -1 : 0) || (a < b ? -1 : a > b ? 1 : 0),
  );
  const encOrder = labels.filter((l) => values.some((v) => v.encoder === l));
  const x = { field: 'encoder', type: 'nominal', title: null, sort: encOrder, axis: { labelAngle: -45 } };
  const xOffset = { field: 'test', type: 'nominal', sort: roles };
  return {
    name: 'domain-shift',
    title: 'Domain shift',
    caption: `F1 of the ${taskTitle(task).toLowerCase()} classifier (${budget} training images) on the in-domain test set and on the shifted test set. Bars: ours, mean over seeds with ±1 sd; black ticks: the paper's figures (Tables 2 and 3).`,
    spec: top(
      'Domain shift: in-domain against shifted test set',
      `${taskTitle(task)}, ${budget} training images; ticks: Masud et al. 2022`,
      {
        width: { step: 16 },
        height: 260,
        data: { values },
        layer: [
          {
            transform: [{ filter: "datum.source === 'ours'" }],
            mark: { type: 'bar' },
            encoding: {
              x,
              xOffset,
              y: { field: 'f1', type: 'quantitative', aggregate: 'mean', title: 'F1 (%)', scale: { domain: [0, 100] } },
              color: {
                field: 'test',
                type: 'nominal',
                title: 'Test set',
                sort: roles,
                scale: { range: ['#4e79a7', '#e15759', '#f28e2b', '#76b7b2'] },
                legend: { orient: 'bottom' },
              },
              tooltip: [
                { field: 'encoder', type: 'nominal' },
                { field: 'test', type: 'nominal' },
                { field: 'f1', aggregate: 'mean', type: 'quantitative', format: '.2f', title: 'F1 mean' },
              ],
            },
          },
          {
            transform: [{ filter: "datum.source === 'ours'" }],
            mark: { type: 'errorbar', extent: 'stdev', ticks: { size: 4 }, color: '#222', strokeWidth: 1 },
            encoding: { x, xOffset, y: { field: 'f1', type: 'quantitative', title: 'F1 (%)' } },
          },
          {
            transform: [{ filter: `datum.source === '${PAPER_NAME}'` }],
            mark: { type: 'tick', color: 'black', thickness: 2, size: 12 },
            encoding: { x, xOffset, y: { field: 'f1', type: 'quantitative', title: 'F1 (%)' } },
          },
        ],
      },
    ),
  };
}

function pretrainCharts(pretrain: readonly PretrainRecord[], agg: Aggregate, colorOf: Map<string, string>): Chart[] {
  if (!pretrain.length) return [];
  const methodLabel = (m: string) => agg.encoders.find((e) => e.encoder === m)?.label ?? encoderLabel(m);
  const values: Record<string, unknown>[] = [];
  for (const p of pretrain) {
    // keep at most ~400 points per curve (evenly strided) so the spec stays small for long runs
    const stride = Math.max(1, Math.ceil(p.loss.length / 400));
    p.loss.forEach((pt, i) => {
      if (i % stride === 0 || i === p.loss.length - 1) {
        values.push({
          method: methodLabel(p.method),
          run: p.id.slice(0, 12),
          step: pt.step,
          epoch: pt.epoch,
          loss: r4(pt.loss),
        });
      }
    });
  }
  const methods = [...new Set(values.map((v) => v.method as string))];
  const orderedMethods = agg.encoders.map((e) => e.label).filter((l) => methods.includes(l));
  for (const m of methods) if (!orderedMethods.includes(m)) orderedMethods.push(m);
  const charts: Chart[] = [
    {
      name: 'pretrain-loss',
      title: 'Pretraining loss',
      caption:
        'Training loss of each pretraining run against the optimisation step (one panel per method; each method has its own loss scale, so the y axes are independent). One line per pretraining run.',
      spec: top('Pretraining loss curves', 'one panel per method; independent y scales', {
        data: { values },
        facet: { field: 'method', type: 'nominal', title: null, sort: orderedMethods },
        columns: 3,
        spec: {
          width: 220,
          height: 150,
          mark: { type: 'line', strokeWidth: 1.4 },
          encoding: {
            x: { field: 'step', type: 'quantitative', title: 'Step' },
            y: { field: 'loss', type: 'quantitative', title: 'Loss', scale: { zero: false } },
            detail: { field: 'run', type: 'nominal' },
            color: { value: '#4e79a7' },
          },
        },
        spacing: 14,
        resolve: { scale: { y: 'independent' }, axis: { x: 'independent' } },
      }),
    },
  ];
  const mon: Record<string, unknown>[] = [];
  for (const p of pretrain) {
    // the monitor runs after epoch e (0-based) and once before training (e = -1): plot epochs completed
    for (const k of p.knn_monitor ?? [])
      mon.push({ method: methodLabel(p.method), run: p.id.slice(0, 12), epoch: k.epoch + 1, accuracy: r4(k.accuracy) });
  }
  if (mon.length) {
    charts.push({
      name: 'pretrain-knn-monitor',
      title: 'kNN monitor during pretraining',
      caption:
        'kNN accuracy on the annotated set after each pretraining epoch (the optional monitor; 0 = the encoder before pretraining), one line per run.',
      spec: top('kNN monitor during pretraining', 'accuracy on the annotated set per epoch', {
        width: 360,
        height: 220,
        data: { values: mon },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', title: 'Epochs completed', axis: { tickMinStep: 1, format: 'd' } },
          y: { field: 'accuracy', type: 'quantitative', title: 'kNN accuracy (%)', scale: { zero: false } },
          color: {
            field: 'method',
            type: 'nominal',
            title: 'Method',
            sort: orderedMethods,
            scale: {
              domain: orderedMethods,
              range: orderedMethods.map((m, i) => colorOf.get(m) ?? PALETTE[(PALETTE.length - 1 - i) % PALETTE.length]),
            },
          },
          detail: { field: 'run', type: 'nominal' },
        },
      }),
    });
  }
  return charts;
}

function confusionCharts(groups: Group[], labels: string[]): Chart[] {
  const settings = new Map<string, Group[]>();
  for (const g of groups) {
    const k = `${g.key.task}|${g.key.budget}|${g.key.train_set}|${g.key.test_set}`;
    settings.set(k, [...(settings.get(k) ?? []), g]);
  }
  const keys = [...settings.keys()].sort((a, b) => {
    const [ta, ba, ra, sa] = a.split('|');
    const [tb, bb, rb, sb] = b.split('|');
    return (
      taskRank(ta) - taskRank(tb) ||
      (ra < rb ? -1 : ra > rb ? 1 : 0) ||
      (sa === ra ? 0 : 1) - (sb === rb ? 0 : 1) ||
      (sa < sb ? -1 : sa > sb ? 1 : 0) ||
      Number(bb) - Number(ba)
    );
  });
  const out: Chart[] = [];
  for (const k of keys) {
    const gs = settings.get(k)!;
    const { task, budget, train_set, test_set } = gs[0].key;
    const values: Record<string, unknown>[] = [];
    let classes: string[] = [];
    for (const g of gs) {
      const first = g.done[0].metrics!;
      classes = first.classes;
      const sum = first.classes.map(() => first.classes.map(() => 0));
      for (const c of g.done) {
        c.metrics!.confusion.forEach((row, i) => {
          row.forEach((v, j) => {
            sum[i][j] += v;
          });
        });
      }
      sum.forEach((row, i) => {
        const total = row.reduce((a, b) => a + b, 0);
        row.forEach((v, j) => {
          values.push({
            encoder: g.label,
            true: first.classes[i],
            pred: first.classes[j],
            count: v,
            rate: total ? r4(v / total) : 0,
          });
        });
      });
    }
    const encOrder = labels.filter((l) => values.some((v) => v.encoder === l));
    const where =
      test_set === train_set ? `in-domain test (${test_set})` : `trained on ${train_set}, tested on ${test_set}`;
    out.push({
      name: `confusion-${task}-${budget}-${test_set}`.replace(/[^A-Za-z0-9._-]/g, '_'),
      title: `Confusion matrices: ${taskTitle(task)}, ${budget} images, ${where}`,
      caption: `Counts summed over seeds (rows: true class, columns: predicted class); colour = share of the true class. ${taskTitle(task)}, ${budget} training images, ${where}.`,
      spec: top(`Confusion matrices — ${taskTitle(task)}, ${budget} images`, `${where}; counts summed over seeds`, {
        data: { values },
        // long encoder labels would set every column's width: cap them (the tables carry the full label)
        facet: {
          field: 'encoder',
          type: 'nominal',
          title: null,
          sort: encOrder,
          header: { labelLimit: 200, labelFontSize: 11 },
        },
        columns: 5,
        spacing: 14,
        resolve: { axis: { x: 'independent' } },
        spec: {
          width: 150,
          height: 100,
          encoding: {
            x: { field: 'pred', type: 'nominal', title: 'Predicted', sort: classes, axis: { labelAngle: 0 } },
            y: { field: 'true', type: 'nominal', title: 'True', sort: classes },
          },
          layer: [
            {
              mark: { type: 'rect' },
              encoding: {
                color: {
                  field: 'rate',
                  type: 'quantitative',
                  title: 'Share of true class',
                  scale: { scheme: 'blues', domain: [0, 1] },
                  legend: { format: '.0%', orient: 'right' },
                },
              },
            },
            {
              mark: { type: 'text', fontSize: 12 },
              encoding: {
                text: { field: 'count', type: 'quantitative' },
                color: { condition: { test: 'datum.rate > 0.5', value: 'white' }, value: '#222' },
              },
            },
          ],
        },
      }),
    });
  }
  return out;
}

/** Metrics shown in charts and tables (re-exported for html.ts). */
export { METRICS };
