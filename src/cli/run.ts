import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EXIT, QcbError } from '../errors.js';
import { loadProtocol } from '../runner/catalog.js';
import type { Protocol } from '../protocol/schema.js';
import { tryClaim } from '../runner/cache.js';
import { expandCells } from '../runner/cells.js';
import { reportOutdated, runReportDir, type RunSummary, runProtocol, summarize } from '../runner/run.js';
import type { Logger } from '../util/log.js';
import { parseShard } from '../util/shard.js';
import { qcbenchVersion } from '../util/version.js';
import { applyProviderOption, type Command, PROVIDER_OPTION } from './types.js';

/** Options shared by `run` and `ablation`. */
export const RUN_OPTIONS = {
  shard: { type: 'string' },
  workers: { type: 'string' },
  threads: { type: 'string' },
  results: { type: 'string' },
  workdir: { type: 'string' },
  'no-retry-failed': { type: 'boolean', default: false },
  'max-cells': { type: 'string' },
  'no-report': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  ...PROVIDER_OPTION,
} as const;

export const RUN_OPTIONS_HELP = `  --shard i/n          run shard i of n (0-based), e.g. a SLURM array task or a Kubernetes indexed Job pod;
                       all shards write into one shared results directory
  --workers N          run N local worker processes in parallel (default 1)
  --threads N          onnxruntime threads per worker (default: the protocol's runtime.threads, else cores / workers)
  --provider P         onnxruntime execution provider, cpu or cuda (default: the protocol's
                       runtime.execution_provider, cpu); cuda needs onnxruntime-node's CUDA files (README "GPU")
  --workdir DIR        generated data, caches and results (default: the protocol's workdir, .qcbench)
  --results DIR        results directory (default <workdir>/results/<protocol name>)
  --no-retry-failed    do not recompute cells recorded as failed (finished cells are never recomputed)
  --max-cells N        stop after computing N cells (the rest stays pending; re-run to continue)
  --no-report          do not build the report at the end (without it, the last shard to finish builds it)
  --json               print the summary as JSON on stdout`;

function positiveInt(v: string | undefined, key: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new QcbError('QCB_USAGE', `--${key} must be a whole number, got '${v}'`, {
      key: `--${key}`,
      fix: `e.g. --${key} 2`,
    });
  return n;
}

/** Runs a resolved protocol with parsed CLI options; shared by `run` and `ablation`. */
export async function runWithOptions(
  p: Protocol,
  values: Record<string, string | boolean | undefined>,
  log: Logger,
  workerArgv: string[],
): Promise<number> {
  // the execution provider first: a missing CUDA install fails here, before any work starts
  await applyProviderOption(values.provider as string | undefined, {
    provider: p.runtime.execution_provider,
    file: p.source.file,
  });
  if (typeof values.results === 'string') p.results = resolve(values.results);
  const shard = typeof values.shard === 'string' ? parseShard(values.shard, '--shard') : undefined;
  const { createStages } = await import('../runner/stages.js');
  const summary = await runProtocol(
    p,
    createStages(),
    {
      shard,
      workers: positiveInt(values.workers as string | undefined, 'workers'),
      threads: positiveInt(values.threads as string | undefined, 'threads'),
      maxCells: positiveInt(values['max-cells'] as string | undefined, 'max-cells'),
      retryFailed: !values['no-retry-failed'],
      log,
      workerArgv,
    },
    qcbenchVersion(),
  );
  if (!values['no-report']) await reportIfComplete(p, log, shard);
  printSummary(summary, log, Boolean(values.json));
  return summary.failed > 0 ? EXIT.runFailure : EXIT.ok;
}

/**
 * Builds the report when no cell of the whole protocol is pending any more — after its own cells a shard looks at
 * every shard's, so the last shard to finish builds it. Under a claim (`<results>/report.claim`), so shards that
 * finish together build it once: a shard that finds the claim taken leaves the report to its holder, and one that
 * finds the report already newer than every cell record does not rebuild it. Should the builder die, `qcbench status`
 * says that the report is due.
 */
async function reportIfComplete(p: Protocol, log: Logger, shard: { index: number; count: number } | undefined) {
  const all = summarize(p, expandCells(p));
  const out = runReportDir(p.results);
  if (all.pending > 0) {
    if (shard)
      log.info(
        `shard ${shard.index}/${shard.count} finished; ${all.pending} cell(s) of other shards are pending: the last shard to finish builds the report`,
        {
          fix: `once qcbench status --results ${p.results} shows none pending: qcbench report --results ${p.results} --out ${out}`,
        },
      );
    return;
  }
  const claim = join(p.results, 'report.claim');
  const release = tryClaim(claim);
  if (!release) {
    log.info('another process is building the report of this run; leaving it to it', { claim });
    return;
  }
  try {
    // A shard that finishes just after another may find the report already built from every cell.
    if (shard && !reportOutdated(p.results)) {
      log.info(`report already built from every cell: ${out}/index.html`);
      return;
    }
    const { buildReport } = await import('../reports/build.js');
    await buildReport(p.results, out, { log });
    log.info(`report: ${out}/index.html`);
  } finally {
    release();
  }
}

function printSummary(s: RunSummary, log: Logger, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
  else
    log.info(
      `cells: ${s.done} done, ${s.skipped} skipped, ${s.failed} failed, ${s.pending} pending (of ${s.mine}${s.mine !== s.total ? ` in this shard, ${s.total} in all` : ''}); results in ${s.results}`,
    );
}

export const command: Command = {
  name: 'run',
  summary: 'run a protocol: every cell, cached, resumable, shardable',
  usage: `qcbench run <protocol.yaml> [options]

Expands the protocol into cells (encoder × task × budget × seed × test set) and computes each through the stage
graph data → crops → pretraining → features → downstream → metrics. Every stage's output is cached by content
hash, so a re-run computes only what changed and a killed run resumes where it stopped. Builds the report at the end.

${RUN_OPTIONS_HELP}

Exit codes: 0 every cell done or skipped, 1 some cells failed (recorded with their error), 2 bad input.`,
  async run(args, ctx) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: RUN_OPTIONS });
    if (positionals.length !== 1)
      throw new QcbError('QCB_USAGE', 'run needs one protocol file', { fix: 'qcbench run protocols/quick.yaml' });
    const p = loadProtocol(positionals[0], { workdir: values.workdir });
    return runWithOptions(p, values, ctx.log, [process.argv[1], 'run', ...args.filter((a) => a !== '--json')]);
  },
};
