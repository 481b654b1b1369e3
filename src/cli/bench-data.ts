import { FIELD_MEASURES_MODULE } from '../metrics/field-quality.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type LoaderBenchOptions, type LoaderBenchResult, benchLoader } from '../bench/augment.js';
import { extractCrops, FieldPool } from '../data/crops.js';
import { readCsvDataset } from '../data/datasets/csv.js';
import { encodeTiff16 } from '../data/io/tiff.js';
import { openCropStore } from '../data/store/crop-store.js';
import { DOMAINS, type SynthDomain } from '../data/synth/domains.js';
import {
  QUICK_SCREENS,
  type ResolvedSynthOptions,
  resolveSynthOptions,
  synthesizeScreen,
} from '../data/synth/screen.js';
import type { FieldSet } from '../data/types.js';
import { QcbError } from '../errors.js';
import { Logger } from '../util/log.js';
import { intArg } from './args.js';
import type { CliContext, Command } from './types.js';

/**
 * `qcbench bench data`: the data targets of issue 4, measured on this machine —
 * - crop extraction on three-channel 696×520 16-bit fields (the BBBC022 field size): ≥ 20 fields/s on 2 cores;
 *   plus crop read throughput from the resulting store, and peak RSS while extracting a screen and one twice its
 *   size (streaming: memory must not grow with the screen);
 * - augmented 128×128×3 crops through the prefetching BatchLoader (two views per crop, as SSL pretraining reads
 *   them): ≥ 2,000 crops/s, and its ratio to what a training step consumes (≥ 10×);
 * - synthetic generation of the quick protocol's two screens (protocols/quick.yaml: u2os and mcf7, QUICK_SCREENS):
 *   in under a minute.
 */

/** Targets (issue 4). */
export const DATA_TARGETS = {
  extractionFieldsPerSecond: 20,
  loaderCropsPerSecond: 2000,
  loaderToTrainingRatio: 10,
  quickSynthSeconds: 60,
} as const;

/**
 * Images/s of a ResNet18 fine-tuning step at 128×128 on 2 cores that `qcbench bench engine` targets: the training
 * rate the loader is compared with when no measured rate is given (`--train-rate`).
 */
export const ENGINE_TRAIN_TARGET_IMAGES_PER_SECOND = 52;

/** Peak-RSS growth (MB) between a screen and one twice its size below which extraction counts as streaming. */
export const STREAMING_RSS_TOLERANCE_MB = 64;

/** xorshift32 in [0, 1): deterministic fields. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/**
 * Writes `n` three-channel fields (dna, actin, mito: 16-bit TIFF, 12-bit range) with ~`nucleiPerField` elliptical
 * textured nuclei, cytoplasm around them, shading and camera noise, plus `fields.csv` in the generic CSV layout.
 * Realistic enough that segmentation and cropping do the same work as on BBBC022 fields.
 */
export function writeBenchFields(
  dir: string,
  n: number,
  opts: { width?: number; height?: number; nucleiPerField?: number; seed?: number } = {},
): string {
  const W = opts.width ?? 696;
  const H = opts.height ?? 520;
  const rnd = rng(opts.seed ?? 1);
  mkdirSync(join(dir, 'images'), { recursive: true });
  const rows = ['field_id,plate,well,site,path_dna,path_actin,path_mito,compound'];
  const dna = new Float32Array(W * H);
  const act = new Float32Array(W * H);
  const mit = new Float32Array(W * H);
  for (let f = 0; f < n; f++) {
    dna.fill(0);
    act.fill(0);
    mit.fill(0);
    const k = Math.max(1, Math.round((opts.nucleiPerField ?? 90) * (0.7 + 0.6 * rnd())));
    for (let c = 0; c < k; c++) {
      const cx = rnd() * W;
      const cy = rnd() * H;
      const a = 10 + 6 * rnd();
      const b = a * (0.6 + 0.35 * rnd());
      const th = rnd() * Math.PI;
      const amp = 900 + 1800 * rnd();
      const co = Math.cos(th);
      const si = Math.sin(th);
      const R = Math.ceil(a * 2.4);
      for (let y = Math.max(0, Math.floor(cy - R)); y < Math.min(H, cy + R); y++) {
        for (let x = Math.max(0, Math.floor(cx - R)); x < Math.min(W, cx + R); x++) {
          const dx = x - cx;
          const dy = y - cy;
          const u = (dx * co + dy * si) / a;
          const v = (-dx * si + dy * co) / b;
          const r2 = u * u + v * v;
          const i = y * W + x;
          if (r2 <= 1) dna[i] += amp * (0.8 + 0.2 * Math.sin(x * 0.9 + y * 0.7 + c)) * (1 - 0.3 * r2);
          if (r2 <= 5.5) {
            act[i] += 500 * Math.exp(-r2 / 3) * (0.7 + 0.3 * Math.sin(x * 0.3 - y * 0.2));
            mit[i] += 700 * Math.exp(-r2 / 2) * (0.6 + 0.4 * Math.sin(x * 1.3) * Math.cos(y * 1.1));
          }
        }
      }
    }
    const site = (f % 9) + 1;
    const well = `${String.fromCharCode(66 + (Math.floor(f / 90) % 14))}${String((Math.floor(f / 9) % 10) + 2).padStart(2, '0')}`;
    const names = ['dna', 'actin', 'mito'].map((ch) => `P1_${well}_s${site}_${ch}.tif`);
    [dna, act, mit].forEach((plane, ci) => {
      const out = new Uint16Array(W * H);
      for (let y = 0; y < H; y++) {
        const shade = 1 - 0.15 * ((y - H / 2) / H) ** 2;
        for (let x = 0; x < W; x++) {
          const i = y * W + x;
          const noise = (rnd() + rnd() + rnd() - 1.5) * 16;
          out[i] = Math.max(0, Math.min(4095, Math.round(110 + plane[i] * shade + noise)));
        }
      }
      writeFileSync(join(dir, 'images', names[ci]), encodeTiff16(W, H, out));
    });
    rows.push(
      `P1_${well}_s${site},P1,${well},${site},${names.map((nm) => `images/${nm}`).join(',')},${f % 2 ? 'DMSO' : 'cpd-1'}`,
    );
  }
  const csv = join(dir, 'fields.csv');
  writeFileSync(csv, `${rows.join('\n')}\n`);
  return csv;
}

export interface LoaderBench extends LoaderBenchResult {
  /** Images (= augmented views) per second a training step consumes, and where that figure comes from. */
  trainImagesPerSecond: number;
  trainRateSource: 'given' | 'engine-target';
  /** viewsPerSecond / trainImagesPerSecond: how many times faster the loader feeds than training eats. */
  ratioToTraining: number;
  target: { cropsPerSecond: number; met: boolean; ratio: number; ratioMet: boolean };
}

export interface SynthBench {
  /** The screens generated, each with its size and seconds. */
  screens: { domain: SynthDomain; fields: number; width: number; height: number; channels: number; seconds: number }[];
  /** True when the screens are exactly the quick protocol's (QUICK_SCREENS): `seconds` is then the target figure. */
  quickProtocol: boolean;
  fields: number;
  seconds: number;
  fieldsPerSecond: number;
  /** Channel-megapixels written per second (16-bit TIFF). */
  megapixelsPerSecond: number;
  /** Seconds for the quick protocol's screens: measured when `quickProtocol`, else scaled by pixel count. */
  quickSeconds: number;
  target: { seconds: number; met: boolean };
}

export interface MemoryBench {
  /** Fields of the two screens extracted (the second is the first twice over). */
  fields: [number, number];
  /** Peak RSS of this process (MB) while extracting each screen (sampled every 25 ms and after each batch). */
  peakRssMB: [number, number];
  growthMB: number;
  /**
   * What holding the second screen's extra crops in memory would add (MB): a non-streaming extractor's growth. The
   * check only discriminates when this is well above the tolerance (the default 60 fields: about 140 MB).
   */
  extraCropsMB: number;
  /** growthMB ≤ {@link STREAMING_RSS_TOLERANCE_MB}: memory does not grow with the screen. */
  bounded: boolean;
  toleranceMB: number;
  /** Peak RSS of the whole benchmark process (MB). */
  processPeakRssMB: number;
}

export interface DataBenchResult {
  fields: number;
  crops: number;
  workers: number;
  extractionFieldsPerSecond: number;
  extractionSeconds: number;
  /** CPU time per field of an in-process, warmed-up run (decode, segment, normalise, crop, write). */
  cpuSecondsPerField: number;
  /** What an idle machine would reach: usable cores / CPU seconds per field (an estimate, not a measurement). */
  idleEstimateFieldsPerSecond: number;
  readCropsPerSecondSequential: number;
  readCropsPerSecondRandom: number;
  cores: number;
  /** The crop-extraction target. */
  target: { fieldsPerSecond: number; met: boolean };
  /** Peak RSS over two screen sizes (absent with `memory: false`). */
  memory?: MemoryBench;
  /** Augmentation loader throughput (absent with `loader: false`). */
  loader?: LoaderBench;
  /** Synthetic generation of the quick protocol's data (absent with `synth: false`). */
  synth?: SynthBench;
}

export interface DataBenchOptions {
  fields?: number;
  workers?: number;
  /** Whole-field image-quality measures in the extraction, as `data crops` computes them (default true). */
  fieldMeasures?: boolean;
  log?: Logger;
  /** Extract a screen twice the size too and compare peak RSS (default true). */
  memory?: boolean;
  /** Loader benchmark options (default: 128×128×3, batch 128, two views, main thread as in pretraining); false: skip. */
  loader?: LoaderBenchOptions | false;
  /** A measured training rate in images/s (e.g. from `qcbench bench engine`); default the engine's target. */
  trainImagesPerSecond?: number;
  /**
   * Synthetic generation: the quick protocol's screens by default; `screens` replaces them (smaller, for tests: the
   * quick figure is then scaled by pixel count); `workers` as synthesizeScreen's. false: skip.
   */
  synth?:
    | {
        screens?: {
          domain: SynthDomain;
          plates?: number;
          wells?: number;
          sites?: number;
          width?: number;
          height?: number;
        }[];
        workers?: number;
      }
    | false;
}

const MB = 1024 * 1024;

/** Peak RSS while `fn` runs: sampled on a timer (the main thread idles while workers extract) and on demand. */
async function withPeakRss<T>(fn: (sample: () => void) => Promise<T>): Promise<{ value: T; peakMB: number }> {
  let peak = process.memoryUsage.rss();
  const sample = () => {
    peak = Math.max(peak, process.memoryUsage.rss());
  };
  const timer = setInterval(sample, 25);
  timer.unref();
  try {
    const value = await fn(sample);
    sample();
    return { value, peakMB: peak / MB };
  } finally {
    clearInterval(timer);
  }
}

/** The field set `k` times over (distinct field ids): a bigger screen from the same files. */
function repeated(fs: FieldSet, k: number): FieldSet {
  const fields = Array.from({ length: k }, (_, r) =>
    fs.fields.map((f) => (r === 0 ? f : { ...f, field_id: `${f.field_id}-r${r}` })),
  ).flat();
  return { ...fs, fields };
}

/** Channel-megapixels of a screen. */
function megapixels(o: ResolvedSynthOptions): number {
  return (o.plates * o.wells * o.sites * o.width * o.height * DOMAINS[o.domain].channels.length) / 1e6;
}

/** Times synthetic generation into `dir` (see {@link DataBenchOptions.synth}). */
export async function benchSynth(dir: string, o: Exclude<DataBenchOptions['synth'], false> = {}): Promise<SynthBench> {
  const quick = Object.values(QUICK_SCREENS) as ResolvedSynthOptions[];
  const specs = o.screens ? o.screens.map((s) => resolveSynthOptions({ ...s, out: dir })) : quick;
  const screens: SynthBench['screens'] = [];
  const t0 = performance.now();
  for (const [i, spec] of specs.entries()) {
    const t = performance.now();
    const r = await synthesizeScreen({ ...spec, out: join(dir, `${i}-${spec.domain}`), workers: o.workers });
    screens.push({
      domain: spec.domain,
      fields: r.fields,
      width: spec.width,
      height: spec.height,
      channels: DOMAINS[spec.domain].channels.length,
      seconds: (performance.now() - t) / 1000,
    });
  }
  const seconds = (performance.now() - t0) / 1000;
  const fields = screens.reduce((a, s) => a + s.fields, 0);
  const mp = specs.reduce((a, s) => a + megapixels(s), 0);
  const quickMp = quick.reduce((a, s) => a + megapixels(s), 0);
  const quickProtocol = JSON.stringify(specs) === JSON.stringify(quick);
  const quickSeconds = quickProtocol ? seconds : (seconds * quickMp) / mp;
  return {
    screens,
    quickProtocol,
    fields,
    seconds,
    fieldsPerSecond: fields / seconds,
    megapixelsPerSecond: mp / seconds,
    quickSeconds,
    target: { seconds: DATA_TARGETS.quickSynthSeconds, met: quickSeconds < DATA_TARGETS.quickSynthSeconds },
  };
}

/** Times the augmentation loader and compares it with a training step's consumption. */
export async function benchAugmentLoader(
  opts: LoaderBenchOptions = {},
  trainImagesPerSecond?: number,
): Promise<LoaderBench> {
  const r = await benchLoader(opts);
  const train = trainImagesPerSecond ?? ENGINE_TRAIN_TARGET_IMAGES_PER_SECOND;
  const ratio = r.viewsPerSecond / train;
  return {
    ...r,
    trainImagesPerSecond: train,
    trainRateSource: trainImagesPerSecond === undefined ? 'engine-target' : 'given',
    ratioToTraining: ratio,
    target: {
      cropsPerSecond: DATA_TARGETS.loaderCropsPerSecond,
      met: r.cropsPerSecond >= DATA_TARGETS.loaderCropsPerSecond,
      ratio: DATA_TARGETS.loaderToTrainingRatio,
      ratioMet: ratio >= DATA_TARGETS.loaderToTrainingRatio,
    },
  };
}

/** Runs the data benchmark in a temp folder (removed afterwards). */
export async function benchData(o: DataBenchOptions = {}): Promise<DataBenchResult> {
  const n = o.fields ?? 60;
  const dir = mkdtempSync(join(tmpdir(), 'qcb-bench-data-'));
  try {
    writeBenchFields(join(dir, 'screen'), n);
    const fs = readCsvDataset({ root: join(dir, 'screen'), dnaChannel: 'dna' });
    const quiet = o.log ?? new Logger({ quiet: true });
    const workers = o.workers ?? 2;
    const fieldMeasures = o.fieldMeasures === false ? undefined : FIELD_MEASURES_MODULE;
    // Workers are started and warmed up (TypeScript compiled, JIT) on a few fields first: start-up is paid once
    // per run, not per field, and would dominate a short benchmark.
    const pool = workers > 0 ? new FieldPool(workers) : undefined;
    let sum: Awaited<ReturnType<typeof extractCrops>>;
    let ext: number;
    let memory: MemoryBench | undefined;
    try {
      const warm = { ...fs, fields: fs.fields.slice(0, Math.min(2 * Math.max(1, workers), n)) };
      await extractCrops({ fieldSet: warm, out: join(dir, 'warm-pool'), workers, pool, log: quiet, fieldMeasures });
      const t0 = performance.now();
      const a = await withPeakRss((sample) =>
        extractCrops({
          fieldSet: fs,
          out: join(dir, 'store'),
          workers,
          pool,
          fieldMeasures,
          log: quiet,
          batchFields: 16,
          onBatch: sample,
        }),
      );
      ext = (performance.now() - t0) / 1000;
      sum = a.value;
      if (o.memory ?? true) {
        // The same fields twice over: twice the screen, the same work per field. A streaming pipeline peaks at the
        // same RSS; one that holds crops or rows of the whole screen peaks higher.
        const b = await withPeakRss((sample) =>
          extractCrops({
            fieldSet: repeated(fs, 2),
            out: join(dir, 'store-2x'),
            workers,
            pool,
            fieldMeasures,
            log: quiet,
            batchFields: 16,
            onBatch: sample,
          }),
        );
        rmSync(join(dir, 'store-2x'), { recursive: true, force: true });
        const growth = b.peakMB - a.peakMB;
        memory = {
          fields: [n, 2 * n],
          peakRssMB: [a.peakMB, b.peakMB],
          growthMB: growth,
          extraCropsMB: (sum.crops * fs.channels.length * 128 * 128) / MB,
          bounded: growth <= STREAMING_RSS_TOLERANCE_MB,
          toleranceMB: STREAMING_RSS_TOLERANCE_MB,
          processPeakRssMB: 0,
        };
      }
    } finally {
      await pool?.close();
    }
    // CPU cost per field of the pipeline itself, in-process and warmed up (no worker start-up, which compiles the
    // TypeScript sources): unlike wall time it barely depends on what else runs on the machine.
    const few = { ...fs, fields: fs.fields.slice(0, Math.min(4, n)) };
    await extractCrops({ fieldSet: few, out: join(dir, 'warm'), workers: 0, log: quiet, fieldMeasures });
    const cpu0 = process.cpuUsage();
    await extractCrops({ fieldSet: fs, out: join(dir, 'cpu'), workers: 0, log: quiet, batchFields: 16, fieldMeasures });
    const cpu = process.cpuUsage(cpu0);
    const cpuPerField = (cpu.user + cpu.system) / 1e6 / n;
    const store = await openCropStore(join(dir, 'store'));
    let t = performance.now();
    for (let a = 0; a < store.count; a += 128) await store.read(a, Math.min(store.count, a + 128));
    const seq = store.count / ((performance.now() - t) / 1000);
    const store2 = await openCropStore(join(dir, 'store'));
    const r = rng(3);
    const total = 4096;
    t = performance.now();
    for (let done = 0; done < total; done += 128) {
      await store2.readIndices(Array.from({ length: 128 }, () => Math.floor(r() * store2.count)));
    }
    const rand = total / ((performance.now() - t) / 1000);
    const fps = n / ext;
    const loader = o.loader === false ? undefined : await benchAugmentLoader(o.loader ?? {}, o.trainImagesPerSecond);
    const synth = o.synth === false ? undefined : await benchSynth(join(dir, 'synth'), o.synth ?? {});
    if (memory) memory.processPeakRssMB = (process.resourceUsage().maxRSS * 1024) / MB;
    return {
      fields: n,
      crops: sum.crops,
      workers,
      extractionFieldsPerSecond: fps,
      extractionSeconds: ext,
      cpuSecondsPerField: cpuPerField,
      idleEstimateFieldsPerSecond: Math.min(workers || 1, cpus().length) / cpuPerField,
      readCropsPerSecondSequential: seq,
      readCropsPerSecondRandom: rand,
      cores: cpus().length,
      target: {
        fieldsPerSecond: DATA_TARGETS.extractionFieldsPerSecond,
        met: fps >= DATA_TARGETS.extractionFieldsPerSecond,
      },
      memory,
      loader,
      synth,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The human-readable report of {@link benchData}. */
export function formatDataBench(r: DataBenchResult): string {
  const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const lines = [
    `crop extraction: ${r.extractionFieldsPerSecond.toFixed(1)} fields/s (${r.fields} fields of 3×696×520, ${r.crops} crops, ${r.workers} workers, ${r.cores} cores) — target ≥ ${r.target.fieldsPerSecond}: ${met(r.target.met)}`,
    `  CPU ${(r.cpuSecondsPerField * 1000).toFixed(0)} ms per field → about ${r.idleEstimateFieldsPerSecond.toFixed(1)} fields/s on an idle machine with ${Math.min(r.workers || 1, r.cores)} cores (estimate)`,
  ];
  if (r.memory) {
    const m = r.memory;
    lines.push(
      `  peak RSS: ${m.peakRssMB[0].toFixed(0)} MB for ${m.fields[0]} fields, ${m.peakRssMB[1].toFixed(0)} MB for ${m.fields[1]} (${m.growthMB >= 0 ? '+' : ''}${m.growthMB.toFixed(0)} MB; holding the extra crops would add ${m.extraCropsMB.toFixed(0)} MB) — streaming (growth ≤ ${m.toleranceMB} MB): ${met(m.bounded)}; whole benchmark ${m.processPeakRssMB.toFixed(0)} MB`,
    );
  }
  lines.push(
    `store reads: ${Math.round(r.readCropsPerSecondSequential)} crops/s sequential, ${Math.round(r.readCropsPerSecondRandom)} crops/s random (128-crop batches)`,
  );
  if (r.loader) {
    const l = r.loader;
    const src =
      l.trainRateSource === 'given'
        ? `the given training rate of ${l.trainImagesPerSecond} img/s`
        : `a training step at the engine's target of ${l.trainImagesPerSecond} img/s (not measured here; pass --train-rate with the figure from qcbench bench engine)`;
    lines.push(
      `augmentation loader: ${Math.round(l.cropsPerSecond)} crops/s of ${l.options.channels}×${l.options.size}×${l.options.size} (${l.options.views} views each, batch ${l.options.batchSize}, ${l.options.workers ? `${l.options.workers} worker threads` : 'main thread'}; ${Math.round(l.cropsPerCpuSecond)} crops per CPU-second) — target ≥ ${l.target.cropsPerSecond}: ${met(l.target.met)}`,
      `  ${Math.round(l.viewsPerSecond)} views/s = ${l.ratioToTraining.toFixed(1)}× ${src} — target ≥ ${l.target.ratio}×: ${met(l.target.ratioMet)}`,
    );
  }
  if (r.synth) {
    const y = r.synth;
    const what = y.screens
      .map((s) => `${s.domain} ${s.fields}×${s.channels}×${s.width}×${s.height} in ${s.seconds.toFixed(1)} s`)
      .join(', ');
    lines.push(
      y.quickProtocol
        ? `synthetic generation (quick protocol's screens): ${y.seconds.toFixed(1)} s, ${y.fieldsPerSecond.toFixed(2)} fields/s, ${y.megapixelsPerSecond.toFixed(1)} channel-Mpx/s (${what}) — target < ${y.target.seconds} s: ${met(y.target.met)}`
        : `synthetic generation: ${y.seconds.toFixed(1)} s, ${y.fieldsPerSecond.toFixed(2)} fields/s, ${y.megapixelsPerSecond.toFixed(1)} channel-Mpx/s (${what}) → the quick protocol's screens in about ${y.quickSeconds.toFixed(1)} s (scaled by pixels) — target < ${y.target.seconds} s: ${met(y.target.met)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export const command: Command = {
  name: 'data',
  summary:
    'benchmark crop extraction (fields/s, peak RSS), store reads, augmentation (crops/s) and synthetic generation',
  usage: `qcbench bench data [--fields N] [--workers N] [--train-rate R] [--no-synth] [--no-field-measures] [--json]

Measures the data targets on this machine, in a temp folder:
  crop extraction   N (default 60) generated three-channel 696×520 16-bit fields → 128×128 crops in a Zarr store
                    (segmentation, normalisation, cropping in N worker threads, default 2). Target ≥ 20 fields/s.
                    Then the same fields twice over: peak RSS of both runs (streaming: it must not grow by more than
                    ${STREAMING_RSS_TOLERANCE_MB} MB; with far fewer than 60 fields the extra crops themselves are
                    too few for the check to tell). Store reads: crops/s, sequential and random. Whole-field
                    image-quality measures are computed as \`data crops\` does; --no-field-measures leaves them out.
  augmentation      128×128×3 crops, two augmented views each, through the prefetching batch loader (batch 128, on
                    the main thread as SSL pretraining runs it). Target ≥ 2,000 crops/s, and ≥ 10× the images/s a
                    training step consumes: --train-rate R (e.g. from qcbench bench engine), else the engine's
                    target of ${ENGINE_TRAIN_TARGET_IMAGES_PER_SECOND} img/s.
  synthetic data    the quick protocol's two screens (u2os 32 fields of 5×696×520, mcf7 16 of 3×1280×1024), as
                    'qcbench run protocols/quick.yaml' generates them. Target < 60 s. --no-synth skips it.
Numbers depend on machine load; run on an idle machine for reference figures.`,
  async run(args: string[], ctx: CliContext): Promise<number> {
    const { values } = parseArgs({
      args,
      options: {
        fields: { type: 'string' },
        workers: { type: 'string' },
        'train-rate': { type: 'string' },
        'no-synth': { type: 'boolean' },
        'no-field-measures': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(`${command.usage}\n`);
      return 0;
    }
    const trainRate = values['train-rate'];
    if (trainRate !== undefined && !(Number(trainRate) > 0))
      throw new QcbError('QCB_USAGE', '--train-rate must be a positive number of images/s', {
        key: '--train-rate',
        value: trainRate,
        fix: 'e.g. --train-rate 52 (the training images/s that qcbench bench engine prints)',
      });
    ctx.log.info('benchmarking crop extraction, augmentation and synthetic generation');
    const r = await benchData({
      fields: intArg(values.fields, '--fields', 1),
      workers: intArg(values.workers, '--workers', 0),
      trainImagesPerSecond: trainRate === undefined ? undefined : Number(trainRate),
      synth: values['no-synth'] ? false : undefined,
      fieldMeasures: !values['no-field-measures'],
    });
    process.stdout.write(values.json ? `${JSON.stringify(r, null, 2)}\n` : formatDataBench(r));
    return 0;
  },
};
