/**
 * Groups cells over seeds: one group per (encoder, task, budget, train set, test set), with mean ± sd of each metric
 * over the seeds that finished, and the failed / skipped / pending seeds kept for display. A degenerate seed (its test
 * predictions all one class) is finished but not averaged in: it is kept apart for the tables to mark.
 */
import { type MeanSd, meanSd } from '../metrics/summary.js';
import { type CellKey, type CellRecord, type EncoderKind, predictsOneClass, type TaskName } from '../results/schema.js';
import { cmp, type LoadedResults } from './load.js';
import {
  encoderLabel,
  KIND_ORDER,
  METRICS,
  type MetricName,
  PAPER_LABELS,
  PAPER_ORDER,
  type PaperTestSet,
} from './reference.js';
import { CATALOG } from '../runner/catalog.js';

export interface GroupKey {
  encoder: string;
  task: TaskName;
  budget: number;
  train_set: string;
  test_set: string;
}

export interface Group {
  key: GroupKey;
  /** Display label of the encoder (paper label where it has one). */
  label: string;
  kind?: EncoderKind;
  /** Every seed of the group, ascending (done, failed, skipped and pending). */
  seeds: number[];
  done: CellRecord[];
  /** Done seeds whose test predictions are all one class (flagged `degenerate`, or so in older records): not in `stats`. */
  degenerate: CellRecord[];
  failed: CellRecord[];
  skipped: CellRecord[];
  pending: { id: string; key: CellKey }[];
  /** Mean ± sd over the finished seeds that are not degenerate, per metric (percent). */
  stats: Record<MetricName, MeanSd>;
  /** True when the test set differs from the training set (the paper's domain-shift setting). */
  shift: boolean;
  /** The paper's test set this group corresponds to (in-domain → BBBC022, shifted → BBBC021). */
  paperTestSet: PaperTestSet;
}

export interface EncoderInfo {
  encoder: string;
  label: string;
  kind?: EncoderKind;
}

export interface Aggregate {
  groups: Group[];
  /** Encoders in display order: the paper's rows in its order, then the others by kind and name. */
  encoders: EncoderInfo[];
  counts: { done: number; failed: number; skipped: number; pending: number; total: number };
  /** Distinct training / test sets of the run, sorted. */
  trainSets: string[];
  testSets: string[];
  /** Distinct seeds, ascending. */
  seeds: number[];
}

/** The kind of a catalogue encoder, for cells that have no record yet (a file encoder's kind is in its records). */
function guessedKind(encoder: string): EncoderKind | undefined {
  return CATALOG.encoders[encoder]?.kind;
}

export function groupId(k: GroupKey): string {
  return `${k.encoder}|${k.task}|${k.train_set}|${k.test_set}|${k.budget}`;
}

/**
 * Aggregates loaded results into groups over seeds, ordered as the paper's tables: encoder, task (kNN, linear,
 * fine-tuned), in-domain before shifted test sets, largest label budget first.
 */
export function aggregate(res: LoadedResults): Aggregate {
  const groups = new Map<string, Group>();
  const info = new Map<string, EncoderInfo>();
  const get = (key: CellKey): Group => {
    const gk: GroupKey = {
      encoder: key.encoder,
      task: key.task,
      budget: key.budget,
      train_set: key.train_set,
      test_set: key.test_set,
    };
    const id = groupId(gk);
    let g = groups.get(id);
    if (!g) {
      const shift = key.test_set !== key.train_set;
      g = {
        key: gk,
        label: encoderLabel(key.encoder),
        seeds: [],
        done: [],
        degenerate: [],
        failed: [],
        skipped: [],
        pending: [],
        stats: emptyStats(),
        shift,
        paperTestSet: shift ? 'bbbc021' : 'bbbc022',
      };
      groups.set(id, g);
    }
    return g;
  };
  for (const c of res.cells) {
    const g = get(c.key);
    g.label = encoderLabel(c.key.encoder, c.encoder_label);
    g.kind = c.encoder_kind;
    g[c.status].push(c);
    if (c.status === 'done' && isDegenerate(c)) g.degenerate.push(c);
    g.seeds.push(c.key.seed);
    if (!info.has(c.key.encoder) || !info.get(c.key.encoder)!.kind) {
      info.set(c.key.encoder, { encoder: c.key.encoder, label: g.label, kind: c.encoder_kind });
    }
  }
  for (const p of res.pending) {
    const g = get(p.key);
    g.pending.push(p);
    g.seeds.push(p.key.seed);
    if (!info.has(p.key.encoder)) {
      info.set(p.key.encoder, {
        encoder: p.key.encoder,
        label: encoderLabel(p.key.encoder),
        kind: guessedKind(p.key.encoder),
      });
    }
  }
  for (const g of groups.values()) {
    g.seeds = [...new Set(g.seeds)].sort((a, b) => a - b);
    g.kind ??= info.get(g.key.encoder)?.kind ?? guessedKind(g.key.encoder);
    g.label = info.get(g.key.encoder)?.label ?? g.label;
    const averaged = g.done.filter((c) => !g.degenerate.includes(c));
    for (const m of METRICS) g.stats[m] = meanSd(averaged.map((c) => c.metrics![m]));
  }
  const encoders = [...info.values()].sort(compareEncoders);
  const order = new Map(encoders.map((e, i) => [e.encoder, i]));
  const sorted = [...groups.values()].sort(
    (a, b) =>
      order.get(a.key.encoder)! - order.get(b.key.encoder)! ||
      taskRank(a.key.task) - taskRank(b.key.task) ||
      cmp(a.key.train_set, b.key.train_set) ||
      Number(a.shift) - Number(b.shift) ||
      cmp(a.key.test_set, b.key.test_set) ||
      b.key.budget - a.key.budget,
  );
  const counts = {
    done: res.cells.filter((c) => c.status === 'done').length,
    failed: res.cells.filter((c) => c.status === 'failed').length,
    skipped: res.cells.filter((c) => c.status === 'skipped').length,
    pending: res.pending.length,
    total: res.cells.length + res.pending.length,
  };
  const allKeys = [...res.cells.map((c) => c.key), ...res.pending.map((p) => p.key)];
  return {
    groups: sorted,
    encoders,
    counts,
    trainSets: [...new Set(allKeys.map((k) => k.train_set))].sort(),
    testSets: [...new Set(allKeys.map((k) => k.test_set))].sort(),
    seeds: [...new Set(allKeys.map((k) => k.seed))].sort((a, b) => a - b),
  };
}

/** A done cell that predicted one class for every test crop: its flag, or (records written before it) its predictions. */
export function isDegenerate(c: CellRecord): boolean {
  return c.degenerate === true || predictsOneClass(c.predictions);
}

/** Paper rows first in the paper's order, then by kind (TL, SSL, supervised-synthetic, control, scratch), then label. */
export function compareEncoders(a: EncoderInfo, b: EncoderInfo): number {
  const pa = paperIndex(a);
  const pb = paperIndex(b);
  if (pa !== pb) return pa - pb;
  const ka = a.kind ? KIND_ORDER.indexOf(a.kind) : KIND_ORDER.length;
  const kb = b.kind ? KIND_ORDER.indexOf(b.kind) : KIND_ORDER.length;
  return ka - kb || cmp(a.label, b.label) || cmp(a.encoder, b.encoder);
}

/** Position among the paper's rows; only the paper's own encoder names count (a relabelled custom model does not). */
function paperIndex(e: EncoderInfo): number {
  const label = (PAPER_LABELS as Record<string, string>)[e.encoder];
  const i = label === undefined ? -1 : PAPER_ORDER.indexOf(label);
  return i < 0 ? PAPER_ORDER.length : i;
}

/** The downstream registry's order of tasks (the paper's, §3.3, then the quadratic head), then any other task. */
export const TASK_ORDER: readonly string[] = Object.keys(CATALOG.tasks);

/** Position of a task in TASK_ORDER; tasks the registry does not know come last. */
export function taskRank(t: string): number {
  const i = TASK_ORDER.indexOf(t);
  return i < 0 ? TASK_ORDER.length : i;
}

function emptyStats(): Record<MetricName, MeanSd> {
  const e = (): MeanSd => ({ n: 0, mean: Number.NaN, sd: Number.NaN, min: Number.NaN, max: Number.NaN });
  return { accuracy: e(), f1: e(), auc: e() };
}
