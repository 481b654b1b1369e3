import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { asQcbError, ERROR_CODES, EXIT, QcbError } from '../errors.js';
import { logger as defaultLogger, type Logger } from '../util/log.js';
import { csvCell } from '../util/csv.js';
import { extractChannel, readImage } from './io/image.js';
import { type IntensityRange, percentileRanges, medianWindow, toUint8 } from './io/normalize.js';
import { deriveSeed, permutation } from '../util/random.js';
import { type Nucleus, type SegmentOptions, segmentNuclei } from './nuclei/segment.js';
import { type Compression, CropStoreWriter, openCropStore } from './store/crop-store.js';
import {
  FIELD_TABLE,
  FieldTableWriter,
  fieldTableColumns,
  loadFieldMeasurer,
  measureColumn,
  unreadableField,
} from './store/field-table.js';
import type { CropMeta, Field, FieldSet, ImageData, SkippedField } from './types.js';
import { cropId } from './types.js';

/**
 * Crop extraction: fields → nuclei (segmented on the DNA channel, or imported centres) → S×S crops around each
 * centre (Masud et al. 2022 §3.1: 128×128 single-cell crops) → the Zarr crop store.
 *
 * Streaming: fields are processed in batches whose crops are appended and checkpointed, so memory is bounded by one
 * batch whatever the screen size, and a killed run resumes after its last completed batch (`resume`). Decoding,
 * segmentation and cropping run in worker threads (both cores); the main thread only writes the store, in field order,
 * so the result does not depend on the number of workers. Sharded runs (`shard`) write disjoint contiguous field
 * ranges into part stores under `OUT/parts/`; the last shard to finish (or `mergeShards`) concatenates them into OUT.
 */

/** What to do with a crop that leaves the field: drop it, fill with zeros, or mirror the field at its edge. */
export type BorderPolicy = 'skip' | 'pad' | 'reflect';

/**
 * Per-channel intensity normalisation to uint8 (each channel's window → 0…255, clipped):
 * - `plate` (default): one window per plate and channel: the median, over up to `sample` fields of the plate drawn
 *   with a seeded permutation (`seed`), of each end of the fields' own `lo`-th/`hi`-th percentile windows. A dim, saturated or nearly empty field
 *   keeps its difference from the rest of its plate. `windows` (plate → channel → window) is filled in by the
 *   extraction and recorded in the store's qcbench.json.
 * - `percentile` (per field, `--normalise field`): each field's own `lo`/`hi` percentiles per channel, the paper's
 *   contrast stretch: every field looks alike, whatever its exposure.
 * - `fixed`: one given window per channel for every field.
 */
export type Normalisation =
  | {
      kind: 'plate';
      lo: number;
      hi: number;
      sample: number;
      seed: number;
      windows?: Record<string, Record<string, IntensityRange>>;
    }
  | { kind: 'percentile'; lo: number; hi: number }
  | { kind: 'fixed'; ranges: Record<string, IntensityRange> };

/** Fields per plate sampled for a plate window unless told otherwise. */
export const PLATE_WINDOW_SAMPLE = 8;

/** A plate-window normalisation (the default: median 0.1 / 99.9 % window of ≤ 8 seeded fields per plate). */
export function plateNormalisation(lo = 0.1, hi = 99.9, sample = PLATE_WINDOW_SAMPLE, seed = 0): Normalisation {
  return { kind: 'plate', lo, hi, sample, seed };
}

/** The normalisation of a mode name (`plate`: {@link plateNormalisation}; `field`: per-field percentiles). */
export function normalisationOf(mode: 'plate' | 'field', lo = 0.1, hi = 99.9): Normalisation {
  return mode === 'plate' ? plateNormalisation(lo, hi) : { kind: 'percentile', lo, hi };
}

/** Settings that decide crop content (sent to workers). */
export interface CropSettings {
  channels: string[];
  dnaChannel: string;
  size: number;
  border: BorderPolicy;
  normalisation: Normalisation;
  segment: SegmentOptions;
  /** Source files are recorded relative to this folder (the dataset root) when given. */
  sourceRoot?: string;
  /** URL of a module exporting a `fieldMeasurer` (store/field-table.ts): whole-field measures per channel. */
  fieldMeasures?: string;
}

/** The crops of one field: n×C×S×S uint8 plus one metadata row per crop. */
export interface FieldCrops {
  crops: Uint8Array;
  metas: Omit<CropMeta, 'index'>[];
  nuclei: number;
  /** Whole-field measures (`ImageQuality_<Measure>_<channel>`) when settings name a measurer. */
  measures?: Record<string, number>;
}

/**
 * Reads a field's channels (in `channels` order, one grey plane each) and checks their sizes.
 * Throws QCB_IMAGE_SIZE when channels differ in size, QCB_FILE_* / QCB_CHANNEL_MISSING for unreadable files.
 */
export async function readFieldImages(field: Field, channels: string[]): Promise<ImageData[]> {
  const imgs: ImageData[] = [];
  await Promise.all(
    channels.map(async (c, k) => {
      const path = field.channels[c];
      if (!path) {
        throw new QcbError('QCB_CHANNEL_MISSING', `field ${field.field_id} has no ${c} image`, {
          key: c,
          fix: 'check --channels against the table',
        });
      }
      if (!existsSync(path)) {
        throw new QcbError('QCB_CHANNEL_MISSING', `field ${field.field_id}: ${c} image not found`, {
          file: path,
          key: c,
          fix: 'restore the file or check --root',
        });
      }
      const img = await readImage(path);
      imgs[k] = img.channels > 1 ? extractChannel(img, 0) : img; // a grey image saved as RGB: its first channel
    }),
  );
  const W = imgs[0].width;
  const H = imgs[0].height;
  for (let k = 1; k < imgs.length; k++) {
    if (imgs[k].width !== W || imgs[k].height !== H) {
      throw new QcbError(
        'QCB_IMAGE_SIZE',
        `field ${field.field_id}: ${channels[k]} is ${imgs[k].width}×${imgs[k].height} but ${channels[0]} is ${W}×${H}`,
        {
          file: field.channels[channels[k]],
          key: channels[k],
          value: [imgs[k].width, imgs[k].height],
          allowed: `${W}×${H}`,
          fix: 'all channels of a field must come from the same acquisition; fix the table row',
        },
      );
    }
  }
  return imgs;
}

/**
 * Reads a field's channels, checks their sizes, finds nuclei (or uses `centres`), normalises and cuts the crops.
 * Throws QCB_IMAGE_SIZE when channels differ in size, QCB_FILE_* / QCB_CHANNEL_MISSING for unreadable files.
 */
export async function processField(field: Field, s: CropSettings, centres?: Nucleus[]): Promise<FieldCrops> {
  const imgs = await readFieldImages(field, s.channels);
  const W = imgs[0].width;
  const H = imgs[0].height;
  let measures: Record<string, number> | undefined;
  if (s.fieldMeasures) {
    const m = await loadFieldMeasurer(s.fieldMeasures);
    measures = {};
    for (let k = 0; k < imgs.length; k++)
      for (const [name, v] of Object.entries(m.measure(imgs[k], { dna: s.channels[k] === s.dnaChannel })))
        if (Number.isFinite(v)) measures[measureColumn(name, s.channels[k])] = v;
  }
  const dnaIdx = s.channels.indexOf(s.dnaChannel);
  const nuclei = centres ?? segmentNuclei(imgs[dnaIdx], s.segment).nuclei;
  // Normalise each channel to uint8 once per field.
  const planes = imgs.map((img, k) => toUint8(img, 0, fieldWindow(field, s.channels[k], img, s.normalisation)));
  const S = s.size;
  const C = s.channels.length;
  const per = C * S * S;
  const half = Math.floor(S / 2);
  const out = new Uint8Array(nuclei.length * per);
  const metas: Omit<CropMeta, 'index'>[] = [];
  const seen = new Set<string>();
  const sources = s.channels
    .map((c) => (s.sourceRoot ? relative(s.sourceRoot, field.channels[c]) : field.channels[c]))
    .join(';');
  const rowIdx = new Int32Array(S);
  const colIdx = new Int32Array(S);
  for (const n of nuclei) {
    const xc = Math.round(n.x);
    const yc = Math.round(n.y);
    if (xc < 0 || yc < 0 || xc >= W || yc >= H) continue; // imported centre outside the field
    const id = cropId(field.plate, field.well, field.site, xc, yc);
    if (seen.has(id)) continue;
    const x0 = xc - half;
    const y0 = yc - half;
    const inside = x0 >= 0 && y0 >= 0 && x0 + S <= W && y0 + S <= H;
    if (!inside && s.border === 'skip') continue;
    if (!inside && s.border === 'reflect' && (W < 2 || H < 2)) continue;
    seen.add(id);
    const base = metas.length * per;
    if (inside) {
      for (let c = 0; c < C; c++) {
        const p = planes[c];
        const o = base + c * S * S;
        for (let y = 0; y < S; y++) out.set(p.subarray((y0 + y) * W + x0, (y0 + y) * W + x0 + S), o + y * S);
      }
    } else {
      for (let t = 0; t < S; t++) {
        rowIdx[t] = s.border === 'pad' ? inRange(y0 + t, H) : reflect(y0 + t, H);
        colIdx[t] = s.border === 'pad' ? inRange(x0 + t, W) : reflect(x0 + t, W);
      }
      for (let c = 0; c < C; c++) {
        const p = planes[c];
        const o = base + c * S * S;
        for (let y = 0; y < S; y++) {
          const yy = rowIdx[y];
          if (yy < 0) continue; // zero padding (out is zero-initialised)
          for (let x = 0; x < S; x++) {
            const xx = colIdx[x];
            if (xx >= 0) out[o + y * S + x] = p[yy * W + xx];
          }
        }
      }
    }
    metas.push({
      crop_id: id,
      plate: field.plate,
      well: field.well,
      site: field.site,
      field_id: field.field_id,
      x: xc,
      y: yc,
      area: Math.round(n.area),
      source_files: sources,
      metadata: field.metadata,
    });
  }
  return { crops: out.subarray(0, metas.length * per), metas, nuclei: nuclei.length, measures };
}

/** The intensity window channel `channel` of `field` is normalised with (see {@link Normalisation}). */
export function fieldWindow(field: Field, channel: string, img: ImageData, n: Normalisation): IntensityRange {
  if (n.kind === 'percentile') return percentileRanges(img, n.lo, n.hi)[0];
  const r = n.kind === 'fixed' ? n.ranges[channel] : n.windows?.[field.plate]?.[channel];
  if (!r)
    throw new QcbError(
      'QCB_USAGE',
      n.kind === 'fixed'
        ? `no fixed intensity range for channel ${channel}`
        : `no plate window for plate ${field.plate}, channel ${channel}`,
      {
        key: channel,
        fix: n.kind === 'fixed' ? 'give a range for every channel' : 'estimate the plate windows first (extractCrops)',
      },
    );
  return r;
}

function inRange(i: number, n: number): number {
  return i >= 0 && i < n ? i : -1;
}

/** Mirror index without repeating the edge pixel (numpy 'reflect'), folded until it lands inside. */
function reflect(i: number, n: number): number {
  const period = 2 * n - 2;
  let j = ((i % period) + period) % period;
  if (j >= n) j = period - j;
  return j;
}

// ---------------------------------------------------------------------------------------------------------------
// Worker pool

interface Job {
  id: number;
  field: Field;
  settings: CropSettings;
  centres?: Nucleus[];
  /** Only read the field and return its per-channel percentile windows `[lo, hi]` (plate windows). */
  sampleOnly?: [number, number];
}
interface Reply {
  id: number;
  result?: FieldCrops;
  windows?: IntensityRange[];
  error?: { code: string; message: string; context: Record<string, unknown> };
}

/** Worker threads that run {@link processField}; results come back in submission order per promise. */
export class FieldPool {
  private readonly workers: { w: Worker; busy: number }[] = [];
  private readonly pending = new Map<number, { resolve: (v: never) => void; reject: (e: unknown) => void }>();
  private nextId = 0;

  constructor(n: number) {
    // Workers do not inherit the tsx loader (bin/qcbench.js registers it in-process): a tiny ESM bootstrap does.
    const api = import.meta.resolve('tsx/esm/api');
    const entry = new URL('./crops-worker.ts', import.meta.url).href;
    const code = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(entry)});`;
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`));
      const slot = { w, busy: 0 };
      w.on('message', (r: Reply) => {
        slot.busy--;
        const p = this.pending.get(r.id);
        this.pending.delete(r.id);
        if (!p) return;
        if (r.result) p.resolve(r.result as never);
        else if (r.windows) p.resolve(r.windows as never);
        else if (r.error) {
          const e = new QcbError(
            (r.error.code in ERROR_CODES ? r.error.code : 'QCB_INTERNAL') as keyof typeof ERROR_CODES,
            r.error.message,
            r.error.context,
          );
          p.reject(e);
        }
      });
      w.on('error', (e) => {
        for (const [, p] of this.pending) p.reject(asQcbError(e));
        this.pending.clear();
      });
      this.workers.push(slot);
    }
  }

  run(field: Field, settings: CropSettings, centres?: Nucleus[]): Promise<FieldCrops> {
    return this.post({ id: 0, field, settings, centres });
  }

  /** The field's own `lo`/`hi` percentile window per channel (for plate windows), read in a worker. */
  fieldWindows(field: Field, settings: CropSettings, lo: number, hi: number): Promise<IntensityRange[]> {
    return this.post({ id: 0, field, settings, sampleOnly: [lo, hi] });
  }

  private post<T>(job: Job): Promise<T> {
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    slot.busy++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject });
      slot.w.postMessage({ ...job, id } satisfies Job);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((s) => s.w.terminate()));
  }
}

/** Handles one job inside a worker thread (see crops-worker.ts). */
export async function handleJob(job: Job): Promise<{ reply: Reply; transfer: ArrayBuffer[] }> {
  try {
    if (job.sampleOnly) {
      const windows = await fieldWindows(job.field, job.settings.channels, ...job.sampleOnly);
      return { reply: { id: job.id, windows }, transfer: [] };
    }
    const r = await processField(job.field, job.settings, job.centres);
    const crops = r.crops.slice(); // own buffer of exactly the crops, transferred without copying
    return {
      reply: { id: job.id, result: { crops, metas: r.metas, nuclei: r.nuclei, measures: r.measures } },
      transfer: [crops.buffer as ArrayBuffer],
    };
  } catch (e) {
    const q = asQcbError(e);
    const { cause: _c, ...context } = q.context;
    return {
      reply: { id: job.id, error: { code: q.code, message: q.message, context: context as Record<string, unknown> } },
      transfer: [],
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Plate windows

/** A field's own `lo`-th/`hi`-th percentile window of each channel (in `channels` order). */
export async function fieldWindows(
  field: Field,
  channels: string[],
  lo: number,
  hi: number,
): Promise<IntensityRange[]> {
  return (await readFieldImages(field, channels)).map((img) => percentileRanges(img, lo, hi)[0]);
}

/**
 * The fields a plate window is estimated from: up to `sample` of the plate's fields (all fields of `fields` on that
 * plate, in table order), chosen by a permutation seeded with (seed, plate) and returned in table order, so every
 * shard and every resumed run picks the same ones.
 */
export function windowSampleFields(fields: Field[], plate: string, sample: number, seed: number): Field[] {
  const onPlate = fields.filter((f) => f.plate === plate);
  const pick = permutation(onPlate.length, deriveSeed(seed, 'plate-window', plate))
    .slice(0, Math.max(1, sample))
    .sort((a, b) => a - b);
  return pick.map((i) => onPlate[i]);
}

/**
 * One window per plate and channel (see {@link Normalisation} `plate`) for the plates of `plates`: the median over
 * the plate's sampled fields (of `fields`) of each end of their own `lo`/`hi` percentile windows ({@link
 * medianWindow}), so a minority of dark, saturated or empty fields in the sample moves neither end. A sampled field
 * that cannot be read is left out of its plate's sample (extraction reports it); a plate with no readable sampled
 * field gets the empty window {0, 0} and a warning.
 */
export async function estimatePlateWindows(
  fields: Field[],
  plates: string[],
  channels: string[],
  n: Extract<Normalisation, { kind: 'plate' }>,
  opts: { pool?: FieldPool; settings?: CropSettings; log?: Logger } = {},
): Promise<Record<string, Record<string, IntensityRange>>> {
  const out: Record<string, Record<string, IntensityRange>> = {};
  const jobs = plates.map((plate) => ({ plate, fields: windowSampleFields(fields, plate, n.sample, n.seed) }));
  const all = jobs.flatMap((j) => j.fields.map((f) => ({ plate: j.plate, f })));
  const settled = await Promise.allSettled(
    all.map(({ f }) =>
      opts.pool && opts.settings
        ? opts.pool.fieldWindows(f, { ...opts.settings, channels }, n.lo, n.hi)
        : fieldWindows(f, channels, n.lo, n.hi),
    ),
  );
  for (const { plate } of jobs) {
    const got = all
      .map((a, i) => ({ a, r: settled[i] }))
      .filter(({ a, r }) => a.plate === plate && r.status === 'fulfilled')
      .map(({ r }) => (r as PromiseFulfilledResult<IntensityRange[]>).value);
    if (!got.length) opts.log?.warn('no readable field to estimate the plate window from', { plate });
    out[plate] = Object.fromEntries(channels.map((c, k) => [c, medianWindow(got.map((g) => g[k]))]));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Extraction driver

export interface ExtractOptions {
  fieldSet: FieldSet;
  /** Output store (for sharded runs: the final store; parts go to OUT/parts/). */
  out: string;
  size?: number;
  border?: BorderPolicy;
  normalisation?: Normalisation;
  segment?: SegmentOptions;
  /** Imported centres per field id; fields without an entry get no crops. */
  centres?: Map<string, Nucleus[]>;
  /** 1-based shard index and shard count. */
  shard?: { index: number; count: number };
  /** Stop at the first bad field (default: skip and list it in skipped.csv). */
  strict?: boolean;
  /** Worker threads (default 2; 0 = in-process). */
  workers?: number;
  /** An already started pool to use instead (not closed here): benchmarks keep start-up out of the timing. */
  pool?: FieldPool;
  /** Fields per checkpoint (default 16). */
  batchFields?: number;
  compression?: Compression;
  /** Continue an interrupted run (default true). */
  resume?: boolean;
  overwrite?: boolean;
  /** Merge the parts when this is the last shard to finish (default true). */
  autoMerge?: boolean;
  /** Stops cleanly after the current batch (its checkpoint written); the run can be resumed. */
  signal?: AbortSignal;
  /** Called after each checkpoint with the number of fields done in this shard. */
  onBatch?: (fieldsDone: number) => void;
  /**
   * URL of a module exporting a `fieldMeasurer` (store/field-table.ts): whole-field image-quality measures per
   * channel, written to the store's field table (metrics/field-quality.ts FIELD_MEASURES_MODULE).
   */
  fieldMeasures?: string;
  log?: Logger;
}

export interface ExtractSummary {
  /** The store written: OUT, or OUT/parts/shard-i-of-n for an unmerged shard. */
  store: string;
  fields: number;
  crops: number;
  skipped: SkippedField[];
  seconds: number;
  fieldsPerSecond: number;
  /** True when this run produced (or found) the merged final store. */
  merged: boolean;
  /** Fields already done by an earlier, interrupted run. */
  resumedFrom: number;
  /** Stopped by `signal` before the end (the store is resumable, not complete). */
  interrupted: boolean;
}

const SKIPPED_HEADER = 'field_id,file,row,code,message\n';

/** The fields of shard `index` (1-based) of `count`: a contiguous range, so merged order = unsharded order. */
export function shardRange(n: number, index: number, count: number): [number, number] {
  if (!Number.isInteger(index) || !Number.isInteger(count) || count < 1 || index < 1 || index > count) {
    throw new QcbError('QCB_USAGE', `bad shard ${index}/${count}`, {
      key: '--shard',
      value: `${index}/${count}`,
      allowed: 'i/n with 1 ≤ i ≤ n',
      fix: 'pass a shard index within the shard count (the CLI takes 0-based i/n)',
    });
  }
  return [Math.floor(((index - 1) * n) / count), Math.floor((index * n) / count)];
}

export function partPath(out: string, index: number, count: number): string {
  return join(resolve(out), 'parts', `shard-${index}-of-${count}`);
}

/** Runs extraction (see the module comment). */
export async function extractCrops(o: ExtractOptions): Promise<ExtractSummary> {
  const t0 = Date.now();
  const log = o.log ?? defaultLogger;
  const fs = o.fieldSet;
  const settings: CropSettings = {
    channels: fs.channels,
    dnaChannel: fs.dnaChannel,
    size: o.size ?? 128,
    border: o.border ?? 'skip',
    normalisation: o.normalisation ?? plateNormalisation(),
    segment: o.segment ?? {},
    sourceRoot: fs.root,
    fieldMeasures: o.fieldMeasures,
  };
  const measurer = o.fieldMeasures ? await loadFieldMeasurer(o.fieldMeasures) : undefined;
  if (!Number.isInteger(settings.size) || settings.size < 8) {
    throw new QcbError('QCB_USAGE', `crop size ${settings.size} is too small`, {
      key: '--size',
      value: settings.size,
      allowed: 'an integer ≥ 8',
      fix: 'use e.g. --size 128',
    });
  }
  const shard = o.shard ?? { index: 1, count: 1 };
  const [from, to] = shardRange(fs.fields.length, shard.index, shard.count);
  const fields = fs.fields.slice(from, to);
  const sharded = shard.count > 1;
  const storePath = sharded ? partPath(o.out, shard.index, shard.count) : resolve(o.out);
  if (sharded && !o.overwrite && existsSync(join(storePath, 'qcbench.json'))) {
    // A requeued array task whose shard already finished: nothing to extract, only (maybe) the merge is left.
    const done = await openCropStore(storePath);
    log.info('shard already complete', { store: storePath, crops: done.count });
    const merged = (o.autoMerge ?? true) && (await mergeShards(o.out, shard.count, { log, ifComplete: true }));
    return {
      store: merged ? resolve(o.out) : storePath,
      fields: fields.length,
      crops: done.count,
      skipped: [],
      seconds: (Date.now() - t0) / 1000,
      fieldsPerSecond: 0,
      merged,
      resumedFrom: fields.length,
      interrupted: false,
    };
  }
  const metadataColumns = [...new Set(fs.fields.flatMap((f) => Object.keys(f.metadata)))];
  const nWorkers = o.workers ?? 2;
  const ownPool = !o.pool && nWorkers > 0 && fields.length > 1 ? new FieldPool(nWorkers) : undefined;
  const pool = o.pool ?? ownPool;
  let writer: CropStoreWriter;
  try {
    const n = settings.normalisation;
    if (n.kind === 'plate' && !n.windows) {
      // A resumed run keeps the windows its checkpoint recorded (even if a sampled field has since become unreadable
      // or been repaired). Otherwise: windows of this shard's plates from samples of each plate's fields in the whole
      // screen, so every shard estimates the same window for a plate and the parts merge.
      const windows =
        ((o.resume ?? true) && !o.overwrite ? checkpointWindows(storePath, n) : undefined) ??
        (await estimatePlateWindows(fs.fields, [...new Set(fields.map((f) => f.plate))], settings.channels, n, {
          pool,
          settings,
          log,
        }));
      settings.normalisation = { ...n, windows };
    }
    writer = await openWriter();
  } catch (e) {
    await ownPool?.close();
    throw e;
  }
  function openWriter(): Promise<CropStoreWriter> {
    return CropStoreWriter.create(storePath, {
      channels: settings.channels,
      size: settings.size,
      compression: o.compression ?? 'none',
      normalisation: settings.normalisation as unknown as Record<string, unknown>,
      dataset: fs.dataset,
      sourceRoot: fs.root,
      params: {
        border: settings.border,
        dnaChannel: settings.dnaChannel,
        segment: settings.segment,
        centres: o.centres ? 'imported' : 'segmented',
        fields: fs.fields.length,
        ...(measurer ? { field_measures: measurer.id } : {}),
      },
      metadataColumns,
      resume: o.resume ?? true,
      overwrite: o.overwrite,
    });
  }
  const state = writer.resumedState as
    | { fieldsDone?: number; skipped?: SkippedField[]; fieldTableBytes?: number }
    | undefined;
  let done = state?.fieldsDone ?? 0;
  const resumedFrom = done;
  const skipped: SkippedField[] = state?.skipped ?? [];
  if (resumedFrom > 0)
    log.info('resuming crop extraction', { store: storePath, fieldsDone: done, crops: writer.length });
  // every field given, whatever came of it (crops, no nuclei, unreadable), with its measures
  const fieldTable = new FieldTableWriter(
    storePath,
    fieldTableColumns(measurer?.measures ?? [], settings.channels),
    resumedFrom > 0 ? state?.fieldTableBytes : undefined,
  );
  const batch = Math.max(1, o.batchFields ?? 16);
  const progress = log.startProgress(
    sharded ? `crops (shard ${shard.index}/${shard.count})` : 'crops',
    fields.length,
    'fields',
  );
  if (done) progress.tick(done);
  let failed = true;
  try {
    while (done < fields.length) {
      const slice = fields.slice(done, Math.min(fields.length, done + batch));
      const results = await Promise.allSettled(
        slice.map((f) => {
          const c = o.centres ? (o.centres.get(f.field_id) ?? []) : undefined;
          return pool ? pool.run(f, settings, c) : processField(f, settings, c);
        }),
      );
      for (let k = 0; k < slice.length; k++) {
        const r = results[k];
        const f = slice[k];
        if (r.status === 'fulfilled') {
          if (r.value.metas.length) await writer.append(r.value.crops, r.value.metas);
          const n = r.value.metas.length;
          fieldTable.append({
            ...f,
            status: n > 0 ? 'ok' : r.value.nuclei > 0 ? 'no_crops' : 'no_nuclei',
            crops: n,
            nuclei: r.value.nuclei,
            code: '',
            message: '',
            measures: r.value.measures ?? {},
          });
          continue;
        }
        const e = asQcbError(r.reason);
        if (o.strict || e.code === 'QCB_INTERNAL') throw e;
        log.warn('skipping field', { field: f.field_id, code: e.code, file: e.context.file });
        const sk = { field_id: f.field_id, file: e.context.file ?? '', code: e.code, message: e.message };
        skipped.push(sk);
        fieldTable.append(unreadableField({ ...sk, plate: f.plate, well: f.well, site: f.site }));
      }
      done += slice.length;
      await writer.checkpoint({ fieldsDone: done, skipped, fieldTableBytes: fieldTable.sync() });
      progress.tick(slice.length, `${writer.length} crops`);
      o.onBatch?.(done);
      if (o.signal?.aborted && done < fields.length) break;
    }
    failed = false;
  } catch (e) {
    // Bad input (a bad field in a strict run) leaves nothing half-written: the store this run created is removed, a
    // resumed one goes back to where this run found it. A run failure (exit 1) keeps its checkpoint to resume from.
    if (asQcbError(e).exitCode === EXIT.badInput) writer.discard();
    throw e;
  } finally {
    // A failed run is not "done": its progress line is cleared without a summary.
    if (failed) progress.abandon();
    else progress.finish();
    await ownPool?.close();
  }
  if (done < fields.length) {
    const seconds = (Date.now() - t0) / 1000;
    log.warn('crop extraction interrupted; rerun the same command to resume', {
      store: storePath,
      fieldsDone: done,
      of: fields.length,
    });
    return {
      store: storePath,
      fields: done,
      crops: writer.length,
      skipped,
      seconds,
      fieldsPerSecond: (done - resumedFrom) / Math.max(seconds, 1e-3),
      merged: false,
      resumedFrom,
      interrupted: true,
    };
  }
  const allSkipped = [...fs.skipped.filter(() => shard.index === 1), ...skipped];
  // fields the reader left out (missing images) are fields of the screen too: rows with reason unreadable
  for (const s of shard.index === 1 ? fs.skipped : []) if (s.field_id) fieldTable.append(unreadableField(s));
  fieldTable.sync();
  writeFileSync(
    join(storePath, 'skipped.csv'),
    SKIPPED_HEADER +
      allSkipped
        .map((s) =>
          [s.field_id, s.file, s.row ?? '', s.code, s.message]
            .map((v) => csvCell(String(v).replace(/[\r\n]+/g, ' ')))
            .join(','),
        )
        .join('\n') +
      (allSkipped.length ? '\n' : ''),
  );
  const info = await writer.finish({ shard: sharded ? `${shard.index}/${shard.count}` : undefined });
  const seconds = (Date.now() - t0) / 1000;
  log.info('crops written', {
    store: storePath,
    fields: fields.length,
    crops: info.count,
    skipped: allSkipped.length,
    seconds: Number(seconds.toFixed(1)),
  });
  let merged = !sharded;
  if (sharded && (o.autoMerge ?? true)) merged = await mergeShards(o.out, shard.count, { log, ifComplete: true });
  return {
    store: merged ? resolve(o.out) : storePath,
    fields: fields.length,
    crops: info.count,
    skipped: allSkipped,
    seconds,
    fieldsPerSecond: (fields.length - resumedFrom) / Math.max(seconds, 1e-3),
    merged,
    resumedFrom,
    interrupted: false,
  };
}

/** The plate windows of an interrupted run's checkpoint in `store`, when it used the same plate settings as `n`. */
function checkpointWindows(
  store: string,
  n: Extract<Normalisation, { kind: 'plate' }>,
): Record<string, Record<string, IntensityRange>> | undefined {
  const progress = join(store, 'progress.json');
  if (!existsSync(progress) || existsSync(join(store, 'qcbench.json'))) return undefined;
  try {
    const prev = (JSON.parse(readFileSync(progress, 'utf8')) as { info?: { normalisation?: Normalisation } }).info
      ?.normalisation;
    if (prev?.kind !== 'plate' || !prev.windows) return undefined;
    const same = prev.lo === n.lo && prev.hi === n.hi && prev.sample === n.sample && prev.seed === n.seed;
    return same ? prev.windows : undefined;
  } catch {
    return undefined; // an unreadable checkpoint: the store writer reports it
  }
}

/**
 * Concatenates the part stores OUT/parts/shard-i-of-n (i = 1…n) into OUT, in shard order, then removes the parts.
 * With `ifComplete`, returns false (doing nothing) while some part is unfinished or another process merges.
 */
export async function mergeShards(
  out: string,
  count: number,
  opts: { log?: Logger; ifComplete?: boolean; keepParts?: boolean } = {},
): Promise<boolean> {
  const log = opts.log ?? defaultLogger;
  out = resolve(out);
  const parts = Array.from({ length: count }, (_, i) => partPath(out, i + 1, count));
  const missing = parts.filter((p) => !existsSync(join(p, 'qcbench.json')));
  if (missing.length) {
    if (opts.ifComplete) {
      log.info('shard done; waiting for the other shards before merging', { unfinished: missing.length });
      return false;
    }
    throw new QcbError('QCB_STORE', `${missing.length} of ${count} shards are not finished`, {
      file: missing[0],
      fix: 'run the missing shards (same options), then merge',
    });
  }
  if (existsSync(join(out, 'qcbench.json'))) return true;
  const lock = join(out, 'parts', '.merge.lock');
  let fd: number;
  try {
    fd = openSync(lock, 'wx');
  } catch {
    if (opts.ifComplete) return false;
    throw new QcbError('QCB_STORE', 'another process is merging the shards', {
      file: lock,
      fix: 'wait for it, or delete the lock file if that process died',
    });
  }
  closeSync(fd);
  try {
    const stores = await Promise.all(parts.map((p) => openCropStore(p)));
    const first = stores[0].info;
    // Plate windows: each shard recorded its own plates' windows (the same for a plate two shards share); the merged
    // store records their union. Everything else about the normalisation must agree.
    const { windows: _w, ...firstNorm } = first.normalisation;
    const windows: Record<string, unknown> = {};
    for (const s of stores) {
      const { windows: w, ...norm } = s.info.normalisation;
      Object.assign(windows, w ?? {});
      if (
        s.info.channels.join() !== first.channels.join() ||
        s.info.size !== first.size ||
        JSON.stringify(norm) !== JSON.stringify(firstNorm)
      ) {
        throw new QcbError('QCB_STORE', 'shards were extracted with different settings', {
          file: s.path,
          fix: 'rerun all shards with the same options',
        });
      }
    }
    const { shard: _s, ...params } = first.params;
    const w = await CropStoreWriter.create(out, {
      channels: first.channels,
      size: first.size,
      compression: first.compression,
      normalisation: first.normalisation.kind === 'plate' ? { ...firstNorm, windows } : first.normalisation,
      dataset: first.dataset,
      sourceRoot: first.source_root,
      params: { ...params, shards: count },
      metadataColumns: first.metadata_columns,
      overwrite: true,
    });
    const skippedLines: string[] = [];
    for (const s of stores) {
      for (let a = 0; a < s.count; a += 256) {
        const b = Math.min(s.count, a + 256);
        await w.append(await s.read(a, b), s.meta.slice(a, b));
      }
      const sk = join(s.path, 'skipped.csv');
      if (existsSync(sk))
        skippedLines.push(
          ...readFileSync(sk, 'utf8')
            .split('\n')
            .slice(1)
            .filter((l) => l),
        );
    }
    writeFileSync(join(out, 'skipped.csv'), SKIPPED_HEADER + skippedLines.map((l) => `${l}\n`).join(''));
    // the parts' field tables, in shard order (one header: the parts were made with the same settings)
    const tables = stores.map((s) => join(s.path, FIELD_TABLE)).filter((f) => existsSync(f));
    if (tables.length === stores.length) {
      const [head, ...first] = readFileSync(tables[0], 'utf8').split('\n');
      const rows = [first, ...tables.slice(1).map((f) => readFileSync(f, 'utf8').split('\n').slice(1))].flat();
      writeFileSync(
        join(out, FIELD_TABLE),
        `${head}\n${rows
          .filter((l) => l)
          .map((l) => `${l}\n`)
          .join('')}`,
      );
    }
    const info = await w.finish();
    log.info('shards merged', { store: out, shards: count, crops: info.count });
    if (!opts.keepParts) rmSync(join(out, 'parts'), { recursive: true, force: true });
    return true;
  } finally {
    rmSync(lock, { force: true });
  }
}
