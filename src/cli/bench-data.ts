import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { extractCrops, FieldPool } from '../data/crops.js';
import { readCsvDataset } from '../data/datasets/csv.js';
import { encodeTiff16 } from '../data/io/tiff.js';
import { openCropStore } from '../data/store/crop-store.js';
import { QcbError } from '../errors.js';
import { Logger } from '../util/log.js';
import type { CliContext, Command } from './types.js';

/**
 * `qcbench bench data`: crop-extraction throughput on three-channel 696×520 16-bit fields (the BBBC022 field size)
 * and crop read throughput from the resulting store. Target (issue 4): ≥ 20 fields/s on 2 cores.
 */

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
  target: { fieldsPerSecond: number; met: boolean };
}

/** Runs the data benchmark in a temp folder (removed afterwards). */
export async function benchData(o: { fields?: number; workers?: number; log?: Logger } = {}): Promise<DataBenchResult> {
  const n = o.fields ?? 60;
  const dir = mkdtempSync(join(tmpdir(), 'qcb-bench-data-'));
  try {
    writeBenchFields(join(dir, 'screen'), n);
    const fs = readCsvDataset({ root: join(dir, 'screen'), dnaChannel: 'dna' });
    const quiet = o.log ?? new Logger({ quiet: true });
    const workers = o.workers ?? 2;
    // Workers are started and warmed up (TypeScript compiled, JIT) on a few fields first: start-up is paid once
    // per run, not per field, and would dominate a short benchmark.
    const pool = workers > 0 ? new FieldPool(workers) : undefined;
    let sum: Awaited<ReturnType<typeof extractCrops>>;
    let ext: number;
    try {
      const warm = { ...fs, fields: fs.fields.slice(0, Math.min(2 * Math.max(1, workers), n)) };
      await extractCrops({ fieldSet: warm, out: join(dir, 'warm-pool'), workers, pool, log: quiet });
      const t0 = performance.now();
      sum = await extractCrops({ fieldSet: fs, out: join(dir, 'store'), workers, pool, log: quiet, batchFields: 16 });
      ext = (performance.now() - t0) / 1000;
    } finally {
      await pool?.close();
    }
    // CPU cost per field of the pipeline itself, in-process and warmed up (no worker start-up, which compiles the
    // TypeScript sources): unlike wall time it barely depends on what else runs on the machine.
    const few = { ...fs, fields: fs.fields.slice(0, Math.min(4, n)) };
    await extractCrops({ fieldSet: few, out: join(dir, 'warm'), workers: 0, log: quiet });
    const cpu0 = process.cpuUsage();
    await extractCrops({ fieldSet: fs, out: join(dir, 'cpu'), workers: 0, log: quiet, batchFields: 16 });
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
      target: { fieldsPerSecond: 20, met: fps >= 20 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const command: Command = {
  name: 'data',
  summary: 'benchmark crop extraction (fields/s) and crop-store reads (crops/s)',
  usage: `qcbench bench data [--fields N] [--workers N] [--json]

Generates N (default 60) three-channel 696×520 16-bit fields in a temp folder, extracts 128×128 crops into a
Zarr store (segmentation, normalisation, cropping in N worker threads, default 2) and reads the crops back.
Target: ≥ 20 fields/s on 2 cores. Numbers depend on machine load; run on an idle machine for reference figures.`,
  async run(args: string[], ctx: CliContext): Promise<number> {
    const { values } = parseArgs({
      args,
      options: {
        fields: { type: 'string' },
        workers: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(`${command.usage}\n`);
      return 0;
    }
    const num = (v: string | undefined, name: string, min: number) => {
      if (v === undefined) return undefined;
      const x = Number(v);
      if (!Number.isInteger(x) || x < min)
        throw new QcbError('QCB_USAGE', `--${name} must be an integer ≥ ${min}`, {
          key: `--${name}`,
          value: v,
          fix: `e.g. --${name} ${min + 1}`,
        });
      return x;
    };
    ctx.log.info('benchmarking crop extraction');
    const r = await benchData({ fields: num(values.fields, 'fields', 1), workers: num(values.workers, 'workers', 0) });
    if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else {
      process.stdout.write(
        [
          `crop extraction: ${r.extractionFieldsPerSecond.toFixed(1)} fields/s (${r.fields} fields of 3×696×520, ${r.crops} crops, ${r.workers} workers, ${r.cores} cores) — target ≥ ${r.target.fieldsPerSecond}: ${r.target.met ? 'met' : 'NOT met'}`,
          `  CPU ${(r.cpuSecondsPerField * 1000).toFixed(0)} ms per field → about ${r.idleEstimateFieldsPerSecond.toFixed(1)} fields/s on an idle machine with ${Math.min(r.workers || 1, r.cores)} cores (estimate)`,
          `store reads: ${Math.round(r.readCropsPerSecondSequential)} crops/s sequential, ${Math.round(r.readCropsPerSecondRandom)} crops/s random (128-crop batches)`,
        ].join('\n') + '\n',
      );
    }
    return 0;
  },
};
