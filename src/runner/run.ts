/**
 * Runs a protocol: expands it into cells, computes each cell's stages through content-addressed caches, records every
 * cell (done, failed or skipped) atomically in the results directory, and never recomputes a finished cell.
 *
 * Parallelism: `--shard i/n` takes the cells with `index % n === i` (many machines, one shared results directory);
 * `--workers N` starts N local worker processes, each a shard of this process's cells. Shared stages (crops,
 * pretraining, fine-tuned models) are claimed by one worker and awaited by the others (src/runner/cache.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { asQcbError, QcbError } from '../errors.js';
import { protocolHash } from '../protocol/resolve.js';
import type { Protocol } from '../protocol/schema.js';
import { writeFileAtomic } from '../util/fs.js';
import type { Logger } from '../util/log.js';
import { ArtifactStore } from './cache.js';
import { checkFileEncoders, encoderInfo } from './catalog.js';
import { type CellPlan, expandCells } from './cells.js';
import { checkAnnotations } from './inputs.js';
import { CELL_SCHEMA, type CellRecord, predictsOneClass, RUN_SCHEMA, type RunRecord } from '../results/schema.js';
import type { CellOutcome, StageContext, Stages } from './stage-types.js';

export interface RunOptions {
  shard?: { index: number; count: number };
  /** Local worker processes (each runs a sub-shard). */
  workers?: number;
  /** Recompute failed cells (default true: the cause may have been fixed). Done cells are never recomputed. */
  retryFailed?: boolean;
  /** Stop after this many cells have been computed (tests use it to interrupt a run deterministically). */
  maxCells?: number;
  /** Threads per onnxruntime session (default: the protocol's runtime.threads when > 0, else cores / workers). */
  threads?: number;
  log: Logger;
  /** The argv used to re-launch this run as worker processes (`--workers`). */
  workerArgv?: string[];
}

export interface RunSummary {
  total: number;
  mine: number;
  done: number;
  computed: number;
  failed: number;
  skipped: number;
  pending: number;
  results: string;
}

/** The results directory's record store. */
export function resultsStore(p: Protocol): ArtifactStore {
  return new ArtifactStore(p.results);
}

/** Reads the record of a cell, if any. */
export function readCell(results: ArtifactStore, id: string): CellRecord | undefined {
  return results.readJson<CellRecord>('cells', `${id}.json`);
}

/** Writes run.json: the resolved protocol and the cell list (same content from every shard: last write wins). */
export function writeRunRecord(p: Protocol, cells: CellPlan[], version: string): void {
  const rec: RunRecord = {
    schema: RUN_SCHEMA,
    protocol: {
      name: p.name,
      file: p.source.file,
      version: p.version,
      hash: protocolHash(p),
      pretrain_per_seed: p.pretrain.per_seed,
    },
    resolved: p as unknown as Record<string, unknown>,
    cells: cells.map((c) => ({ id: c.id, key: c.key })),
    started_at: new Date().toISOString(),
    qcbench_version: version,
  };
  resultsStore(p).writeJson('.', 'run.json', rec);
}

/**
 * Runs the cells of `p` (or of its shard) and returns a summary. A failing cell is recorded with its error and the run
 * goes on; the caller turns `failed > 0` into exit code 1.
 */
export async function runProtocol(p: Protocol, stages: Stages, opts: RunOptions, version: string): Promise<RunSummary> {
  const log = opts.log;
  // Bad annotations are bad input (exit 2) found before anything is computed or written, not a failure per cell.
  checkAnnotations(p, { missingFiles: 'error' });
  // likewise an ONNX encoder file that is missing, not ONNX or without N×D features
  await checkFileEncoders(p);
  log.setFile(join(p.results, 'log.jsonl'));
  const cells = expandCells(p);
  writeRunRecord(p, cells, version);
  const mine = opts.shard ? cells.filter((c) => c.index % opts.shard!.count === opts.shard!.index) : cells;
  const results = resultsStore(p);
  const workers = Math.max(1, opts.workers ?? 1);

  if (workers > 1 && mine.length > 1) {
    await runWorkers(p, opts, workers, log);
  } else {
    const threads = opts.threads ?? defaultThreads(p, workers);
    const ctx: StageContext = {
      p,
      cache: new ArtifactStore(join(p.workdir, 'cache')),
      results,
      log,
      threads,
    };
    const todo = mine.filter((c) => {
      const r = readCell(results, c.id);
      return !r || (r.status === 'failed' && opts.retryFailed !== false) || r.status === 'skipped';
    });
    log.info(`run ${p.name}: ${cells.length} cells, ${mine.length} in this shard, ${todo.length} to compute`, {
      results: p.results,
      shard: opts.shard ? `${opts.shard.index}/${opts.shard.count}` : undefined,
      threads,
    });
    const progress = log.startProgress(`run ${p.name}`, todo.length, 'cells');
    let computed = 0;
    for (const cell of todo) {
      if (opts.maxCells !== undefined && computed >= opts.maxCells) break;
      // Another worker or shard may have finished it meanwhile.
      const existing = readCell(results, cell.id);
      if (existing?.status === 'done') {
        progress.tick(1);
        continue;
      }
      if (existing) rmSync(results.path('cells', `${cell.id}.json`), { force: true }); // a failed or skipped cell, retried
      let rec: CellRecord | undefined;
      // The claim makes a cell computed once even when overlapping runs (two shards lists, a re-launched job) meet.
      await results.ensure(
        'cells',
        `${cell.id}.json`,
        async (tmp) => {
          rec = await runCell(ctx, stages, cell, (stage) => progress.tick(0, `${describe(cell)}: ${stage}`));
          writeFileAtomic(tmp, `${JSON.stringify(rec, null, 2)}\n`);
        },
        {
          onWait: () =>
            log.info(`waiting for another process to finish cell ${describe(cell)}`, {
              cell: cell.id,
              claim: `${results.path('cells', `${cell.id}.json`)}.claim`,
            }),
        },
      );
      if (!rec) {
        progress.tick(1);
        continue;
      }
      computed++;
      const m = rec.metrics;
      log.info(`${rec.status} ${describe(cell)}`, {
        cell: cell.id,
        ...(m ? { accuracy: round(m.accuracy), f1: round(m.f1), auc: round(m.auc) } : {}),
        ...(rec.error ? { error: rec.error.code } : {}),
        ...(rec.skip ? { reason: rec.skip.reason } : {}),
      });
      progress.tick(1);
    }
    progress.finish(`run ${p.name}: computed ${computed} cell(s)`);
  }
  return summarize(p, mine);
}

/** onnxruntime threads per worker: the protocol's `runtime.threads` (0 = one per core, shared by the workers). */
function defaultThreads(p: Protocol, workers: number): number {
  return p.runtime.threads > 0 ? p.runtime.threads : Math.max(1, Math.floor(availableParallelism() / workers));
}

const round = (x: number) => Math.round(x * 100) / 100;

function describe(c: CellPlan): string {
  const k = c.key;
  return `${k.encoder} ${k.task} n=${k.budget} seed=${k.seed} ${k.train_set}→${k.test_set}`;
}

/** Computes one cell; never throws: failures and skips become records. */
export async function runCell(
  ctx: StageContext,
  stages: Stages,
  cell: CellPlan,
  onStage: (stage: string) => void,
): Promise<CellRecord> {
  const entry = encoderInfo(ctx.p, cell.key.encoder);
  const base = {
    schema: CELL_SCHEMA,
    id: cell.id,
    key: cell.key,
    encoder_label: entry?.label ?? cell.key.encoder,
    encoder_kind: entry?.kind ?? 'tl',
    settings: cell.settings,
  } as const;
  const t0 = Date.now();
  try {
    const out: CellOutcome = await stages.cell(ctx, cell, onStage);
    return {
      ...base,
      status: 'done',
      metrics: out.metrics,
      predictions: out.predictions,
      pretrain: out.pretrain,
      montage: out.montage,
      ...(predictsOneClass(out.predictions) ? { degenerate: true } : {}),
      timing: { ...out.timing, total: (Date.now() - t0) / 1000 },
      finished_at: new Date().toISOString(),
    };
  } catch (e) {
    const err = asQcbError(e);
    if (err.code === 'QCB_WEIGHTS_MISSING') {
      return {
        ...base,
        status: 'skipped',
        skip: { reason: err.message, fix_command: err.context.fix },
        finished_at: new Date().toISOString(),
      };
    }
    // a task that does not apply to the encoder (fine-tuning hand-made measures): n/a, nothing to fix
    if (err.code === 'QCB_NOT_APPLICABLE')
      return { ...base, status: 'skipped', skip: { reason: err.message }, finished_at: new Date().toISOString() };
    ctx.log.error(`cell failed: ${describe(cell)}: ${err.message}`, { cell: cell.id, code: err.code });
    if (err.code === 'QCB_INTERNAL' && e instanceof Error) ctx.log.debug(e.stack ?? '');
    return {
      ...base,
      status: 'failed',
      error: { code: err.code, message: err.message, ...(err.context.fix ? { fix: err.context.fix } : {}) },
      timing: { total: (Date.now() - t0) / 1000 },
      finished_at: new Date().toISOString(),
    };
  }
}

/** The folder `qcbench run` builds a run's report into: `<results>/report`. */
export function runReportDir(resultsDir: string): string {
  return join(resultsDir, 'report');
}

/**
 * Whether the report in `<results>/report` is missing or older than one of the run's cell records — i.e. not built
 * from the results as they are. Shards use it so that the last of them to finish builds the report once, and
 * `qcbench status` to say when it is time to run `qcbench report`.
 */
export function reportOutdated(resultsDir: string): boolean {
  const index = join(runReportDir(resultsDir), 'index.html');
  if (!existsSync(index)) return true;
  const built = statSync(index).mtimeMs;
  const cells = join(resultsDir, 'cells');
  if (!existsSync(cells)) return false;
  return readdirSync(cells).some((f) => f.endsWith('.json') && statSync(join(cells, f)).mtimeMs > built);
}

/** Counts done / failed / skipped / pending among `cells`. */
export function summarize(p: Protocol, cells: CellPlan[]): RunSummary {
  const results = resultsStore(p);
  const s: RunSummary = {
    total: expandCells(p).length,
    mine: cells.length,
    done: 0,
    computed: 0,
    failed: 0,
    skipped: 0,
    pending: 0,
    results: p.results,
  };
  for (const c of cells) {
    const r = readCell(results, c.id);
    if (!r) s.pending++;
    else if (r.status === 'done') s.done++;
    else if (r.status === 'failed') s.failed++;
    else s.skipped++;
  }
  return s;
}

/** Re-launches this command as N worker processes, each a shard of this process's shard. */
async function runWorkers(p: Protocol, opts: RunOptions, workers: number, log: Logger): Promise<void> {
  const argv = opts.workerArgv;
  if (!argv)
    throw new QcbError('QCB_USAGE', '--workers needs the command line to re-launch', {
      fix: 'use qcbench run --workers N',
    });
  const outer = opts.shard ?? { index: 0, count: 1 };
  const threads = opts.threads ?? defaultThreads(p, workers);
  log.info(`starting ${workers} worker processes, ${threads} thread(s) each`);
  const codes = await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      // Shard w of `workers` inside shard outer.index of outer.count = shard (outer.index + w·outer.count) of the product.
      const shard = `${outer.index + w * outer.count}/${outer.count * workers}`;
      // Workers never build the report: this process does, once all of them have finished.
      const args = [...argv, '--shard', shard, '--workers', '1', '--threads', String(threads), '--no-report'];
      return new Promise<number>((resolve) => {
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
        child.on('exit', (code) => resolve(code ?? 1));
      });
    }),
  );
  const bad = codes.filter((c) => c !== 0 && c !== 1);
  if (bad.length) log.warn(`${bad.length} worker(s) exited abnormally`, { codes });
  void p;
}
