import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { QcbError } from '../errors.js';
import type { EvaluationConfig, Protocol } from '../protocol/schema.js';
import { loadProtocol } from '../runner/catalog.js';
import { didYouMean } from '../util/suggest.js';
import { RUN_OPTIONS, RUN_OPTIONS_HELP, runWithOptions } from './run.js';
import type { Command } from './types.js';

const PROTOCOLS_DIR = new URL('../../protocols/', import.meta.url).pathname;

/** The shipped ablations: each a protocol in protocols/ that extends full.yaml and overrides a few keys. */
export const ABLATIONS = {
  'label-budget': 'label-budget.yaml',
  'domain-shift': 'domain-shift.yaml',
} as const;

/**
 * The training and the shifted test set of a domain-shift ablation on `base` (paper §4.3, Table 3: trained on one
 * screen, tested on another): the base's own shift when one of its evaluations has one (train_set ≠ test_set), else
 * its `data.pretrain_on` (where its evaluations train by default) and the first other annotated data set.
 * @throws QCB_ABLATION_BASE when the base has no second annotated data set
 */
export function domainShiftSets(base: Protocol, baseFile: string): { train: string; test: string } {
  const shift = base.evaluations.find((ev) => ev.test_set !== ev.train_set);
  if (shift) return { train: shift.train_set, test: shift.test_set };
  const train = base.data.pretrain_on;
  const test = Object.entries(base.data.datasets).find(([n, ds]) => n !== train && ds.annotations)?.[0];
  if (!test)
    throw new QcbError(
      'QCB_ABLATION_BASE',
      `the domain-shift ablation needs a second data set to test on, and protocol '${base.name}' has only '${train}'${
        Object.keys(base.data.datasets).length > 1 ? ' with annotations' : ''
      }`,
      {
        file: baseFile,
        key: 'data.datasets',
        allowed: 'a data set other than data.pretrain_on, with an annotations file',
        fix: `add the shifted screen under data.datasets (e.g. \`other: { format: csv, root: ..., annotations: other.csv }\`, annotated as annotations/README.md) and run the ablation again; add an evaluation with \`test_set: other\` to choose it among several`,
      },
    );
  return { train, test };
}

/**
 * The domain-shift ablation's evaluations over `base`: each evaluation of the shipped ablation (`abl`, resolved over
 * full.yaml) keeps its name and tasks, tests in-domain (its test set is its training set) or on the shifted set, and
 * trains at the base's largest budget on that training set (the paper's: the whole annotated training split, 350 on
 * BBBC022), so a base with fewer annotated crops is not asked for more than it has.
 */
function domainShiftEvaluations(abl: Protocol, base: Protocol, baseFile: string): EvaluationConfig[] {
  const { train, test } = domainShiftSets(base, baseFile);
  const budgets = base.evaluations.filter((ev) => ev.train_set === train).flatMap((ev) => ev.budgets);
  const budget = budgets.length ? Math.max(...budgets) : Math.max(...abl.evaluations.flatMap((ev) => ev.budgets));
  return abl.evaluations.map((ev) => ({
    ...(ev.name !== undefined ? { name: ev.name } : {}),
    tasks: ev.tasks,
    budgets: [budget],
    train_set: train,
    test_set: ev.test_set === ev.train_set ? train : test,
  }));
}

/**
 * The protocol file for an ablation. With a base protocol, the ablation's own keys (all but version/extends) are laid
 * over that base instead of full.yaml, through a small generated protocol that `extends` the base, written under
 * `workdir` (default the base's) in `ablations/`. The domain shift names data sets: they are taken from the base
 * (domainShiftSets), not from full.yaml's BBBC022 / BBBC021.
 */
export function ablationProtocolFile(name: string, base?: string, workdir?: string): string {
  if (!Object.hasOwn(ABLATIONS, name))
    throw new QcbError('QCB_UNKNOWN_NAME', `unknown ablation '${name}'`, {
      value: name,
      fix: didYouMean(name, Object.keys(ABLATIONS)),
    });
  const file = join(PROTOCOLS_DIR, ABLATIONS[name as keyof typeof ABLATIONS]);
  if (!base) return file;
  const baseProtocol = loadProtocol(base, { workdir }); // checks the base first: its errors name its own file
  const {
    version: _v,
    extends: _e,
    name: _n,
    description,
    ...over
  } = parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  let about = `${description ?? name}`;
  if (name === 'domain-shift') {
    over.evaluations = domainShiftEvaluations(loadProtocol(file), baseProtocol, base);
    const { train, test } = domainShiftSets(baseProtocol, base);
    about = `Fine-tuned on ${train}, tested on ${train} and on ${test} (domain shift, paper Table 3)`;
  }
  const dir = join(baseProtocol.workdir, 'ablations');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `${baseProtocol.name}-${name}.yaml`);
  writeFileSync(
    out,
    `# Generated by qcbench ablation ${name} --protocol ${base}: the ablation's keys over that protocol.\n${stringify({
      version: 1,
      extends: resolve(base),
      name: `${baseProtocol.name}-${name}`,
      description: `${about} (on ${baseProtocol.name})`,
      ...over,
    })}`,
  );
  return out;
}

export const command: Command = {
  name: 'ablation',
  summary: 'run one ablation: label-budget | domain-shift',
  usage: `qcbench ablation label-budget|domain-shift [--protocol BASE.yaml] [run options]

label-budget   fine-tuning at 350/100/50/25/10 annotated crops (paper Table 2)
domain-shift   fine-tuned on the training screen, tested in-domain and on the shifted screen (paper Table 3)

Without --protocol the ablation runs on protocols/full.yaml (BBBC022 / BBBC021); with it, on your own protocol's
data and encoders (the ablation overrides only its evaluations; domain-shift trains on the base's own shift or its
data.pretrain_on, tests on its other annotated data set, at the base's largest budget there). Cells already computed by another run with the same
settings and data are reused from the cache.

${RUN_OPTIONS_HELP}`,
  async run(args, ctx) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { ...RUN_OPTIONS, protocol: { type: 'string' } },
    });
    if (positionals.length !== 1)
      throw new QcbError('QCB_USAGE', 'ablation needs a name', {
        fix: `qcbench ablation ${Object.keys(ABLATIONS).join('|')}`,
      });
    const file = ablationProtocolFile(positionals[0], values.protocol, values.workdir);
    const p = loadProtocol(file, { workdir: values.workdir });
    const rest = args.filter(
      (a, i) => a !== '--json' && a !== '--protocol' && args[i - 1] !== '--protocol' && a !== positionals[0],
    );
    return runWithOptions(p, values, ctx.log, [process.argv[1], 'run', file, ...rest]);
  },
};
