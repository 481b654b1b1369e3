/**
 * `qcbench bench annotate --store STORE [--truth FILE] [--suggest S] [--seeds 3] [--json]`: crops looked at to
 * collect 240 + 240 labels and to reach a kNN F1, with the annotate page's proposals and in random order
 * (src/bench/annotate.ts).
 */
import { benchAnnotate, type SimulateResult } from '../bench/annotate.js';
import { QcbError } from '../errors.js';
import { intArg, parseCommandArgs } from './args.js';
import type { CliContext, Command } from './types.js';

const usage = `qcbench bench annotate --store STORE [--truth FILE] [--suggest intensity|ENCODER] [--seeds 3]
                       [--batch 24] [--clusters 40] [--f1 0.7,0.8] [--json]

Simulates labelling a store cut from a synthetic screen, its ground truth (--truth, default
<source root>/ground_truth.csv) standing in for the annotator: how many crops must be looked at to collect the
paper's 240 abnormal + 240 normal crops, to see every artefact type once, and to reach each kNN F1 level (k = 5,
trained on all labels so far, tested on 65 + 65 held-out crops), with the proposals of \`qcbench annotate\` and in
random order, screen by screen (--batch crops each). Prints the median and range over --seeds seeds.`;

function parse(args: string[]) {
  return parseCommandArgs(
    {
      args,
      options: {
        store: { type: 'string' },
        truth: { type: 'string' },
        suggest: { type: 'string' },
        seeds: { type: 'string' },
        batch: { type: 'string' },
        clusters: { type: 'string' },
        f1: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    },
    'bench annotate',
  );
}

export const command: Command = {
  name: 'annotate',
  summary: 'crops looked at to collect 240 + 240 labels and reach a kNN F1, with and without proposals',
  usage,
  async run(args: string[], ctx: CliContext): Promise<number> {
    const { values } = parse(args);
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    if (!values.store)
      throw new QcbError('QCB_USAGE', 'missing --store', {
        key: '--store',
        fix: 'qcbench bench annotate --store crops/u2os.zarr (a store cut from `qcbench data synth` fields)',
      });
    const f1Levels = (values.f1 ?? '0.7,0.8').split(',').map(Number);
    if (f1Levels.some((v) => !(v > 0 && v <= 1)))
      throw new QcbError('QCB_USAGE', `bad --f1 '${values.f1}'`, {
        key: '--f1',
        value: values.f1,
        allowed: 'comma-separated numbers in (0, 1]',
        fix: 'e.g. --f1 0.7,0.8',
      });
    const r = await benchAnnotate({
      store: values.store,
      truth: values.truth,
      suggest: values.suggest,
      seeds: intArg(values.seeds, '--seeds', 1) ?? 3,
      log: ctx.log,
      sim: {
        batch: intArg(values.batch, '--batch', 1),
        clusters: intArg(values.clusters, '--clusters', 1),
        f1Levels,
      },
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return 0;
    }
    const pool = r.runs[0].pool;
    const lines = [
      `annotate: ${r.store} (${r.crops} crops; pool ${pool.abnormal} abnormal + ${pool.normal} normal after 65 + 65 held out), features ${r.suggest}`,
      'looks to …            proposals (median [min–max])   random order (median [min–max])',
    ];
    const median = (v: number[], digits: number) => {
      const s = [...v].sort((a, b) => a - b);
      const f = (x: number) => x.toFixed(digits);
      return `${f(s[Math.floor((s.length - 1) / 2)])} [${f(s[0])}–${f(s[s.length - 1])}]`;
    };
    const stat = (runs: SimulateResult[], get: (s: SimulateResult) => number | null, digits = 0) => {
      const v = runs.map(get);
      const got = v.filter((x): x is number => x !== null);
      const never = v.length - got.length;
      if (got.length === 0) return `never (${never}/${v.length} runs)`;
      return `${median(got, digits)}${never ? ` (${never}/${v.length} never)` : ''}`;
    };
    const by = (k: string) => r.runs.filter((s) => s.strategy === k);
    const row = (name: string, get: (s: SimulateResult) => number | null, digits = 0) =>
      `${name.padEnd(22)}${stat(by('proposals'), get, digits).padEnd(31)}${stat(by('random'), get, digits)}`;
    lines.push(row('240 + 240 labels', (s) => s.looks_to_targets));
    lines.push(row('every artefact type', (s) => s.looks_to_all_types));
    for (const l of f1Levels) lines.push(row(`kNN F1 ≥ ${l}`, (s) => s.looks_to_f1[String(l)]));
    lines.push(row('(kNN F1 at 240 + 240)', (s) => s.f1_at_targets, 3));
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
