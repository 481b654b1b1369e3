/**
 * Reads a results directory (layout in src/results/schema.ts) into memory, validated and sorted, so that everything
 * downstream is a pure function of the files: the same directory always gives the same report.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { QcbError } from '../errors.js';
import {
  CELL_SCHEMA,
  type CellKey,
  type CellRecord,
  PRETRAIN_SCHEMA,
  type PretrainRecord,
  RUN_SCHEMA,
  type RunRecord,
} from '../results/schema.js';

export interface LoadedResults {
  /** Absolute or given path of the results directory. */
  dir: string;
  run?: RunRecord;
  /** Every cell record, sorted by key (encoder, task, train set, test set, budget, seed) then id. */
  cells: CellRecord[];
  /** Cells listed in run.json without a record yet (not computed, or computed by a shard still running). */
  pending: { id: string; key: CellKey }[];
  /** Pretraining records sorted by method, encoder, id. */
  pretrain: PretrainRecord[];
}

/** Total order on cell keys used everywhere in reports (budgets and seeds numerically). */
export function compareKeys(a: CellKey, b: CellKey): number {
  return (
    cmp(a.encoder, b.encoder) ||
    cmp(a.task, b.task) ||
    cmp(a.train_set, b.train_set) ||
    cmp(a.test_set, b.test_set) ||
    a.budget - b.budget ||
    a.seed - b.seed
  );
}

/** Sub-folder of a results directory holding `qcbench second-order --out` results (src/reports/second-order.ts). */
export const SECOND_ORDER_DIR = 'second-order';

/** Does `dir` hold results of the paper's planar second-order tests (`second-order/*-results.json`)? */
export function hasSecondOrderResults(dir: string): boolean {
  const d = join(dir, SECOND_ORDER_DIR);
  return existsSync(d) && statSync(d).isDirectory() && readdirSync(d).some((f) => f.endsWith('-results.json'));
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Loads run.json, cells/*.json and pretrain/*.json. A file that is not valid JSON or carries another schema tag is a
 * QcbError naming the file; temp files of atomic writes (`*.tmp`) are ignored. A directory that holds only
 * second-order results (`second-order/`, read by src/reports/second-order.ts) loads with no cells.
 */
export function loadResults(dir: string): LoadedResults {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `results directory '${dir}' does not exist`, {
      file: dir,
      key: '--results',
      fix: 'run a protocol first (qcbench run protocols/quick.yaml) or pass --results DIR of an existing run',
    });
  }
  const runFile = join(dir, 'run.json');
  const run = existsSync(runFile) ? readRecord<RunRecord>(runFile, RUN_SCHEMA) : undefined;
  const cells = listJson(join(dir, 'cells')).map((f) => readRecord<CellRecord>(f, CELL_SCHEMA));
  const pretrain = listJson(join(dir, 'pretrain')).map((f) => readRecord<PretrainRecord>(f, PRETRAIN_SCHEMA));
  if (!run && cells.length === 0 && !hasSecondOrderResults(dir)) {
    throw new QcbError('QCB_FILE_NOT_FOUND', `'${dir}' holds neither run.json nor cells/*.json`, {
      file: dir,
      key: '--results',
      fix: 'point --results at the directory a run wrote (it contains run.json and cells/, or second-order/)',
    });
  }
  for (const c of cells) {
    if (!c.key || typeof c.key.encoder !== 'string' || !['done', 'failed', 'skipped'].includes(c.status)) {
      throw new QcbError('QCB_FILE_FORMAT', 'cell record lacks a key or a valid status', {
        file: join(dir, 'cells', `${c.id}.json`),
        key: c.key ? 'status' : 'key',
        value: c.status,
        allowed: 'done, failed, skipped',
        fix: 'delete the file and resume the run to recompute the cell',
      });
    }
    if (c.status === 'done' && !c.metrics) {
      throw new QcbError('QCB_FILE_FORMAT', 'finished cell has no metrics', {
        file: join(dir, 'cells', `${c.id}.json`),
        key: 'metrics',
        fix: 'delete the file and resume the run to recompute the cell',
      });
    }
  }
  cells.sort((a, b) => compareKeys(a.key, b.key) || cmp(a.id, b.id));
  const have = new Set(cells.map((c) => c.id));
  const pending = (run?.cells ?? [])
    .filter((c) => !have.has(c.id))
    .sort((a, b) => compareKeys(a.key, b.key) || cmp(a.id, b.id));
  pretrain.sort((a, b) => cmp(a.method, b.method) || cmp(a.encoder, b.encoder) || cmp(a.id, b.id));
  return { dir, run, cells, pending, pretrain };
}

function listJson(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => join(dir, f));
}

function readRecord<T extends { schema: string }>(file: string, schema: string): T {
  let value: T;
  try {
    value = JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new QcbError('QCB_FILE_FORMAT', `results file is not valid JSON: ${(e as Error).message}`, {
      file,
      cause: e,
      fix: 'delete the file and resume the run (qcbench run PROTOCOL) to rewrite it',
    });
  }
  if (!value || typeof value !== 'object' || value.schema !== schema) {
    throw new QcbError('QCB_FILE_FORMAT', 'results file has another schema', {
      file,
      key: 'schema',
      value: (value as { schema?: unknown } | null)?.schema,
      allowed: schema,
      fix: 'regenerate the results with this version of qcbench, or use the qcbench version that wrote them',
    });
  }
  return value;
}
