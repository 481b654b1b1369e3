import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EXIT, QcbError } from '../errors.js';
import { loadProtocol } from '../runner/catalog.js';
import { ArtifactStore } from '../runner/cache.js';
import { reportOutdated, runReportDir } from '../runner/run.js';
import type { CellRecord, RunRecord } from '../results/schema.js';
import type { Command } from './types.js';

export interface StatusReport {
  results: string;
  protocol: string;
  total: number;
  done: number;
  failed: number;
  skipped: number;
  pending: number;
  running: number;
  failures: { id: string; cell: string; code: string; message: string }[];
  skips: { reason: string; fix?: string; cells: number }[];
  /**
   * When no cell is pending but `<results>/report` is missing or older than a cell record (shards run with
   * `--no-report`, or the shard that was to build it died): the command that builds it.
   */
  next?: string;
}

/** Done / failed / skipped / pending (and claimed, i.e. being computed) cells of a results directory. */
export function statusOf(resultsDir: string): StatusReport {
  const store = new ArtifactStore(resultsDir);
  const run = store.readJson<RunRecord>('.', 'run.json');
  if (!run)
    throw new QcbError('QCB_FILE_NOT_FOUND', `no run.json in ${resultsDir}`, {
      file: join(resultsDir, 'run.json'),
      fix: 'point --results at a directory written by qcbench run (default .qcbench/results/<protocol>)',
    });
  const r: StatusReport = {
    results: resultsDir,
    protocol: run.protocol.name,
    total: run.cells.length,
    done: 0,
    failed: 0,
    skipped: 0,
    pending: 0,
    running: 0,
    failures: [],
    skips: [],
  };
  const skipMap = new Map<string, { reason: string; fix?: string; cells: number }>();
  const cellsDir = join(resultsDir, 'cells');
  const claims = new Set(existsSync(cellsDir) ? readdirSync(cellsDir).filter((f) => f.endsWith('.claim')) : []);
  for (const c of run.cells) {
    const rec = store.readJson<CellRecord>('cells', `${c.id}.json`);
    const label = `${c.key.encoder} ${c.key.task} n=${c.key.budget} seed=${c.key.seed} ${c.key.train_set}→${c.key.test_set}`;
    if (!rec) {
      r.pending++;
      if (claims.has(`${c.id}.json.claim`)) r.running++;
    } else if (rec.status === 'done') r.done++;
    else if (rec.status === 'failed') {
      r.failed++;
      r.failures.push({ id: c.id, cell: label, code: rec.error?.code ?? '?', message: rec.error?.message ?? '' });
    } else {
      r.skipped++;
      const k = rec.skip?.reason ?? 'skipped';
      const s = skipMap.get(k) ?? { reason: k, fix: rec.skip?.fix_command, cells: 0 };
      s.cells++;
      skipMap.set(k, s);
    }
  }
  r.skips = [...skipMap.values()];
  if (r.pending === 0 && reportOutdated(resultsDir))
    r.next = `qcbench report --results ${resultsDir} --out ${runReportDir(resultsDir)}`;
  return r;
}

export const command: Command = {
  name: 'status',
  summary: 'done / pending / failed cells of a run',
  usage: `qcbench status [--results DIR | --protocol FILE] [--json]

Reads a results directory (default: the quick protocol's) and counts done, skipped, failed and pending cells;
lists failures with their error code and skipped rows with the command that fixes them; when every cell has
finished but the run's report (<results>/report) is missing or older than the results, says to run qcbench report
(JSON: "next"). Exit code 1 when cells failed.`,
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { results: { type: 'string' }, protocol: { type: 'string' }, json: { type: 'boolean', default: false } },
    });
    const dir = values.results
      ? resolve(values.results)
      : loadProtocol(values.protocol ?? new URL('../../protocols/quick.yaml', import.meta.url).pathname).results;
    const s = statusOf(dir);
    if (values.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    else {
      const lines = [
        `${s.protocol}: ${s.total} cells — ${s.done} done, ${s.skipped} skipped, ${s.failed} failed, ${s.pending} pending${s.running ? ` (${s.running} running)` : ''}`,
        `results: ${s.results}`,
        ...s.failures.map((f) => `  failed  ${f.cell}  ${f.code}: ${f.message}`),
        ...s.skips.map((k) => `  skipped ${k.cells} cell(s): ${k.reason}${k.fix ? `  → ${k.fix}` : ''}`),
        ...(s.next ? [`every cell has finished and the report is missing or older than the results: ${s.next}`] : []),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return s.failed > 0 ? EXIT.runFailure : EXIT.ok;
  },
};
