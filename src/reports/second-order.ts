/**
 * The report's "Second-order neurons" section (Fan, Cong & Wang 2017), built from the results directory alone:
 *
 * - the paper's planar tests, stored by `qcbench second-order spirals|rings --out <results>/second-order`:
 *   ```
 *   second-order/<experiment>-results.json   SecondOrderRecord: accuracy and iterations per network over seeds
 *   second-order/<experiment>-maps.json      SecondOrderMapsRecord: each network's decision-map grid (most accurate
 *                                            seed) and the training points, so the report redraws Figs. 3–5
 *   ```
 *   → a table of accuracy per network over seeds (`tables/second-order.{md,csv}`) and the decision maps as Vega-Lite
 *   heatmaps with the training points on top (`charts/second-order-<experiment>-<network>.{vl.json,svg,png}`);
 * - the QC benchmark's second-order cells (protocols/second-order.yaml): the quadratic head beside the linear probe
 *   on the same encoder, and the second-order CNN (`soq-cnn`) beside its first-order twin (`foq-cnn`)
 *   → `tables/second-order-qc.{md,csv}`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { QcbError } from '../errors.js';
import { meanSd } from '../metrics/summary.js';
import { type DecisionMapData, decisionMapSpecFromData } from '../second-order/decision-map.js';
import type { Aggregate, Group } from './aggregate.js';
import { CONFIG, type Chart } from './charts.js';
import { cmp, SECOND_ORDER_DIR } from './load.js';
import { csvField } from './tables/csv.js';
import { fmt, fmtDiff } from './tables/format.js';
import { taskTitle } from './tables/model.js';

export { SECOND_ORDER_DIR };
export const SECOND_ORDER_SCHEMA = 'qcbench.second-order/1';
export const SECOND_ORDER_MAPS_SCHEMA = 'qcbench.second-order-maps/1';

/** Per-network summary over seeds (what `qcbench second-order` prints and stores). */
export interface NetworkSummary {
  id: string;
  sizes: number[];
  order: number;
  seeds: number;
  /** Seeds whose training accuracy reached the task's target. */
  converged: number;
  accuracy: { mean: number; min: number; max: number };
  /** Iterations to reach the target, over the converged seeds (null when none did). */
  iterations: { median: number; mean: number; min: number; max: number } | null;
  /** Iteration budget of each run. */
  budget?: number;
  msPerIteration: number;
  perSeed: {
    seed: number;
    accuracy: number;
    bestAccuracy: number;
    iterationsToConverge: number | null;
    iterations: number;
    loss: number;
  }[];
}

/** `<experiment>-results.json`. */
export interface SecondOrderRecord {
  schema: typeof SECOND_ORDER_SCHEMA;
  experiment: string;
  title: string;
  /** Training accuracy that counts as converged (fraction). */
  target: number;
  backend: string;
  seeds: number;
  points: number;
  /** Spirals: whether the outer-to-inner curriculum was used. */
  curriculum?: boolean;
  networks: NetworkSummary[];
}

/** One decision map: the network's most accurate seed. */
export interface DecisionMapRecord {
  network: string;
  seed: number;
  accuracy: number;
  map: DecisionMapData;
}

/** `<experiment>-maps.json`. */
export interface SecondOrderMapsRecord {
  schema: typeof SECOND_ORDER_MAPS_SCHEMA;
  experiment: string;
  maps: DecisionMapRecord[];
}

export interface SecondOrderExperiment {
  /** Path of the results file relative to the results directory. */
  file: string;
  results: SecondOrderRecord;
  maps: DecisionMapRecord[];
}

export interface LoadedSecondOrder {
  experiments: SecondOrderExperiment[];
  /** Sentences for the report (maps missing, …). */
  notes: string[];
}

/** The paper's order (§III-A spirals, §III-B rings), then any other experiment by name. */
const EXPERIMENT_ORDER = ['spirals', 'rings'];

/**
 * Reads `<resultsDir>/second-order/*-results.json` and the maps beside them. An absent folder gives no experiments;
 * a file that is not valid JSON or carries another schema is a QcbError naming it.
 */
export function loadSecondOrder(resultsDir: string): LoadedSecondOrder {
  const dir = join(resultsDir, SECOND_ORDER_DIR);
  const out: LoadedSecondOrder = { experiments: [], notes: [] };
  if (!existsSync(dir)) return out;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('-results.json'))
    .sort();
  for (const f of files) {
    const results = readJson<SecondOrderRecord>(join(dir, f), SECOND_ORDER_SCHEMA);
    if (!Array.isArray(results.networks) || typeof results.experiment !== 'string') {
      throw new QcbError('QCB_FILE_FORMAT', 'second-order results lack an experiment or networks', {
        file: join(dir, f),
        key: results.experiment === undefined ? 'experiment' : 'networks',
        fix: `rerun: qcbench second-order ${f.replace(/-results\.json$/, '')} --out ${dir}`,
      });
    }
    const mapsFile = join(dir, `${results.experiment}-maps.json`);
    let maps: DecisionMapRecord[] = [];
    if (existsSync(mapsFile)) maps = readJson<SecondOrderMapsRecord>(mapsFile, SECOND_ORDER_MAPS_SCHEMA).maps ?? [];
    else
      out.notes.push(
        `No decision maps are stored for ${results.experiment} (${SECOND_ORDER_DIR}/${results.experiment}-maps.json); rerun qcbench second-order ${results.experiment} --out ${SECOND_ORDER_DIR} of this results directory to add them.`,
      );
    const order = new Map(results.networks.map((n, i) => [n.id, i]));
    maps = [...maps].sort((a, b) => (order.get(a.network) ?? 99) - (order.get(b.network) ?? 99));
    out.experiments.push({ file: `${SECOND_ORDER_DIR}/${f}`, results, maps });
  }
  const rank = (e: string) => {
    const i = EXPERIMENT_ORDER.indexOf(e);
    return i < 0 ? EXPERIMENT_ORDER.length : i;
  };
  out.experiments.sort(
    (a, b) =>
      rank(a.results.experiment) - rank(b.results.experiment) || cmp(a.results.experiment, b.results.experiment),
  );
  return out;
}

function readJson<T extends { schema?: string }>(file: string, schema: string): T {
  let v: T;
  try {
    v = JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new QcbError('QCB_FILE_FORMAT', `second-order results file is not valid JSON: ${(e as Error).message}`, {
      file,
      cause: e,
      fix: 'delete the file and rerun qcbench second-order spirals|rings --out with this folder',
    });
  }
  if (!v || typeof v !== 'object' || v.schema !== schema) {
    throw new QcbError('QCB_FILE_FORMAT', 'second-order results file has another schema', {
      file,
      key: 'schema',
      value: (v as { schema?: unknown } | null)?.schema,
      allowed: schema,
      fix: 'rerun qcbench second-order spirals|rings --out with this folder (this version of qcbench)',
    });
  }
  return v;
}

/** One line of the planar-experiment table (accuracies in percent). */
export interface SecondOrderRow {
  experiment: string;
  title: string;
  network: string;
  order: number;
  sizes: number[];
  backend: string;
  target: number;
  seeds: number;
  converged: number;
  accuracy: { mean: number; sd: number; min: number; max: number };
  iterations: NetworkSummary['iterations'];
  budget?: number;
}

export function secondOrderRows(so: LoadedSecondOrder): SecondOrderRow[] {
  return so.experiments.flatMap(({ results: r }) =>
    r.networks.map((n) => {
      const acc = meanSd(n.perSeed.length ? n.perSeed.map((s) => 100 * s.accuracy) : [100 * n.accuracy.mean]);
      return {
        experiment: r.experiment,
        title: r.title,
        network: n.id,
        order: n.order,
        sizes: n.sizes,
        backend: r.backend,
        target: 100 * r.target,
        seeds: n.seeds,
        converged: n.converged,
        accuracy: { mean: acc.mean, sd: acc.sd, min: acc.min, max: acc.max },
        iterations: n.iterations,
        budget: n.budget,
      };
    }),
  );
}

export const fmtAccuracy = (a: SecondOrderRow['accuracy']) =>
  `${Number.isFinite(a.sd) ? `${fmt(a.mean)} ± ${fmt(a.sd)}` : fmt(a.mean)} [${fmt(a.min)}, ${fmt(a.max)}]`;

export const fmtIterations = (it: SecondOrderRow['iterations']) =>
  it ? `${it.median} (${Math.round(it.mean)}) [${it.min}, ${it.max}]` : '—';

export function secondOrderMarkdown(rows: SecondOrderRow[]): string {
  const lines = [
    "# Second-order neurons: the paper's planar tests (Fan, Cong & Wang 2017 §III)",
    '',
    'Training accuracy in percent over seeds (mean ± sd [min, max]); iterations = full-batch updates until the target training accuracy was first reached (median (mean) [min, max] over the seeds that reached it; runs stop there).',
    '',
    '| Experiment | Network | Seeds | Reached target | Training accuracy (%) | Iterations to target | Budget |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.experiment}: ${r.title} (target ${r.target}%) | ${r.network} | ${r.seeds} | ${r.converged}/${r.seeds} | ${fmtAccuracy(r.accuracy)} | ${fmtIterations(r.iterations)} | ${r.budget ?? '—'} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function secondOrderCsv(rows: SecondOrderRow[]): string {
  const head = [
    'experiment',
    'network',
    'order',
    'sizes',
    'backend',
    'target',
    'seeds',
    'converged',
    'accuracy_mean',
    'accuracy_sd',
    'accuracy_min',
    'accuracy_max',
    'iterations_median',
    'iterations_mean',
    'iterations_min',
    'iterations_max',
    'budget',
  ];
  const lines = [head.join(',')];
  for (const r of rows) {
    lines.push(
      [
        r.experiment,
        r.network,
        r.order,
        r.sizes.join('-'),
        r.backend,
        r.target,
        r.seeds,
        r.converged,
        r.accuracy.mean,
        r.accuracy.sd,
        r.accuracy.min,
        r.accuracy.max,
        r.iterations?.median,
        r.iterations?.mean,
        r.iterations?.min,
        r.iterations?.max,
        r.budget,
      ]
        .map((v) => csvField(v))
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Decision maps as report charts: `second-order-<experiment>-<network>`. */
export function secondOrderCharts(so: LoadedSecondOrder): Chart[] {
  const out: Chart[] = [];
  for (const e of so.experiments) {
    const r = e.results;
    for (const m of e.maps) {
      const n = r.networks.find((x) => x.id === m.network);
      const spec = decisionMapSpecFromData(m.map, { size: 300 });
      const acc = (100 * m.accuracy).toFixed(1);
      const which = `seed ${m.seed}${n && n.seeds > 1 ? ` (the most accurate of ${n.seeds})` : ''}, training accuracy ${acc}%`;
      out.push({
        name: `second-order-${r.experiment}-${m.network}`.replace(/[^A-Za-z0-9._-]/g, '_'),
        title: `Decision map: ${r.experiment}, ${m.network}`,
        caption: `${r.experiment} (${r.title}): output of the ${m.network} network over the plane (cyan = 0, magenta = 1) with the training points on top (o class 0, + class 1), ${which}. As the paper's Figs. 3–5.`,
        spec: {
          ...spec,
          title: { text: `${r.experiment}: ${m.network}`, subtitle: which },
          config: { ...CONFIG, axis: { ...CONFIG.axis, grid: false } },
        },
      });
    }
  }
  return out;
}

/** A second-order model of the QC benchmark beside its first-order twin, same data and budget. */
export interface QcPair {
  comparison: 'quadratic head vs linear probe' | 'second-order CNN vs first-order twin';
  second: Group;
  first?: Group;
}

/** Quadratic-head groups with their linear-probe twins, and soq-cnn groups with their foq-cnn twins. */
export function secondOrderQcPairs(agg: Aggregate): QcPair[] {
  const same = (a: Group, b: Group) =>
    a.key.budget === b.key.budget && a.key.train_set === b.key.train_set && a.key.test_set === b.key.test_set;
  const pairs: QcPair[] = [];
  for (const g of agg.groups) {
    if (g.key.task === 'quadratic') {
      const first = agg.groups.find((x) => x.key.encoder === g.key.encoder && x.key.task === 'linear' && same(g, x));
      pairs.push({ comparison: 'quadratic head vs linear probe', second: g, first });
    } else if (g.key.encoder === 'soq-cnn') {
      const first = agg.groups.find((x) => x.key.encoder === 'foq-cnn' && x.key.task === g.key.task && same(g, x));
      pairs.push({ comparison: 'second-order CNN vs first-order twin', second: g, first });
    }
  }
  return pairs;
}

const ms = (g: Group | undefined, m: 'f1' | 'accuracy') => {
  const s = g?.stats[m];
  if (!s?.n) return '—';
  return Number.isFinite(s.sd) ? `${fmt(s.mean)} ± ${fmt(s.sd)}` : fmt(s.mean);
};
const diff = (p: QcPair, m: 'f1' | 'accuracy') =>
  p.first?.stats[m].n && p.second.stats[m].n ? p.second.stats[m].mean - p.first.stats[m].mean : undefined;

export const qcPairWhere = (g: Group) =>
  g.key.test_set === g.key.train_set ? g.key.test_set : `${g.key.train_set} → ${g.key.test_set}`;

/** The cells of one pair as display strings (shared by Markdown and HTML). */
export function qcPairCells(p: QcPair): string[] {
  const g = p.second;
  const model = g.key.task === 'quadratic' ? g.label : `${taskTitle(g.key.task)}`;
  return [
    p.comparison,
    model,
    String(g.key.budget),
    qcPairWhere(g),
    ms(g, 'f1'),
    ms(p.first, 'f1'),
    fmtDiff(diff(p, 'f1')),
    ms(g, 'accuracy'),
    ms(p.first, 'accuracy'),
    fmtDiff(diff(p, 'accuracy')),
    `${g.done.length}${p.first ? `/${p.first.done.length}` : ''}`,
  ];
}

export const QC_PAIR_HEADER = [
  'Comparison',
  'Encoder / task',
  'Images',
  'Test set',
  'F1 second-order',
  'F1 first-order',
  'Δ F1',
  'Acc. second-order',
  'Acc. first-order',
  'Δ Acc.',
  'Seeds done',
];

export function qcPairsMarkdown(pairs: QcPair[]): string {
  const lines = [
    '# Second-order neurons in the QC benchmark',
    '',
    'Percent, mean ± sd over finished seeds; Δ = second-order − first-order. Quadratic head: the head on the frozen encoder beside the linear probe on the same features. Second-order CNN: soq-cnn beside its first-order twin foq-cnn, both trained from scratch.',
    '',
    `| ${QC_PAIR_HEADER.join(' | ')} |`,
    `| ${QC_PAIR_HEADER.map(() => '---').join(' | ')} |`,
  ];
  for (const p of pairs) lines.push(`| ${qcPairCells(p).join(' | ')} |`);
  return `${lines.join('\n')}\n`;
}

export function qcPairsCsv(pairs: QcPair[]): string {
  const head = [
    'comparison',
    'encoder',
    'task',
    'twin_encoder',
    'twin_task',
    'train_set',
    'test_set',
    'budget',
    'f1_mean',
    'f1_sd',
    'twin_f1_mean',
    'twin_f1_sd',
    'f1_diff',
    'accuracy_mean',
    'accuracy_sd',
    'twin_accuracy_mean',
    'twin_accuracy_sd',
    'accuracy_diff',
    'seeds_done',
    'twin_seeds_done',
  ];
  const lines = [head.join(',')];
  for (const p of pairs) {
    const g = p.second;
    const f = p.first;
    lines.push(
      [
        p.comparison,
        g.key.encoder,
        g.key.task,
        f?.key.encoder,
        f?.key.task,
        g.key.train_set,
        g.key.test_set,
        g.key.budget,
        g.stats.f1.mean,
        g.stats.f1.sd,
        f?.stats.f1.mean,
        f?.stats.f1.sd,
        diff(p, 'f1'),
        g.stats.accuracy.mean,
        g.stats.accuracy.sd,
        f?.stats.accuracy.mean,
        f?.stats.accuracy.sd,
        diff(p, 'accuracy'),
        g.done.length,
        f?.done.length,
      ]
        .map((v) => csvField(v))
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}
