/** `qcbench report`: rebuilds every table, chart and the HTML report from a results directory (src/reports/build.ts). */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EXIT, QcbError } from '../errors.js';
import { buildReport } from '../reports/build.js';
import type { Command } from './types.js';

const DEFAULT_RESULTS_ROOT = join('.qcbench', 'results');

/** `.qcbench/results/<name>/` when it is the only run there. */
function defaultResultsDir(): string {
  const root = resolve(DEFAULT_RESULTS_ROOT);
  const runs = existsSync(root)
    ? readdirSync(root)
        .filter((d) => existsSync(join(root, d, 'run.json')))
        .sort()
    : [];
  if (runs.length === 1) return join(root, runs[0]);
  if (runs.length === 0) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `no results directory found under ./${DEFAULT_RESULTS_ROOT}`, {
      key: '--results',
      fix: 'run a protocol first (qcbench run protocols/quick.yaml) or pass --results DIR',
    });
  }
  throw new QcbError('QCB_USAGE', `several runs under ./${DEFAULT_RESULTS_ROOT}: ${runs.join(', ')}`, {
    key: '--results',
    allowed: runs.map((r) => `${DEFAULT_RESULTS_ROOT}/${r}`).join(', '),
    fix: `pass --results ${DEFAULT_RESULTS_ROOT}/${runs[0]} (or another of them)`,
  });
}

const usage = `qcbench report [--results DIR] [--out DIR] [--reference FILE] [--no-png] [--json]

Rebuilds Tables 1–3 of Masud et al. 2022 (Markdown, CSV, LaTeX) with the paper's figure beside each of ours,
the Vega-Lite charts (.vl.json, SVG, PNG) and one self-contained HTML report from a results directory.
The same results always give byte-identical tables. Second-order results stored in <results>/second-order/
(qcbench second-order spirals|rings --out <results>/second-order) add a "Second-order neurons" section with
their table and decision maps.

  --results DIR      results directory of a run (default: the only run under ./.qcbench/results, where runs
                     write unless the protocol sets another workdir)
  --out DIR          output directory (default: reports/out)
  --reference FILE   the paper's tables as CSV (default: the copy shipped in the package,
                     reports/reference/masud2022_tables.csv)
  --no-png           skip PNG rendering (SVG and Vega-Lite only)
  --json             print the summary as JSON on stdout

See reports/README.md for how to read the report.`;

export const command: Command = {
  name: 'report',
  summary: 'rebuild tables, charts and the HTML report from a results directory',
  usage,
  async run(args, ctx) {
    let values: {
      results?: string;
      out?: string;
      reference?: string;
      'no-png'?: boolean;
      json?: boolean;
      help?: boolean;
    };
    try {
      ({ values } = parseArgs({
        args,
        options: {
          results: { type: 'string' },
          out: { type: 'string' },
          reference: { type: 'string' },
          'no-png': { type: 'boolean', default: false },
          json: { type: 'boolean', default: false },
          help: { type: 'boolean', short: 'h', default: false },
        },
        allowPositionals: false,
      }));
    } catch (e) {
      throw new QcbError('QCB_USAGE', (e as Error).message, { fix: `usage: ${usage.split('\n')[0]}` });
    }
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return EXIT.ok;
    }
    const results = values.results ? resolve(values.results) : defaultResultsDir();
    const out = resolve(values.out ?? join('reports', 'out'));
    const summary = await buildReport(results, out, {
      reference: values.reference,
      png: !values['no-png'],
      log: ctx.log,
    });
    if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else {
      ctx.log.info(`report: ${join(out, 'index.html')}`);
      if (summary.counts.failed)
        ctx.log.warn(`${summary.counts.failed} cell(s) failed: see the report's "Failed cells"`);
      if (summary.counts.skipped) ctx.log.warn(`${summary.counts.skipped} cell(s) skipped: the tables name the fix`);
    }
    return EXIT.ok;
  },
};
