/**
 * `qcbench qc apply`: scores every crop of a store with an exported QC classifier (src/qc/model.ts), streaming the
 * store in batches (memory does not grow with the screen), and summarises where the problems are.
 *
 * ```
 * OUT/shards/shard-<i>-of-<n>/scores.csv|.jsonl   per-crop scores of shard i (0-based), appended batch by batch
 * OUT/shards/shard-<i>-of-<n>/progress.json       last finished batch (crops done, byte lengths), written atomically
 * OUT/shards/shard-<i>-of-<n>/done.json           the shard is complete
 * — once every shard is done (by whichever shard finishes last) —
 * OUT/scores.csv, OUT/scores.jsonl                all crops: crop_id, index, plate, well, site, field_id, x, y, score, abnormal
 * OUT/fields.csv|.jsonl                          every field of the screen (the store's field table), with or without
 *                                                 crops: abnormal fraction, verdict, reasons, whole-field measures
 *                                                 (qc/fields.ts)
 * OUT/wells.csv|.jsonl                            per well: abnormal fraction, fields, fields flagged, their reasons
 * OUT/plate-map.vl.json|.svg|.png                 wells coloured by abnormal fraction, one panel per plate
 * OUT/field-map.vl.json|.svg|.png                 one cell per field, flagged fields outlined, reasons in the tooltip
 * OUT/fields.html                                 the maps and every flagged field with its reasons and why
 * OUT/montages/<plate>_<well>.png (+ montages.csv)  highest-scoring crops per well, for a person to check
 * OUT/summary.json
 * ```
 * A killed run resumes after its last finished batch: the score files are cut back to the checkpoint's byte lengths.
 */
import {
  closeSync,
  createReadStream,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { montagePng } from '../render/montage.js';
import { CROP_LOCATION_COLUMNS, openCropStore } from '../data/store/crop-store.js';
import type { CropMeta } from '../data/types.js';
import { QcbError } from '../errors.js';
import { csvCell } from '../util/csv.js';
import { contentHash, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { logger as defaultLogger, type Logger } from '../util/log.js';
import { parseCsvRecords } from '../data/datasets/csv-parse.js';
import { type FieldRecord, readFieldTable, unreadableField } from '../data/store/field-table.js';
import {
  DEFAULT_FIELD_FRACTION,
  DEFAULT_FIELD_K,
  FIELD_MEASURE_CHECKS,
  type FieldVerdict,
  fieldVerdicts,
  MIN_FIELDS_FOR_RANGE,
  wellVerdicts,
} from './fields.js';
import { writeFieldsHtml } from './fields-html.js';
import { writeFieldMap, writePlateMap } from './plate-map.js';
import { checkStoreFits, loadQcModel, readQcModel, scoreCrops } from './runtime.js';
import { prepareWindows } from './window.js';

/** Seconds between resume checkpoints of `qc apply` (fsync of the score files + progress file). */
const CHECKPOINT_SECONDS = 2;
export interface QcApplyOptions {
  model: string;
  store: string;
  /** Output folder (default `qc-<store name>` in the working directory). */
  out?: string;
  /** Decision threshold: abnormal when score > threshold (default: the sidecar's, calibrated by qc train). */
  threshold?: number;
  /** k of the fields' robust ranges, median ± k·σ̂ (default 3; qc/fields.ts). */
  fieldK?: number;
  /** Abnormal-crop fraction above which a field is flagged (default 0.5). */
  fieldFraction?: number;
  /** 0-based shard index and shard count (as `qcbench run --shard`). */
  shard?: { index: number; count: number };
  /** Crops per onnxruntime run and per checkpoint (default 64, the store's chunk). */
  batch?: number;
  threads?: number;
  /** Crops per well montage (default 16; 0 = no montages). */
  montage?: number;
  /** Stops cleanly after the current batch (checkpoint written); the run resumes later. */
  signal?: AbortSignal;
  /** Map each crop from its plate's stored intensity window to the model's before scoring (src/qc/window.ts). */
  useModelWindow?: boolean;
  log?: Logger;
}

export interface QcApplyResult {
  out: string;
  /** Crops in this shard. */
  crops: number;
  /** Crops scored by this call (the rest were done by an earlier, interrupted run). */
  scored: number;
  resumedFrom: number;
  seconds: number;
  cropsPerSecond: number;
  /** True when this shard finished (not interrupted). */
  shardDone: boolean;
  /** True when every shard is done and the summary files were written. */
  complete: boolean;
  /** Summary files written (relative to out). */
  files: string[];
}

export const SCORE_COLUMNS = [...CROP_LOCATION_COLUMNS, 'score', 'abnormal'] as const;

/** 0-based shard i of n: crops [⌊iN/n⌋, ⌊(i+1)N/n⌋). */
export function qcShardRange(n: number, index: number, count: number): [number, number] {
  if (!Number.isInteger(index) || !Number.isInteger(count) || count < 1 || index < 0 || index >= count) {
    throw new QcbError('QCB_USAGE', `bad shard ${index}/${count}`, {
      key: '--shard',
      value: `${index}/${count}`,
      allowed: 'i/n with 0 ≤ i < n (0-based, as qcbench run --shard)',
      fix: 'e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT',
    });
  }
  return [Math.floor((index * n) / count), Math.floor(((index + 1) * n) / count)];
}

interface ShardProgress {
  identity: string;
  done: number;
  csvBytes: number;
  jsonlBytes: number;
}

function shardDir(out: string, i: number, n: number): string {
  return join(out, 'shards', `shard-${i}-of-${n}`);
}

/** Opens a score file cut back to `bytes` (a fresh file with `header` when 0); returns fd and its length. */
function openAt(path: string, bytes: number, header: string): { fd: number; size: number } {
  const fd = openSync(path, existsSync(path) ? 'r+' : 'w+');
  if (bytes === 0) {
    ftruncateSync(fd, 0);
    const h = Buffer.from(header);
    writeSync(fd, h, 0, h.length, 0);
    return { fd, size: h.length };
  }
  ftruncateSync(fd, bytes);
  return { fd, size: bytes };
}

/**
 * Scores the crops of one shard (resuming when possible), then, if every shard is done, writes the summary.
 * @throws before any work: QCB_FILE_NOT_FOUND (model, sidecar), QCB_FILE_FORMAT (sidecar does not match the model),
 *   QCB_STORE (missing store, other crop size or channels), QCB_USAGE (threshold, shard, batch)
 */
export async function applyQcModel(o: QcApplyOptions): Promise<QcApplyResult> {
  const log = o.log ?? defaultLogger;
  const t0 = Date.now();
  // ---- every check before any work
  const { sidecar } = readQcModel(o.model);
  const store = await openCropStore(o.store, { cacheChunks: 4 });
  checkStoreFits(sidecar, store, o.model);
  const rewindow = prepareWindows(sidecar.normalisation, store.info, store.path, {
    useModelWindow: o.useModelWindow,
    log,
  });
  const threshold = o.threshold ?? sidecar.threshold ?? 0.5;
  const op = sidecar.operating_point;
  const thresholdSource =
    o.threshold !== undefined
      ? '--threshold'
      : op?.source === 'calibrated'
        ? `calibrated by qc train for a false-positive rate ≤ ${op.max_fpr}`
        : op
          ? `the model's (${op.source})`
          : "the model's (made before calibrated thresholds)";
  if (o.threshold === undefined && !op)
    log.info(
      `the model has no calibrated operating point (made before qc train --max-fpr): threshold ${threshold}; retrain it to calibrate, or give --threshold`,
      { model: o.model },
    );
  if (o.fieldK !== undefined && !(o.fieldK > 0))
    throw new QcbError('QCB_USAGE', `--field-k ${o.fieldK} is not positive`, {
      key: '--field-k',
      value: o.fieldK,
      allowed: 'a number > 0',
      fix: 'use --field-k 3 (median ± 3 robust σ)',
    });
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new QcbError('QCB_USAGE', `threshold ${threshold} is outside [0, 1]`, {
      key: '--threshold',
      value: threshold,
      allowed: '0 … 1',
      fix: `give a threshold between 0 and 1 (the model's is ${sidecar.threshold})`,
    });
  }
  const batch = o.batch ?? 64;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new QcbError('QCB_USAGE', `batch ${batch} is not a positive integer`, {
      key: '--batch',
      value: batch,
      allowed: 'an integer ≥ 1',
      fix: 'use --batch 64',
    });
  }
  const sh = o.shard ?? { index: 0, count: 1 };
  const [start, end] = qcShardRange(store.count, sh.index, sh.count);
  const out = resolve(o.out ?? `qc-${basename(store.path)}`);
  const dir = shardDir(out, sh.index, sh.count);
  mkdirSync(dir, { recursive: true });
  const identity = contentHash({
    model: sidecar.model_sha256,
    store: store.hash,
    threshold,
    shard: [sh.index, sh.count],
    ...(rewindow ? { window: 'model' } : {}),
  });
  /** Same for every shard of one run: the summary waits for all shards of this run. */
  const run = contentHash({
    model: sidecar.model_sha256,
    store: store.hash,
    threshold,
    shards: sh.count,
    ...(rewindow ? { window: 'model' } : {}),
  });
  const C = store.channels.length;
  const S = store.size;

  // ---- resume state
  const progFile = join(dir, 'progress.json');
  const doneFile = join(dir, 'done.json');
  let prog: ShardProgress = { identity, done: 0, csvBytes: 0, jsonlBytes: 0 };
  if (existsSync(progFile)) {
    try {
      const p = JSON.parse(readFileSync(progFile, 'utf8')) as ShardProgress;
      if (p.identity === identity) prog = p;
      else log.info('earlier QC output was made with another model, store or threshold: starting again', { dir });
    } catch {
      log.warn('unreadable progress file: starting the shard again', { file: progFile });
    }
  }
  let shardDone = prog.done >= end - start && existsSync(doneFile) && readRun(doneFile) === run;
  const resumedFrom = prog.done;
  let scored = 0;
  if (!shardDone) {
    const model = await loadQcModel(o.model, { threads: o.threads });
    const csvF = openAt(join(dir, 'scores.csv'), prog.csvBytes, `${SCORE_COLUMNS.join(',')}\n`);
    const jsonF = openAt(join(dir, 'scores.jsonl'), prog.jsonlBytes, '');
    const csvFd = csvF.fd;
    const jsonFd = jsonF.fd;
    prog = { ...prog, csvBytes: csvF.size, jsonlBytes: jsonF.size };
    const bar = log.startProgress(
      sh.count > 1 ? `scoring shard ${sh.index}/${sh.count}` : 'scoring',
      end - start,
      'crops',
    );
    if (prog.done > 0) {
      bar.tick(prog.done, 'resumed');
      log.info('resuming QC scoring', { done: prog.done, of: end - start });
    }
    try {
      let lastCheckpoint = Date.now();
      // the next batch is read while onnxruntime scores this one
      let next: Promise<Uint8Array> | undefined =
        start + prog.done < end ? store.read(start + prog.done, Math.min(end, start + prog.done + batch)) : undefined;
      for (let s = start + prog.done; s < end; s += batch) {
        if (o.signal?.aborted) break;
        const e = Math.min(end, s + batch);
        const data = await next!;
        rewindow?.(data, store.meta.slice(s, e));
        next = e < end ? store.read(e, Math.min(end, e + batch)) : undefined;
        const scores = await scoreCrops(model.session, data, e - s, C, S, sidecar.input?.dtype ?? 'uint8');
        let csv = '';
        let jl = '';
        for (let i = s; i < e; i++) {
          const m = store.meta[i];
          const sc = scores[i - s];
          const ab = sc > threshold ? 1 : 0;
          csv += `${[m.crop_id, i, m.plate, m.well, m.site, m.field_id, m.x, m.y, sc, ab].map(csvCell).join(',')}\n`;
          jl += `${JSON.stringify({ crop_id: m.crop_id, index: i, plate: m.plate, well: m.well, site: m.site, field_id: m.field_id, x: m.x, y: m.y, score: sc, abnormal: ab === 1 })}\n`;
        }
        const cb = Buffer.from(csv);
        const jb = Buffer.from(jl);
        writeSync(csvFd, cb, 0, cb.length, prog.csvBytes);
        writeSync(jsonFd, jb, 0, jb.length, prog.jsonlBytes);
        prog = {
          identity,
          done: e - start,
          csvBytes: prog.csvBytes + cb.length,
          jsonlBytes: prog.jsonlBytes + jb.length,
        };
        // a checkpoint (fsync, then the progress file that points at the synced bytes) at most every
        // CHECKPOINT_SECONDS: a kill loses at most that much scoring; bytes past the checkpoint are overwritten
        if (e === end || Date.now() - lastCheckpoint >= CHECKPOINT_SECONDS * 1000) {
          fsyncSync(csvFd);
          fsyncSync(jsonFd);
          writeJsonAtomic(progFile, prog);
          lastCheckpoint = Date.now();
        }
        scored += e - s;
        bar.tick(e - s);
      }
    } finally {
      // last checkpoint: everything written so far (an abort or an error between checkpoints loses nothing)
      fsyncSync(csvFd);
      fsyncSync(jsonFd);
      writeJsonAtomic(progFile, prog);
      closeSync(csvFd);
      closeSync(jsonFd);
      await model.session.release();
    }
    shardDone = prog.done >= end - start;
    bar.finish(shardDone ? 'scoring: done' : 'scoring: interrupted (rerun the same command to continue)');
    if (shardDone)
      writeJsonAtomic(doneFile, { identity, run, crops: end - start, finished_at: new Date().toISOString() });
  }
  const seconds = (Date.now() - t0) / 1000;
  let complete = false;
  let files: string[] = [];
  if (shardDone) {
    const dirs = Array.from({ length: sh.count }, (_, i) => shardDir(out, i, sh.count));
    const allDone = dirs.every((d) => readRun(join(d, 'done.json')) === run);
    if (allDone) {
      files = await summarise(out, dirs, store, {
        threshold,
        thresholdSource,
        montage: o.montage ?? 16,
        model: o.model,
        sidecar,
        fieldK: o.fieldK,
        fieldFraction: o.fieldFraction,
        log,
      });
      complete = true;
    } else
      log.info('shard done; the summary is written when the last shard finishes', { shard: `${sh.index}/${sh.count}` });
  }
  return {
    out,
    crops: end - start,
    scored,
    resumedFrom,
    seconds,
    cropsPerSecond: scored / Math.max(seconds, 1e-9),
    shardDone,
    complete,
    files,
  };
}

function readRun(doneFile: string): string | undefined {
  try {
    return existsSync(doneFile) ? (JSON.parse(readFileSync(doneFile, 'utf8')) as { run?: string }).run : undefined;
  } catch {
    return undefined;
  }
}

interface Acc {
  plate: string;
  well: string;
  site?: number;
  field_id?: string;
  n: number;
  abnormal: number;
  sum: number;
}

function add(map: Map<string, Acc>, key: string, init: () => Acc, score: number, ab: boolean): void {
  let a = map.get(key);
  if (!a) map.set(key, (a = init()));
  a.n++;
  a.sum += score;
  if (ab) a.abnormal++;
}

/** Writes OUT/NAME.csv and OUT/NAME.jsonl (the given columns, in order), each atomically. */
function writeTable<T extends object>(out: string, name: string, columns: string[], rows: T[]): void {
  const cell = (r: T, c: string) => {
    const v = (r as Record<string, unknown>)[c] as string | number | null | undefined;
    return v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? null : v;
  };
  writeFileAtomic(
    join(out, `${name}.csv`),
    `${columns.join(',')}\n${rows.map((r) => columns.map((c) => csvCell(cell(r, c) ?? '')).join(',')).join('\n')}${rows.length ? '\n' : ''}`,
  );
  writeFileAtomic(
    join(out, `${name}.jsonl`),
    rows.map((r) => `${JSON.stringify(Object.fromEntries(columns.map((c) => [c, cell(r, c)])))}\n`).join(''),
  );
}

/** Columns of fields.csv before the measures (`ImageQuality_<Measure>_<channel>`, as the store's field table). */
export const FIELD_COLUMNS = [
  'plate',
  'well',
  'site',
  'field_id',
  'status',
  'n',
  'abnormal',
  'fraction',
  'mean_score',
  'verdict',
  'reasons',
  'details',
] as const;
export const WELL_COLUMNS = [
  'plate',
  'well',
  'n',
  'abnormal',
  'fraction',
  'mean_score',
  'fields',
  'fields_flagged',
  'reasons',
] as const;

/**
 * Every field of the screen: the store's field table, plus (never expected) a field with crops the table lacks. A
 * store made before the field table existed gives the fields that have crops and those in skipped.csv, with a
 * warning: fields without nuclei are then unknown.
 */
function screenFields(
  store: Awaited<ReturnType<typeof openCropStore>>,
  scored: Map<string, Acc>,
  log: Logger,
): { fields: FieldRecord[]; measureColumns: string[] } {
  const table = readFieldTable(store.path);
  const fields = table ? [...table.fields] : [];
  const measureColumns = table ? table.columns.filter((c) => c.startsWith('ImageQuality_')) : [];
  if (!table) {
    log.warn(
      'the store has no field table (made before qcbench recorded every field): fields without crops are not reported and there are no field measures; recreate the store with `qcbench data crops` to get them',
      { store: store.path },
    );
    const sk = join(store.path, 'skipped.csv');
    if (existsSync(sk)) {
      for (const r of parseCsvRecords(readFileSync(sk, 'utf8')).slice(1)) {
        const [field_id, file, , code, message] = r.cells;
        if (field_id) fields.push(unreadableField({ field_id, file, code, message }));
      }
    }
  } else if (!measureColumns.length) log.info('the store has no field measures: verdicts without measure ranges');
  const known = new Set(fields.map((f) => f.field_id));
  for (const [id, a] of scored) {
    if (known.has(id)) continue;
    fields.push({
      field_id: id,
      plate: a.plate,
      well: a.well,
      site: a.site ?? Number.NaN,
      status: 'ok',
      crops: a.n,
      nuclei: a.n,
      code: '',
      message: '',
      measures: {},
    });
  }
  return { fields, measureColumns };
}

/** A well's montage file name (inside OUT/montages/). */
function montageFile(plate: string, well: string): string {
  return `${plate}_${well}.png`.replace(/[^A-Za-z0-9_.-]/g, '_');
}

function countReasons(v: FieldVerdict[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of v) for (const r of f.reasons ? f.reasons.split(';') : []) out[r] = (out[r] ?? 0) + 1;
  return out;
}

/** Concatenates the shards' score files and writes fractions, plate map, montages and summary.json. */
async function summarise(
  out: string,
  dirs: string[],
  store: Awaited<ReturnType<typeof openCropStore>>,
  o: {
    threshold: number;
    montage: number;
    model: string;
    sidecar: ReturnType<typeof readQcModel>['sidecar'];
    thresholdSource: string;
    fieldK?: number;
    fieldFraction?: number;
    log: Logger;
  },
): Promise<string[]> {
  const fields = new Map<string, Acc>();
  /** Top `o.montage` (score, index) per well, highest first. */
  const top = new Map<string, { score: number; index: number; crop_id: string }[]>();
  const csvOut = openSync(join(out, 'scores.csv.tmp'), 'w');
  const jlOut = openSync(join(out, 'scores.jsonl.tmp'), 'w');
  writeSync(csvOut, `${SCORE_COLUMNS.join(',')}\n`);
  let total = 0;
  let abnormal = 0;
  try {
    for (const d of dirs) {
      // CSV: copy without its header
      const csvText = createInterface({ input: createReadStream(join(d, 'scores.csv')), crlfDelay: Infinity });
      let first = true;
      for await (const line of csvText) {
        if (first) {
          first = false;
          continue;
        }
        if (line) writeSync(csvOut, `${line}\n`);
      }
      const rl = createInterface({ input: createReadStream(join(d, 'scores.jsonl')), crlfDelay: Infinity });
      for await (const line of rl) {
        if (!line) continue;
        writeSync(jlOut, `${line}\n`);
        const r = JSON.parse(line) as Pick<CropMeta, 'crop_id' | 'index' | 'plate' | 'well' | 'site' | 'field_id'> & {
          score: number;
          abnormal: boolean;
        };
        total++;
        if (r.abnormal) abnormal++;
        add(
          fields,
          r.field_id,
          () => ({ plate: r.plate, well: r.well, site: r.site, field_id: r.field_id, n: 0, abnormal: 0, sum: 0 }),
          r.score,
          r.abnormal,
        );
        const wk = `${r.plate}\u0000${r.well}`;
        if (o.montage > 0) {
          let l = top.get(wk);
          if (!l) top.set(wk, (l = []));
          if (l.length < o.montage || r.score > l[l.length - 1].score) {
            let p = l.length;
            while (p > 0 && l[p - 1].score < r.score) p--;
            l.splice(p, 0, { score: r.score, index: r.index, crop_id: r.crop_id });
            if (l.length > o.montage) l.pop();
          }
        }
      }
    }
  } finally {
    closeSync(csvOut);
    closeSync(jlOut);
  }
  renameSync(join(out, 'scores.csv.tmp'), join(out, 'scores.csv'));
  renameSync(join(out, 'scores.jsonl.tmp'), join(out, 'scores.jsonl'));
  if (total !== store.count) {
    throw new QcbError('QCB_INTERNAL', `the shards hold ${total} scores for ${store.count} crops`, {
      file: out,
      fix: 'delete the output folder and rerun qcbench qc apply',
    });
  }
  // Every field of the screen (the store's field table), with or without crops, and its verdict; wells summarise
  // their fields. CSV and JSON lines have the same columns in the same order (numbers as numbers; an empty CSV cell
  // is null in JSON).
  const { fields: fieldRows, measureColumns } = screenFields(store, fields, o.log);
  const verdicts = fieldVerdicts(fieldRows, fields, { k: o.fieldK, maxFraction: o.fieldFraction });
  writeTable(
    out,
    'fields',
    [...FIELD_COLUMNS, ...measureColumns],
    verdicts.map(({ measures, ...v }) => ({ ...v, ...measures })),
  );
  const wellRows = wellVerdicts(verdicts, fields);
  writeTable(out, 'wells', [...WELL_COLUMNS], wellRows);
  const files = ['scores.csv', 'scores.jsonl', 'fields.csv', 'fields.jsonl', 'wells.csv', 'wells.jsonl'];
  const maps: string[] = [];
  try {
    // a field a reader could not place (no well name) is in the tables but not on the maps
    const placed = (r: { well: string }) => r.well !== '';
    const pm = await writePlateMap(out, wellRows.filter(placed));
    const fm = await writeFieldMap(out, verdicts.filter(placed));
    maps.push(...[...pm, ...fm].map((p) => basename(p)));
    files.push(...maps);
  } catch (e) {
    // non-standard well names: the tables are still complete
    if (!(e instanceof QcbError) || e.code !== 'QCB_CSV_VALUE') throw e;
    o.log.warn('no plate map: the well names fit no standard plate', { error: e.message });
  }
  if (o.montage > 0) {
    const mdir = join(out, 'montages');
    mkdirSync(mdir, { recursive: true });
    const C = store.channels.length;
    const S = store.size;
    let rows = 'plate,well,file,rank,crop_id,index,score\n';
    for (const [wk, l] of top) {
      const [plate, well] = wk.split('\u0000');
      const crops = await store.readIndices(l.map((t) => t.index));
      const cols = Math.min(l.length, 8);
      const file = montageFile(plate, well);
      writeFileAtomic(join(mdir, file), await montagePng(crops, l.length, C, S, cols));
      l.forEach((t, r) => {
        rows += `${[plate, well, `montages/${file}`, r + 1, t.crop_id, t.index, t.score].map(csvCell).join(',')}\n`;
      });
    }
    writeFileAtomic(join(out, 'montages.csv'), rows);
    files.push('montages.csv', 'montages/');
  }
  const montaged = new Set(o.montage > 0 ? top.keys() : []);
  writeFieldsHtml(
    out,
    verdicts,
    maps,
    (plate, well) => (montaged.has(`${plate}\u0000${well}`) ? `montages/${montageFile(plate, well)}` : undefined),
    { encoder: o.sidecar.encoder.name, task: o.sidecar.task, artefacts: o.sidecar.artefacts, threshold: o.threshold },
  );
  files.push('fields.html');
  const summary = {
    model: resolve(o.model),
    model_sha256: o.sidecar.model_sha256,
    encoder: o.sidecar.encoder.name,
    task: o.sidecar.task,
    // what "abnormal" means here: the artefact types the model detects (all, unless trained with --artefacts)
    artefacts: o.sidecar.artefacts ?? 'all',
    store: store.path,
    store_hash: store.hash,
    threshold: o.threshold,
    crops: total,
    abnormal,
    abnormal_fraction: total ? abnormal / total : 0,
    threshold_source: o.thresholdSource,
    operating_point: o.sidecar.operating_point ?? null,
    fields: verdicts.length,
    fields_flagged: verdicts.filter((v) => v.verdict === 'flagged').length,
    field_reasons: countReasons(verdicts),
    field_verdict: {
      k: o.fieldK ?? DEFAULT_FIELD_K,
      max_fraction: o.fieldFraction ?? DEFAULT_FIELD_FRACTION,
      min_fields_for_range: MIN_FIELDS_FOR_RANGE,
      checks: FIELD_MEASURE_CHECKS,
    },
    wells: wellRows.length,
    shards: dirs.length,
    finished_at: new Date().toISOString(),
  };
  writeJsonAtomic(join(out, 'summary.json'), summary);
  files.push('summary.json');
  o.log.info('QC summary written', {
    out,
    crops: total,
    abnormal,
    wells: wellRows.length,
    fields: verdicts.length,
    fields_flagged: summary.fields_flagged,
  });
  return files;
}
