/**
 * Annotation files: which crops are normal or abnormal, and which are for training or testing the downstream
 * classifiers. Format (documented in `annotations/README.md`): a CSV with the header
 * `crop_id,label,artefact_type,split,source`; `#` lines are comments.
 *
 * Also the paper's sampling (Masud et al. 2022, §3.1): 240 abnormal + 240 normal crops split into 350 train and
 * 130 test with 50% normal in each; a 100 + 100 domain-shift test set (§4.3); and the label budgets of §4.2
 * (350 / 100 / 50 / 25 / 10 training images, class-balanced, nested for a given seed).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { QcbError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { checkId } from '../util/ids.js';
import { closest } from '../util/suggest.js';
import { parseCsv } from './datasets/csv-parse.js';
import { ARTEFACT_TYPES } from './synth/artefacts.js';
import { deriveSeed, Rng } from '../util/random.js';

export type Label = 'normal' | 'abnormal';
export type Split = 'train' | 'test';

/** One annotated crop. */
export interface Annotation {
  /** `<plate>_<well>_s<site>_<x>_<y>`, the crop store's id. */
  crop_id: string;
  label: Label;
  /** `none` for normal crops; an artefact type (see {@link ANNOTATION_ARTEFACT_TYPES}) for abnormal ones. */
  artefact_type: string;
  split: Split;
  /** Who labelled it: `synthetic-ground-truth`, `manual:<annotator>`, … */
  source: string;
}

export const ANNOTATION_COLUMNS = ['crop_id', 'label', 'artefact_type', 'split', 'source'] as const;

/** Artefact types an abnormal annotation may carry: the synthetic taxonomy plus `other` for human annotators. */
export const ANNOTATION_ARTEFACT_TYPES: readonly string[] = [...ARTEFACT_TYPES, 'other'];

/** The paper's annotated BBBC022 set (§3.1). */
export const PAPER_SAMPLING = { abnormal: 240, normal: 240, train: 350, test: 130 } as const;
/** The paper's BBBC021 domain-shift set (§4.3): all test. */
export const DOMAIN_SHIFT_SAMPLING = { abnormal: 100, normal: 100, train: 0, test: 200 } as const;
/** Training-set sizes of the label-budget ablation (§4.2, Table 2). */
export const LABEL_BUDGETS = [350, 100, 50, 25, 10] as const;

const CROP_ID = /^.+_s\d+_-?\d+_-?\d+$/;

/**
 * Parses and validates annotation CSV text. Every problem throws QCB_ANNOTATIONS naming the file, the line and
 * column, the value, what is allowed and the fix — except a crop id that is not a safe id (src/util/ids.ts: the
 * store's crop ids are made of safe plate, well and site ids, so `../` or `/` in one is a bad value), which throws
 * QCB_CSV_VALUE as every table's ids do.
 */
export function parseAnnotations(text: string, file: string): Annotation[] {
  const lines = text.split(/\r?\n/);
  // Comments are blanked, not removed, so the CSV parser's line numbers stay those of the file.
  const body = lines.map((l) => (l.trimStart().startsWith('#') ? '' : l)).join('\n');
  const t = parseCsv(body, file);
  const bad = (line: number, column: string, value: unknown, allowed: string, fix: string, what: string): never => {
    throw new QcbError('QCB_ANNOTATIONS', `${file}:${line}: ${what}`, {
      file,
      key: `line ${line}, column ${column}`,
      value,
      allowed,
      fix,
    });
  };
  const missing = ANNOTATION_COLUMNS.filter((c) => !t.header.includes(c));
  if (missing.length) {
    throw new QcbError('QCB_ANNOTATIONS', `${file}: the header lacks ${missing.join(', ')}`, {
      file,
      key: 'header',
      value: t.header,
      allowed: ANNOTATION_COLUMNS.join(','),
      fix: `start the file with the header line '${ANNOTATION_COLUMNS.join(',')}' (see annotations/README.md)`,
    });
  }
  if (t.malformed.length) {
    const m = t.malformed[0];
    bad(
      m.line,
      '*',
      m.reason,
      `${t.header.length} comma-separated cells`,
      'quote cells that contain commas and give every line all columns',
      'malformed line',
    );
  }
  const out: Annotation[] = [];
  const seen = new Map<string, number>();
  for (const { line, values } of t.rows) {
    const crop_id = (values.crop_id ?? '').trim();
    if (!CROP_ID.test(crop_id)) {
      bad(
        line,
        'crop_id',
        crop_id,
        '<plate>_<well>_s<site>_<x>_<y> with integer site, x and y',
        "use the crop ids of the crop store's crops.csv",
        'bad crop id',
      );
    }
    checkId(crop_id, { file, key: 'crop_id', line });
    const prev = seen.get(crop_id);
    if (prev !== undefined) {
      bad(
        line,
        'crop_id',
        crop_id,
        'each crop once',
        `remove one of the two rows (the first is on line ${prev})`,
        `crop ${crop_id} is annotated twice`,
      );
    }
    seen.set(crop_id, line);
    const label = (values.label ?? '').trim();
    if (label !== 'normal' && label !== 'abnormal') {
      bad(line, 'label', label, 'normal, abnormal', hint(label, ['normal', 'abnormal']), 'bad label');
    }
    const split = (values.split ?? '').trim();
    if (split !== 'train' && split !== 'test')
      bad(line, 'split', split, 'train, test', hint(split, ['train', 'test']), 'bad split');
    let artefact = (values.artefact_type ?? '').trim();
    if (label === 'normal') {
      if (artefact === '') artefact = 'none';
      if (artefact !== 'none') {
        bad(
          line,
          'artefact_type',
          artefact,
          "'none' for normal crops",
          "write 'none', or label the crop abnormal",
          'a normal crop with an artefact type',
        );
      }
    } else if (!ANNOTATION_ARTEFACT_TYPES.includes(artefact)) {
      bad(
        line,
        'artefact_type',
        artefact,
        ANNOTATION_ARTEFACT_TYPES.join(', '),
        hint(artefact, ANNOTATION_ARTEFACT_TYPES),
        'unknown artefact type for an abnormal crop',
      );
    }
    const source = (values.source ?? '').trim();
    if (!/^[A-Za-z0-9_.-]+(:[^\s,]+)?$/.test(source)) {
      bad(
        line,
        'source',
        source,
        "'synthetic-ground-truth' or 'manual:<annotator>' (no spaces)",
        'say who labelled the crop, e.g. manual:jdoe',
        'bad source',
      );
    }
    out.push({ crop_id, label: label as Label, artefact_type: artefact, split: split as Split, source });
  }
  if (out.length === 0) {
    throw new QcbError('QCB_ANNOTATIONS', `${file}: no annotations`, {
      file,
      key: 'rows',
      fix: 'add one row per annotated crop below the header',
    });
  }
  return out;
}

function hint(value: string, allowed: readonly string[]): string {
  const best = closest(value, allowed);
  return best.length ? `did you mean '${best[0]}'?` : `use one of: ${allowed.join(', ')}`;
}

/** The text of an annotation file (QCB_FILE_NOT_FOUND if it does not exist). */
export function readAnnotationsText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `annotation file ${path} not found`, {
      file: path,
      cause: e,
      fix: 'check the path (annotation files live in annotations/ or next to your crop store)',
    });
  }
}

/** Reads and validates an annotation file (QCB_FILE_NOT_FOUND if it does not exist). */
export function readAnnotations(path: string): Annotation[] {
  return parseAnnotations(readAnnotationsText(path), path);
}

/** The CSV text of annotations (train rows first, then test; crop ids sorted), with optional `#` comment lines. */
export function formatAnnotations(rows: Annotation[], comments: string[] = []): string {
  const order = (s: Split) => (s === 'train' ? 0 : 1);
  const sorted = [...rows].sort(
    (a, b) => order(a.split) - order(b.split) || (a.crop_id < b.crop_id ? -1 : a.crop_id > b.crop_id ? 1 : 0),
  );
  const lines = [...comments.map((c) => `# ${c}`), ANNOTATION_COLUMNS.join(',')];
  for (const r of sorted) lines.push([r.crop_id, r.label, r.artefact_type, r.split, r.source].join(','));
  return `${lines.join('\n')}\n`;
}

/** Writes an annotation file atomically. */
export function writeAnnotations(path: string, rows: Annotation[], comments: string[] = []): void {
  writeFileAtomic(path, formatAnnotations(rows, comments));
}

export interface SamplingOptions {
  abnormal: number;
  normal: number;
  train: number;
  test: number;
  seed: number;
  /** `source` written on every row (default `synthetic-ground-truth`). */
  source?: string;
  /**
   * Only crops whose whole square of this side lies inside the field (any border policy then keeps them).
   * makeAnnotationsFromGroundTruth defaults it (and `field`) to the screen's `synth.json` beside the ground truth.
   */
  cropSize?: number;
  /** Field size for the border rule (default: from `synth.json`). */
  field?: { width: number; height: number };
}

/**
 * The text of a synthetic screen's `ground_truth.csv`; QCB_FILE_NOT_FOUND naming it (and the option `key` that gave
 * it) with `fix` when it cannot be read.
 */
export function readGroundTruthText(
  groundTruthCsv: string,
  key?: string,
  fix = 'generate the screen first with qcbench data synth --out DIR (it writes DIR/ground_truth.csv)',
): string {
  try {
    return readFileSync(groundTruthCsv, 'utf8');
  } catch (e) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `ground truth ${groundTruthCsv} not found`, {
      file: groundTruthCsv,
      ...(key ? { key } : {}),
      cause: e,
      fix,
    });
  }
}

/**
 * Samples a balanced annotation set from a synthetic screen's `ground_truth.csv` (paper §3.1): `abnormal` and
 * `normal` crops drawn at random (deterministic by seed), then split so that train and test each hold 50% normal
 * crops. Requires abnormal = normal = (train + test) / 2 with train and test even.
 */
export function makeAnnotationsFromGroundTruth(groundTruthCsv: string, opts: SamplingOptions): Annotation[] {
  const text = readGroundTruthText(groundTruthCsv);
  const meta = readSynthMeta(groundTruthCsv);
  return annotationsFromGroundTruthText(text, groundTruthCsv, {
    ...opts,
    cropSize: opts.cropSize ?? meta?.cropSize,
    field: opts.field ?? meta,
  });
}

/** {@link makeAnnotationsFromGroundTruth} on the text of a ground truth table (`file` names it in errors). */
export function annotationsFromGroundTruthText(
  text: string,
  groundTruthCsv: string,
  opts: SamplingOptions,
): Annotation[] {
  const { abnormal, normal, train, test } = opts;
  const fail = (key: string, value: unknown, allowed: string, fix: string, msg: string): never => {
    throw new QcbError('QCB_ANNOTATIONS', msg, { file: groundTruthCsv, key, value, allowed, fix });
  };
  if (
    abnormal !== normal ||
    abnormal + normal !== train + test ||
    train % 2 ||
    test % 2 ||
    abnormal < 0 ||
    train < 0 ||
    test < 0
  ) {
    fail(
      'abnormal/normal/train/test',
      { abnormal, normal, train, test },
      'abnormal = normal = (train + test) / 2, train and test even',
      'use balanced counts such as 240/240 with 350/130, or 100/100 with 0/200',
      'annotation counts are not balanced',
    );
  }
  const t = parseCsv(text, groundTruthCsv);
  for (const c of ['crop_id', 'x', 'y', 'label', 'artefact_type']) {
    if (!t.header.includes(c))
      fail(
        'header',
        t.header,
        'crop_id, plate, well, site, x, y, label, artefact_type',
        'point at a ground_truth.csv written by qcbench data synth',
        `ground truth lacks column ${c}`,
      );
  }
  const cropSize = opts.cropSize ?? 0;
  const field = opts.field;
  const half = cropSize / 2;
  const inside = (x: number, y: number) =>
    !field || cropSize === 0 || (x - half >= 0 && y - half >= 0 && x + half <= field.width && y + half <= field.height);
  const pools: Record<Label, { crop_id: string; artefact: string }[]> = { normal: [], abnormal: [] };
  for (const { values } of t.rows) {
    const x = Number(values.x);
    const y = Number(values.y);
    if (!inside(x, y)) continue;
    const label = values.label as Label;
    if (label !== 'normal' && label !== 'abnormal') continue;
    pools[label].push({ crop_id: values.crop_id, artefact: label === 'normal' ? 'none' : values.artefact_type });
  }
  for (const label of ['abnormal', 'normal'] as const) {
    const want = label === 'abnormal' ? abnormal : normal;
    if (pools[label].length < want) {
      fail(
        label,
        want,
        `at most ${pools[label].length} ${label} crops away from the field borders`,
        'ask for fewer crops, or generate a larger screen (more --wells / --sites)',
        `the screen has only ${pools[label].length} ${label} crops to sample from`,
      );
    }
  }
  const source = opts.source ?? 'synthetic-ground-truth';
  const rows: Annotation[] = [];
  for (const label of ['abnormal', 'normal'] as const) {
    const pool = pools[label].sort((a, b) => (a.crop_id < b.crop_id ? -1 : 1));
    new Rng(deriveSeed(opts.seed, 'annotations', label)).shuffle(pool);
    const n = label === 'abnormal' ? abnormal : normal;
    for (let i = 0; i < n; i++) {
      rows.push({
        crop_id: pool[i].crop_id,
        label,
        artefact_type: pool[i].artefact,
        split: i < train / 2 ? 'train' : 'test',
        source,
      });
    }
  }
  return rows;
}

/** Width, height and crop size from the `synth.json` next to a ground truth file, when there is one. */
function readSynthMeta(groundTruthCsv: string): { width: number; height: number; cropSize: number } | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dirname(groundTruthCsv), 'synth.json'), 'utf8')) as {
      result?: { options?: { width: number; height: number; cropSize: number } };
    };
    return m.result?.options;
  } catch {
    return undefined;
  }
}

/**
 * A class-balanced training subset of `budget` crops (paper §4.2): ⌈budget/2⌉ abnormal and ⌊budget/2⌋ normal
 * crops from the `train` split, drawn by seed. Nested: for one seed, the subset of a smaller budget is contained
 * in that of a larger one (both are prefixes of the same seeded order). Throws QCB_ANNOTATIONS if a class is short.
 */
export function sampleLabelBudget(
  annotations: Annotation[],
  budget: number,
  seed: number,
  file = 'annotations',
): Annotation[] {
  if (!Number.isInteger(budget) || budget < 2) {
    throw new QcbError('QCB_ANNOTATIONS', `label budget ${budget} is not an integer ≥ 2`, {
      file,
      key: 'budget',
      value: budget,
      allowed: 'an integer ≥ 2 (one crop per class at least)',
      fix: 'use budgets such as 350, 100, 50, 25, 10',
    });
  }
  const out: Annotation[] = [];
  for (const label of ['abnormal', 'normal'] as const) {
    const n = label === 'abnormal' ? Math.ceil(budget / 2) : Math.floor(budget / 2);
    const pool = annotations
      .filter((a) => a.split === 'train' && a.label === label)
      .sort((a, b) => (a.crop_id < b.crop_id ? -1 : 1));
    if (pool.length < n) {
      throw new QcbError(
        'QCB_ANNOTATIONS',
        `label budget ${budget} needs ${n} ${label} training crops, the file has ${pool.length}`,
        {
          file,
          key: 'budget',
          value: budget,
          allowed: `at most ${2 * pool.length} with this file`,
          fix: 'lower the budget or annotate more training crops',
        },
      );
    }
    new Rng(deriveSeed(seed, 'label-budget', label)).shuffle(pool);
    out.push(...pool.slice(0, n));
  }
  return out;
}
