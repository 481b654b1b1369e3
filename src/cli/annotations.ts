/**
 * `qcbench annotations split FILE --out FILE` and `qcbench annotations stats FILE`: train/test splits of an
 * annotation file that keep every field (well, plate) on one side with a class-balanced test side (paper §3.1), and
 * the counts and warnings (leakage, imbalance) of a file.
 */
import { resolve } from 'node:path';
import { writeAnnotations } from '../data/annotations.js';
import {
  type AnnotationStats,
  annotationStats,
  defaultTestCount,
  readAnnotationsToSplit,
  SPLIT_GROUPS,
  type SplitGroup,
  splitAnnotations,
} from '../data/annotations-split.js';
import { QcbError } from '../errors.js';
import { intArg, parseCommandArgs, requireOptions } from './args.js';
import type { CliContext, Command } from './types.js';

const splitUsage = `qcbench annotations split FILE --out FILE [--test N|all] [--group field|well|plate] [--seed S]

Splits the crops of an annotation file (annotations/README.md) into train and test, as the paper's 350 / 130 of 480
(§3.1): the test side holds N crops, half of each class (to within one crop), and every field — or well, or plate,
with --group — lies wholly on one side, since crops of one field share its focus, exposure and neighbours and
splitting them inflates test scores. Which fields go to test is drawn by --seed. The file may lack a split column
(labels only); the output is the annotations format with the split written, replaced atomically.

  --out FILE         where to write the split annotations (may be FILE itself)
  --test N|all       test crops (default: the paper's proportion, 130 of 480, rounded); all = a domain-shift set
  --group G          field (default), well or plate: what never lies on both sides
  --seed S           which of the possible splits (default 1)
  --json             on a problem, also print the error as one JSON object on stdout

A set whose whole groups cannot make a balanced test side of N crops is refused with its counts and the nearest
test sizes that do balance (exit 2, nothing written). See the result with qcbench annotations stats FILE.`;

const statsUsage = `qcbench annotations stats FILE [--json]

Counts of an annotation file by split, label, artefact type and plate, and warnings: leakage (a field, well or plate
with crops on both sides) and imbalance (a split whose classes differ by more than one crop). Exit 0 with or
without warnings; --json prints the counts as one JSON object.`;

function oneFile(positionals: string[], example: string): string {
  if (positionals.length !== 1)
    throw new QcbError('QCB_USAGE', 'give exactly one annotation file', { value: positionals, fix: example });
  return positionals[0];
}

/** `annotations split`. */
export const split: Command = {
  name: 'split',
  summary: 'class-balanced train/test split that keeps each field (well, plate) on one side',
  usage: splitUsage,
  async run(args: string[], ctx: CliContext): Promise<number> {
    const example = 'qcbench annotations split labels.csv --out annotations.csv';
    const { values, positionals } = parseCommandArgs(
      {
        args,
        allowPositionals: true,
        options: {
          out: { type: 'string' },
          test: { type: 'string' },
          group: { type: 'string' },
          seed: { type: 'string' },
          json: { type: 'boolean', default: false },
        },
      },
      'annotations split',
    );
    const file = oneFile(positionals, example);
    requireOptions(values, ['out'], example);
    const group = (values.group ?? 'field') as SplitGroup;
    if (!SPLIT_GROUPS.includes(group))
      throw new QcbError('QCB_USAGE', `bad --group '${values.group}'`, {
        key: '--group',
        value: values.group,
        allowed: SPLIT_GROUPS.join(', '),
        fix: 'e.g. --group field',
      });
    const test = values.test === 'all' ? 'all' : intArg(values.test, '--test', 1);
    const seed = intArg(values.seed, '--seed', 0) ?? 1;
    const { rows, hasSplit } = readAnnotationsToSplit(file);
    const res = splitAnnotations(rows, { test, group, seed, file });
    const out = resolve(values.out!);
    const n = res.test.abnormal + res.test.normal;
    writeAnnotations(out, res.rows, [
      `split by qcbench annotations split: ${n} test crops (${res.test.abnormal} abnormal + ${res.test.normal} normal) ` +
        `of ${rows.length}, whole ${group}s on each side (${res.groups.test} of ${res.groups.total} ${group}s test), seed ${seed}`,
      `from ${file}${hasSplit ? '' : ' (no split column)'}; test count ${test === undefined ? `default ${defaultTestCount(rows.length)} (130 of 480)` : test}`,
    ]);
    ctx.log.info('annotations split', {
      file: out,
      train: `${res.train.abnormal} abnormal + ${res.train.normal} normal`,
      test: `${res.test.abnormal} abnormal + ${res.test.normal} normal`,
      [`${group}s`]: `${res.groups.test} test / ${res.groups.total}`,
      seed,
    });
    return 0;
  },
};

/** The stats as text: tables of counts, then the warnings. */
export function formatStats(file: string, s: AnnotationStats): string {
  const pad = (v: string | number, w: number) => String(v).padStart(w);
  const lines = [`${file}: ${s.crops} crops (${s.byLabel.abnormal} abnormal, ${s.byLabel.normal} normal)`, ''];
  lines.push(`${'split'.padEnd(8)}${pad('abnormal', 10)}${pad('normal', 8)}${pad('total', 7)}`);
  for (const sp of ['train', 'test'] as const) {
    const c = s.bySplit[sp];
    lines.push(`${sp.padEnd(8)}${pad(c.abnormal, 10)}${pad(c.normal, 8)}${pad(c.abnormal + c.normal, 7)}`);
  }
  lines.push('', `${'artefact type'.padEnd(16)}${pad('train', 7)}${pad('test', 6)}`);
  for (const [t, c] of Object.entries(s.byType).sort(([a], [b]) => (a < b ? -1 : 1)))
    lines.push(`${t.padEnd(16)}${pad(c.train, 7)}${pad(c.test, 6)}`);
  lines.push('', `${'plate'.padEnd(16)}${pad('train abn/norm', 16)}${pad('test abn/norm', 15)}`);
  for (const [pl, c] of Object.entries(s.byPlate).sort(([a], [b]) => (a < b ? -1 : 1)))
    lines.push(
      `${pl.padEnd(16)}${pad(`${c.train.abnormal}/${c.train.normal}`, 16)}${pad(`${c.test.abnormal}/${c.test.normal}`, 15)}`,
    );
  lines.push('');
  if (s.warnings.length) for (const w of s.warnings) lines.push(`warning: ${w}`);
  else lines.push('no leakage, classes balanced in each split');
  return `${lines.join('\n')}\n`;
}

/** `annotations stats`. */
export const stats: Command = {
  name: 'stats',
  summary: 'counts by split, label, artefact type and plate; leakage and imbalance warnings',
  usage: statsUsage,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseCommandArgs(
      { args, allowPositionals: true, options: { json: { type: 'boolean', default: false } } },
      'annotations stats',
    );
    const file = oneFile(positionals, 'qcbench annotations stats annotations.csv');
    const { rows, hasSplit } = readAnnotationsToSplit(file);
    const s = annotationStats(rows, hasSplit);
    process.stdout.write(values.json ? `${JSON.stringify({ file, ...s }, null, 2)}\n` : formatStats(file, s));
    return 0;
  },
};
