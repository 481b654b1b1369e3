/**
 * `qcbench bench report [--json]`: seconds `qcbench report` takes on full-protocol-sized results, and the size of its
 * index.html (src/bench/report.ts).
 */
import { parseArgs } from 'node:util';
import { QcbError } from '../errors.js';
import { benchReport, HTML_TARGET_MB, REPORT_TARGET_SECONDS } from '../bench/report.js';
import type { Command } from './types.js';

const usage = `qcbench bench report [--json] [--no-png] [--seeds N] [--keep DIR]

Times \`qcbench report\` on results the size of the full protocol's (protocols/full.yaml: its 216 cells, each
finished with 130 test predictions, a 1042×522 montage of misclassified crops per cell, SSL loss curves of 5,000
steps), target under ${REPORT_TARGET_SECONDS} s, and measures its index.html, which must stay small enough to e-mail
(target ≤ ${HTML_TARGET_MB} MB). The results are SYNTHETIC (made-up predictions scored with the real metrics),
written to a temporary directory that is deleted afterwards; the report runs as a fresh \`qcbench report\`
process, timed by wall clock. Numbers depend on the machine's current load.

  --no-png      time the report without PNG rendering (as qcbench report --no-png)
  --seeds N     only the protocol's first N seeds (smaller results; default: all 3)
  --keep DIR    write the results and the report into DIR (new or empty) and keep them
  --json        print the result as JSON (html_mb, html_target_mb, meets_html_target: the HTML size)`;

export const command: Command = {
  name: 'report',
  summary: `seconds qcbench report takes on full-protocol-sized results (target < ${REPORT_TARGET_SECONDS} s) and its HTML size (≤ ${HTML_TARGET_MB} MB)`,
  usage,
  async run(args, ctx) {
    const parse = () =>
      parseArgs({
        args,
        options: {
          json: { type: 'boolean', default: false },
          'no-png': { type: 'boolean', default: false },
          seeds: { type: 'string' },
          keep: { type: 'string' },
          help: { type: 'boolean', short: 'h', default: false },
        },
      }).values;
    let values: ReturnType<typeof parse>;
    try {
      values = parse();
    } catch (e) {
      throw new QcbError('QCB_USAGE', (e as Error).message, { fix: 'see `qcbench bench report --help`' });
    }
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    let seeds: number | undefined;
    if (values.seeds !== undefined) {
      seeds = Number(values.seeds);
      if (!Number.isInteger(seeds) || seeds < 1)
        throw new QcbError('QCB_USAGE', `--seeds must be a positive integer, got '${values.seeds}'`, {
          key: '--seeds',
          value: values.seeds,
          allowed: 'an integer ≥ 1',
          fix: 'e.g. --seeds 1',
        });
    }
    ctx.log.info('writing synthetic full-protocol results, then timing qcbench report on them');
    const r = await benchReport({ seeds, png: !values['no-png'], keep: values.keep });
    if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else {
      process.stdout.write(
        `report on ${r.cells} cells (${r.protocol}, seeds ${r.seeds.join(', ')}; ${r.montages} montages${r.png ? '' : '; no PNGs'})\n` +
          `qcbench report ${r.report_seconds.toFixed(2)} s wall (build ${r.build_seconds.toFixed(2)} s): target < ${r.target_seconds} s ${r.meets_target ? 'met' : 'NOT met'}\n` +
          `index.html ${r.html_mb.toFixed(1)} MB: target ≤ ${r.html_target_mb} MB ${r.meets_html_target ? 'met' : 'NOT met'}\n` +
          `${r.charts} charts, ${r.files} files, ${r.report_mb.toFixed(1)} MB in all   ${r.cores} cores, load ${r.load_average}\n` +
          `${r.dir ? `kept in ${r.dir}\n` : ''}(${r.note})\n`,
      );
    }
    return 0;
  },
};
