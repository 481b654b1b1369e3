/**
 * Train/test splits of an annotation file without leakage, and its statistics (Masud et al. 2022, §3.1: 480
 * labelled crops split 350 train / 130 test, 50% normal in each split; §4.3: a domain-shift set is all test).
 *
 * Crops of one field share its focus, exposure, background and neighbours (a blurred or saturated field makes all of
 * its crops abnormal alike), so a field with crops on both sides lets a classifier score its test crops by
 * recognising the field: test scores are inflated. {@link splitAnnotations} therefore assigns whole groups — fields,
 * or wells or plates for stricter splits — to one side, and chooses the test groups so that the test side holds
 * the same number of crops of each class to within one. A set that cannot be split so is refused with its counts.
 */
import { QcbError } from '../errors.js';
import { deriveSeed, Rng } from '../util/random.js';
import {
  type Annotation,
  type Label,
  PAPER_SAMPLING,
  parseAnnotations,
  readAnnotationsText,
  type Split,
} from './annotations.js';

/** What crops are kept together on one side of a split: a field (plate, well, site), a well or a plate. */
export const SPLIT_GROUPS = ['field', 'well', 'plate'] as const;
export type SplitGroup = (typeof SPLIT_GROUPS)[number];

/** Plate, well and site of a crop id `<plate>_<well>_s<site>_<x>_<y>` (the plate may contain `_`). */
export interface CropPlace {
  plate: string;
  well: string;
  site: number;
}

const CROP_PLACE = /^(.+)_([^_]+)_s(\d+)_-?\d+_-?\d+$/;

/**
 * Plate, well and site of a crop id (annotations/README.md: `<plate>_<well>_s<site>_<x>_<y>`; the well is the part
 * before `_s<site>`, the plate everything before the well, so `Week4_27481_G10_s2_640_512` is plate `Week4_27481`).
 * Undefined for an id of another form (readAnnotations refuses those).
 */
export function cropPlace(cropId: string): CropPlace | undefined {
  const m = CROP_PLACE.exec(cropId);
  return m ? { plate: m[1], well: m[2], site: Number(m[3]) } : undefined;
}

/** The id of the group a crop belongs to: `<plate>_<well>_s<site>` (field), `<plate>_<well>` (well) or `<plate>`. */
export function groupOf(cropId: string, group: SplitGroup): string {
  const p = cropPlace(cropId);
  if (!p) return cropId;
  if (group === 'plate') return p.plate;
  if (group === 'well') return `${p.plate}_${p.well}`;
  return `${p.plate}_${p.well}_s${p.site}`;
}

/** An annotation file as read for splitting: its rows, and whether it had a `split` column. */
export interface AnnotationsToSplit {
  rows: Annotation[];
  /** False when the file has no `split` column (every row then reads as `train` until split). */
  hasSplit: boolean;
}

/**
 * Reads an annotation file to split or count: the annotations format (src/data/annotations.ts, every check of
 * readAnnotations), except that the `split` column may be missing — a file of labels only (as an annotator writes
 * it) reads with every row `train`. Errors: QCB_FILE_NOT_FOUND, QCB_ANNOTATIONS naming file, line and column.
 */
export function readAnnotationsToSplit(path: string): AnnotationsToSplit {
  const text = readAnnotationsText(path);
  const lines = text.split(/\r?\n/);
  const headerAt = lines.findIndex((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  const header = headerAt < 0 ? [] : lines[headerAt].split(',').map((c) => c.trim().replace(/^"|"$/g, ''));
  if (headerAt < 0 || header.includes('split')) return { rows: parseAnnotations(text, path), hasSplit: true };
  // A placeholder split column on every physical line keeps the line numbers of the file in every error message.
  const filled = lines.map((l, i) =>
    i < headerAt || l.trim() === '' || l.trimStart().startsWith('#') ? l : `${l},${i === headerAt ? 'split' : 'train'}`,
  );
  return { rows: parseAnnotations(filled.join('\n'), path), hasSplit: false };
}

/** Options of {@link splitAnnotations}. */
export interface SplitOptions {
  /**
   * Test crops: a number, or `all` (a domain-shift set, §4.3). Default: the paper's proportion, 130 of 480
   * ({@link defaultTestCount}).
   */
  test?: number | 'all';
  /** Crops kept together on one side (default `field`). */
  group?: SplitGroup;
  seed?: number;
  /** The annotation file, named in errors. */
  file?: string;
}

/** The paper's test share, 130 of 480 crops (§3.1), applied to `total` crops and rounded. */
export function defaultTestCount(total: number): number {
  return Math.round((total * PAPER_SAMPLING.test) / (PAPER_SAMPLING.train + PAPER_SAMPLING.test));
}

/** Crops of each class. */
export interface ClassCounts {
  abnormal: number;
  normal: number;
}

/** A split and what it is made of. */
export interface SplitResult {
  /** Every input row, in input order, with its new `split`. */
  rows: Annotation[];
  group: SplitGroup;
  /** Groups of crops (fields, wells or plates) in the whole set and on the test side. */
  groups: { total: number; test: number };
  test: ClassCounts;
  train: ClassCounts;
}

function countClasses(rows: readonly Annotation[]): ClassCounts {
  let abnormal = 0;
  for (const r of rows) if (r.label === 'abnormal') abnormal++;
  return { abnormal, normal: rows.length - abnormal };
}

/**
 * Splits annotations into train and test (paper §3.1) without leakage: every group of crops (field, well or plate,
 * {@link groupOf}) lies wholly on one side, and the test side holds `test` crops, ⌈test/2⌉ of one class and
 * ⌊test/2⌋ of the other. Which groups go to test is drawn by seed: groups are shuffled, then an exact subset-sum over
 * (abnormal, normal) crop counts of the groups (a 0/1 knapsack in two dimensions) picks the first reachable choice in
 * that order. The train side keeps the rest (balanced when the whole set is; `sampleLabelBudget` draws balanced
 * budgets from it either way).
 * @throws QCB_ANNOTATIONS with the counts (per class, groups, the largest groups, and the `nearest` test sizes that
 *   whole groups do balance) when no choice of whole groups gives a balanced test side of that size, or when `test`
 *   exceeds what the set holds
 */
export function splitAnnotations(rows: readonly Annotation[], opts: SplitOptions = {}): SplitResult {
  const group = opts.group ?? 'field';
  const file = opts.file ?? 'annotations';
  const seed = opts.seed ?? 1;
  const total = countClasses(rows);
  const n = rows.length;
  const want = opts.test === 'all' ? n : (opts.test ?? defaultTestCount(n));
  const byGroup = new Map<string, number[]>();
  rows.forEach((r, i) => {
    const g = groupOf(r.crop_id, group);
    const list = byGroup.get(g);
    if (list) list.push(i);
    else byGroup.set(g, [i]);
  });
  const ids = [...byGroup.keys()].sort();
  const counts = ids.map((g) => countClasses(byGroup.get(g)!.map((i) => rows[i])));
  const refuse = (why: string, fix: string, extra: Record<string, unknown> = {}): never => {
    const largest = ids
      .map((g, k) => ({ g, ...counts[k] }))
      .sort((a, b) => b.abnormal + b.normal - (a.abnormal + a.normal) || (a.g < b.g ? -1 : 1))
      .slice(0, 5)
      .map((c) => `${c.g}: ${c.abnormal} abnormal + ${c.normal} normal`);
    throw new QcbError('QCB_ANNOTATIONS', `${file}: cannot split into a balanced test side of ${want} crops: ${why}`, {
      file,
      key: opts.test === 'all' ? '--test all' : '--test',
      value: {
        crops: n,
        abnormal: total.abnormal,
        normal: total.normal,
        test: want,
        [`${group}s`]: ids.length,
        [`largest ${group}s`]: largest,
        ...extra,
      },
      allowed: `a test side of whole ${group}s with the same number of crops of each class to within one`,
      fix,
    });
  };
  if (!Number.isInteger(want) || want < 1 || want > n)
    refuse(`the set has ${n} crops`, `ask for 1 to ${n} test crops (--test N), or --test all`);
  const hi = Math.ceil(want / 2);
  const lo = Math.floor(want / 2);
  if (Math.min(total.abnormal, total.normal) < lo || Math.max(total.abnormal, total.normal) < hi)
    refuse(
      `it has ${total.abnormal} abnormal and ${total.normal} normal crops, the test side needs ${hi} + ${lo}`,
      `ask for at most ${2 * Math.min(total.abnormal, total.normal) + (total.abnormal !== total.normal ? 1 : 0)} test crops, or label more crops of the rarer class`,
    );
  const order = ids.map((_, k) => k);
  new Rng(deriveSeed(seed, 'annotations-split', group)).shuffle(order);
  // The table reaches somewhat past the target so that a refusal can name the nearest test sizes that do balance.
  const slack = Math.max(5, Math.ceil(want / 4));
  const table = reachable(
    order.map((k) => counts[k]),
    { abnormal: Math.min(total.abnormal, hi + slack), normal: Math.min(total.normal, hi + slack) },
  );
  // (abnormal, normal) targets: ⌈N/2⌉ abnormal first (as sampleLabelBudget), the other way round for odd N.
  const targets: ClassCounts[] = [{ abnormal: hi, normal: lo }];
  if (hi !== lo) targets.push({ abnormal: lo, normal: hi });
  const hit = targets.find((t) => table.has(t));
  if (!hit) {
    const sizes = table.balancedSizes();
    const below = sizes.filter((s) => s > 0 && s < want).pop();
    const above = sizes.find((s) => s > want);
    const nearest = [below, above].filter((s): s is number => s !== undefined);
    refuse(
      `no set of whole ${group}s holds ${hi} crops of one class and ${lo} of the other`,
      (nearest.length
        ? `ask for ${nearest.map((s) => `--test ${s}`).join(' or ')} (the nearest sizes whole ${group}s balance)`
        : `no test size near ${want} balances with whole ${group}s`) +
        (group === 'field'
          ? ', or label crops so that the fields of each class can be balanced'
          : `, or group by a smaller unit (--group ${group === 'plate' ? 'well' : 'field'})`),
      { nearest },
    );
  }
  const chosen = table.subset(hit!).map((j) => order[j]);
  const testGroups = new Set(chosen.map((k) => ids[k]));
  const out = rows.map((r) => ({
    ...r,
    split: (testGroups.has(groupOf(r.crop_id, group)) ? 'test' : 'train') as Split,
  }));
  return {
    rows: out,
    group,
    groups: { total: ids.length, test: testGroups.size },
    test: countClasses(out.filter((r) => r.split === 'test')),
    train: countClasses(out.filter((r) => r.split === 'train')),
  };
}

/** Which (abnormal, normal) sums subsets of the items reach, up to a cap, and one subset for each. */
interface Reachable {
  has(t: ClassCounts): boolean;
  /** Test sizes a + b of the reachable sums with |a − b| ≤ 1, ascending. */
  balancedSizes(): number[];
  /** Indices of items summing to `t` (reachable), preferring earlier items. */
  subset(t: ClassCounts): number[];
}

/**
 * 0/1 knapsack in two dimensions over the (capA+1)×(capB+1) table of (abnormal, normal) sums: `first[s]` is the index
 * of the item that first reached sum s. The sum it came from was reachable with earlier items only, so walking back
 * from any reached sum recovers a valid subset of distinct items.
 */
function reachable(items: readonly ClassCounts[], cap: ClassCounts): Reachable {
  const A = cap.abnormal;
  const B = cap.normal;
  const W = B + 1;
  const first = new Int32Array((A + 1) * W).fill(-1);
  const reached = new Uint8Array((A + 1) * W);
  reached[0] = 1;
  for (let k = 0; k < items.length; k++) {
    const { abnormal: a, normal: b } = items[k];
    if (a > A || b > B) continue;
    for (let x = A; x >= a; x--) {
      for (let y = B; y >= b; y--) {
        const s = x * W + y;
        if (!reached[s] && reached[s - a * W - b]) {
          reached[s] = 1;
          first[s] = k;
        }
      }
    }
  }
  const has = (t: ClassCounts) => t.abnormal <= A && t.normal <= B && reached[t.abnormal * W + t.normal] === 1;
  return {
    has,
    balancedSizes() {
      const out = new Set<number>();
      for (let x = 0; x <= A; x++)
        for (let y = Math.max(0, x - 1); y <= Math.min(B, x + 1); y++) if (reached[x * W + y]) out.add(x + y);
      return [...out].sort((p, q) => p - q);
    },
    subset(t) {
      const out: number[] = [];
      for (let s = t.abnormal * W + t.normal; s !== 0; ) {
        const k = first[s];
        out.push(k);
        s -= items[k].abnormal * W + items[k].normal;
      }
      return out;
    },
  };
}

/** Counts and warnings of an annotation file ({@link annotationStats}). */
export interface AnnotationStats {
  crops: number;
  /** False when the file has no split column: `bySplit` then counts every crop as `train`. */
  hasSplit: boolean;
  /** Crops per split and class. */
  bySplit: Record<Split, ClassCounts>;
  byLabel: Record<Label, number>;
  /** Abnormal crops per artefact type, per split. */
  byType: Record<string, Record<Split, number>>;
  /** Crops per plate, split and class. */
  byPlate: Record<string, Record<Split, ClassCounts>>;
  /** Groups (fields, wells, plates) with crops on both sides, with up to 5 examples each. */
  leakage: Record<SplitGroup, { groups: number; crops: number; examples: string[] }>;
  warnings: string[];
}

/**
 * Counts of an annotation file by split, label, artefact type and plate, with warnings: leakage (a field, well or
 * plate with crops on both sides — §3.1's split should keep fields apart) and imbalance (a split whose classes
 * differ by more than one crop, or that lacks a class).
 */
export function annotationStats(rows: readonly Annotation[], hasSplit = true): AnnotationStats {
  const zero = (): ClassCounts => ({ abnormal: 0, normal: 0 });
  const bySplit: Record<Split, ClassCounts> = { train: zero(), test: zero() };
  const byLabel: Record<Label, number> = { abnormal: 0, normal: 0 };
  const byType: Record<string, Record<Split, number>> = {};
  const byPlate: Record<string, Record<Split, ClassCounts>> = {};
  for (const r of rows) {
    bySplit[r.split][r.label]++;
    byLabel[r.label]++;
    if (r.label === 'abnormal') {
      byType[r.artefact_type] ??= { train: 0, test: 0 };
      byType[r.artefact_type][r.split]++;
    }
    const plate = groupOf(r.crop_id, 'plate');
    byPlate[plate] ??= { train: zero(), test: zero() };
    byPlate[plate][r.split][r.label]++;
  }
  const leakage = {} as AnnotationStats['leakage'];
  for (const g of SPLIT_GROUPS) {
    const sides = new Map<string, { train: number; test: number }>();
    for (const r of rows) {
      const id = groupOf(r.crop_id, g);
      const s = sides.get(id) ?? { train: 0, test: 0 };
      s[r.split]++;
      sides.set(id, s);
    }
    const both = [...sides.entries()].filter(([, s]) => s.train > 0 && s.test > 0).sort(([a], [b]) => (a < b ? -1 : 1));
    leakage[g] = {
      groups: both.length,
      crops: both.reduce((acc, [, s]) => acc + s.train + s.test, 0),
      examples: both.slice(0, 5).map(([id, s]) => `${id} (${s.train} train, ${s.test} test)`),
    };
  }
  const warnings: string[] = [];
  if (hasSplit) {
    for (const g of SPLIT_GROUPS) {
      const l = leakage[g];
      if (l.groups)
        warnings.push(
          `leakage: ${l.groups} ${g}(s) with crops on both sides (${l.crops} crops), e.g. ${l.examples.join(', ')}; ` +
            `split with \`qcbench annotations split FILE --group ${g}\``,
        );
    }
    for (const s of ['train', 'test'] as const) {
      const c = bySplit[s];
      if (c.abnormal + c.normal === 0) continue;
      if (c.abnormal === 0 || c.normal === 0 || Math.abs(c.abnormal - c.normal) > 1)
        warnings.push(
          `imbalance: ${s} has ${c.abnormal} abnormal and ${c.normal} normal crops (the paper's splits are 50% normal)`,
        );
    }
    if (bySplit.test.abnormal + bySplit.test.normal === 0) warnings.push('no test crops: every crop is train');
  } else {
    warnings.push('no split column: split the file with `qcbench annotations split FILE --out FILE`');
    if (Math.abs(byLabel.abnormal - byLabel.normal) > 1)
      warnings.push(`imbalance: ${byLabel.abnormal} abnormal and ${byLabel.normal} normal crops`);
  }
  return { crops: rows.length, hasSplit, bySplit, byLabel, byType, byPlate, leakage, warnings };
}
