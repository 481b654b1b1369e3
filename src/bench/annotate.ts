/**
 * How many crops an annotator must look at to collect the paper's 240 abnormal + 240 normal crops (§3.1), and to
 * reach a given kNN F1, with the annotate page's proposals and without them (crops in random order, screen by
 * screen). A synthetic screen's ground truth stands in for the annotator: every crop shown is "looked at" and gets
 * its true label. F1 is the weighted F1 (metrics/classification.ts, as the report's) of a kNN (k = 5, paper §3.3)
 * trained on every label so far and tested on a fixed, class-balanced held-out set that is never shown.
 */
import { type BinaryLabel, Proposer } from '../annotate/propose.js';
import { storeFeatures } from '../annotate/features.js';
import { TARGETS } from '../annotate/session.js';
import { join } from 'node:path';
import { parseCsv } from '../data/datasets/csv-parse.js';
import { readGroundTruthText } from '../data/annotations.js';
import { findCrops, openCropStore } from '../data/store/crop-store.js';
import { knnClassify } from '../downstream/knn.js';
import { selectFeatureRows, type Features } from '../encoders/features.js';
import { QcbError } from '../errors.js';
import { weightedF1 } from '../metrics/classification.js';
import { deriveSeed, Rng } from '../util/random.js';
import type { Logger } from '../util/log.js';

export type { BinaryLabel };

export interface SimulateOptions {
  /** Crops per screen (the page's grid; default 24). */
  batch?: number;
  seed?: number;
  /** Wanted labels per class (default 240 + 240). */
  targets?: Record<BinaryLabel, number>;
  /** F1 levels (in [0, 1]) to report the looks for (default 0.7, 0.8). */
  f1Levels?: number[];
  /** Held-out crops per class for the F1 (default 65, the paper's test split per class). */
  heldOut?: number;
  /** Clusters of the proposer's diverse sample (default 40). */
  clusters?: number;
  /** Stop after this many looks (default: every crop). */
  maxLooks?: number;
}

export interface SimulateResult {
  strategy: 'proposals' | 'random';
  seed: number;
  /** Crops looked at until both targets were met (null: the pool ran out first). */
  looks_to_targets: number | null;
  /** Labels collected when the targets were met, or at the end. */
  collected: Record<BinaryLabel, number>;
  /** Looks until every artefact type present in the pool was seen once. */
  looks_to_all_types: number | null;
  /** Per F1 level: looks until the kNN reached it (null: never). */
  looks_to_f1: Record<string, number | null>;
  /** kNN F1 after the screen on which both targets were met (null: not met). */
  f1_at_targets: number | null;
  /** (looks, F1 in [0, 1]) after each screen. */
  curve: [number, number][];
  pool: Record<BinaryLabel, number>;
}

/**
 * Simulates one annotation session.
 * @param features N×D features of every crop; `truth[i]` the label of crop i (null: not in the pool), `types[i]`
 *   its artefact type
 */
export function simulateAnnotation(
  features: Features,
  truth: readonly (BinaryLabel | null)[],
  types: readonly string[],
  strategy: 'proposals' | 'random',
  o: SimulateOptions = {},
): SimulateResult {
  const batch = o.batch ?? 24;
  const seed = o.seed ?? 1;
  const targets = o.targets ?? { ...TARGETS };
  const levels = o.f1Levels ?? [0.7, 0.8];
  const perClass = o.heldOut ?? 65;
  const rng = new Rng(deriveSeed(seed, 'annotate-sim', 'held-out'));
  // the held-out test set: perClass of each class, never shown
  const test: number[] = [];
  for (const l of ['normal', 'abnormal'] as const) {
    const ids = truth.flatMap((t, i) => (t === l ? [i] : []));
    if (ids.length < perClass + 1)
      throw new QcbError(
        'QCB_ANNOTATIONS',
        `the screen has ${ids.length} ${l} crops, too few to hold out ${perClass}`,
        {
          key: 'heldOut',
          value: perClass,
          fix: 'use a larger screen (more wells or sites) or a smaller held-out set',
        },
      );
    test.push(...rng.shuffle(ids).slice(0, perClass));
  }
  const testSet = new Set(test);
  const testX = selectFeatureRows(features, test);
  const testY = test.map((i) => truth[i] as string);
  const pool = truth.flatMap((t, i) => (t !== null && !testSet.has(i) ? [i] : []));
  const poolCount = { normal: 0, abnormal: 0 };
  for (const i of pool) poolCount[truth[i] as BinaryLabel]++;
  const allTypes = new Set(pool.filter((i) => truth[i] === 'abnormal').map((i) => types[i]));
  // proposals see only the pool: rows outside it are excluded from the start
  const outside = new Set(truth.flatMap((t, i) => (t === null || testSet.has(i) ? [i] : [])));
  const proposer = strategy === 'proposals' ? new Proposer(features, { clusters: o.clusters, seed, targets }) : null;
  const order = strategy === 'random' ? new Rng(deriveSeed(seed, 'annotate-sim', 'order')).shuffle([...pool]) : [];
  const labels = new Map<number, BinaryLabel>();
  const count = { normal: 0, abnormal: 0 };
  const seenTypes = new Set<string>();
  const res: SimulateResult = {
    strategy,
    seed,
    looks_to_targets: null,
    collected: count,
    looks_to_all_types: null,
    looks_to_f1: Object.fromEntries(levels.map((l) => [String(l), null])),
    f1_at_targets: null,
    curve: [],
    pool: poolCount,
  };
  const max = Math.min(o.maxLooks ?? pool.length, pool.length);
  let looks = 0;
  while (looks < max) {
    const screen =
      proposer !== null
        ? proposer.next(Math.min(batch, max - looks), labels, outside)
        : order.slice(looks, looks + batch);
    if (screen.length === 0) break;
    for (const i of screen) {
      const l = truth[i] as BinaryLabel;
      labels.set(i, l);
      count[l]++;
      looks++;
      if (l === 'abnormal') seenTypes.add(types[i]);
      if (res.looks_to_all_types === null && seenTypes.size === allTypes.size) res.looks_to_all_types = looks;
      if (res.looks_to_targets === null && count.normal >= targets.normal && count.abnormal >= targets.abnormal)
        res.looks_to_targets = looks;
    }
    if (count.normal > 0 && count.abnormal > 0) {
      const idx = [...labels.keys()];
      const r = knnClassify(
        selectFeatureRows(features, idx),
        idx.map((i) => labels.get(i) as string),
        testX,
        { k: 5 },
      );
      const f1 = weightedF1(testY, r.pred, ['normal', 'abnormal']) / 100;
      res.curve.push([looks, f1]);
      for (const l of levels) if (res.looks_to_f1[String(l)] === null && f1 >= l) res.looks_to_f1[String(l)] = looks;
      if (res.looks_to_targets !== null && res.f1_at_targets === null) res.f1_at_targets = f1;
    }
    if (res.looks_to_targets !== null && Object.values(res.looks_to_f1).every((v) => v !== null)) break;
  }
  res.collected = { ...count };
  return res;
}

/** Per store crop: the ground-truth label and type from a synthetic screen's ground_truth.csv (null: no match). */
export function groundTruthOfStore(
  meta: Parameters<typeof findCrops>[0],
  groundTruthCsv: string,
): { truth: (BinaryLabel | null)[]; types: string[] } {
  const text = readGroundTruthText(
    groundTruthCsv,
    '--truth',
    'pass --truth DIR/ground_truth.csv of the synthetic screen the store was cut from',
  );
  const t = parseCsv(text, groundTruthCsv);
  const ids = t.rows.map((r) => r.values.crop_id);
  const at = findCrops(meta, ids, 0);
  const truth: (BinaryLabel | null)[] = meta.map(() => null);
  const types: string[] = meta.map(() => 'none');
  t.rows.forEach((r, j) => {
    const i = at[j];
    const l = r.values.label;
    if (i >= 0 && (l === 'normal' || l === 'abnormal')) {
      truth[i] = l;
      types[i] = r.values.artefact_type || 'none';
    }
  });
  return { truth, types };
}

export interface BenchAnnotateOptions {
  store: string;
  /** Default: ground_truth.csv in the store's source root. */
  truth?: string;
  suggest?: string;
  seeds?: number;
  log?: Logger;
  sim?: SimulateOptions;
}

/** Runs both strategies over `seeds` seeds on a store cut from a synthetic screen. */
export async function benchAnnotate(o: BenchAnnotateOptions): Promise<{
  store: string;
  crops: number;
  suggest: string;
  runs: SimulateResult[];
}> {
  const store = await openCropStore(o.store);
  const truthFile = o.truth ?? join(store.info.source_root, 'ground_truth.csv');
  const { truth, types } = groundTruthOfStore(store.meta, truthFile);
  const suggest = o.suggest ?? 'intensity';
  const f = await storeFeatures(store, suggest, o.log);
  const runs: SimulateResult[] = [];
  for (let s = 1; s <= (o.seeds ?? 3); s++) {
    for (const strategy of ['proposals', 'random'] as const) {
      o.log?.info('simulating', { strategy, seed: s });
      runs.push(simulateAnnotation(f, truth, types, strategy, { ...o.sim, seed: s }));
    }
  }
  return { store: store.path, crops: store.count, suggest, runs };
}
