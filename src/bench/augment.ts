/**
 * Throughput of the augmentation loader (for `qcbench bench data`): augmented 128×128×3 crops per second through
 * a BatchLoader over in-memory crops, two views per crop. Reports wall-clock and CPU-time rates, since the machine
 * may be shared.
 */
import { Rng } from '../util/random.js';
import { ArrayCropSource, BatchLoader } from '../data/augment/loader.js';

export interface LoaderBenchOptions {
  /** Distinct crops in memory (default 512). */
  crops?: number;
  size?: number;
  channels?: number;
  batchSize?: number;
  /** Batches to time after one warm-up epoch (default 16). */
  batches?: number;
  workers?: number;
  views?: number;
}

export interface LoaderBenchResult {
  /** Crops per wall-clock second (each crop yields `views` augmented views). */
  cropsPerSecond: number;
  viewsPerSecond: number;
  /** Crops per CPU-second of this process (all threads). */
  cropsPerCpuSecond: number;
  seconds: number;
  options: Required<LoaderBenchOptions>;
}

/** Times the loader; crops are random bytes (augmentation cost does not depend on content). */
export async function benchLoader(opts: LoaderBenchOptions = {}): Promise<LoaderBenchResult> {
  const o: Required<LoaderBenchOptions> = {
    crops: opts.crops ?? 512,
    size: opts.size ?? 128,
    channels: opts.channels ?? 3,
    batchSize: opts.batchSize ?? 128,
    batches: opts.batches ?? 16,
    workers: opts.workers ?? 0,
    views: opts.views ?? 2,
  };
  const data = new Uint8Array(o.crops * o.channels * o.size * o.size);
  const rng = new Rng(1);
  for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() & 255;
  const source = new ArrayCropSource(data, o.channels, o.size);
  const loader = new BatchLoader(source, {
    batchSize: o.batchSize,
    seed: 1,
    epochs: Infinity,
    workers: o.workers,
    views: o.views,
  });
  try {
    const warm = Math.max(1, Math.floor(o.crops / o.batchSize));
    for (let i = 0; i < warm; i++) {
      const b = await loader.next();
      if (b) loader.release(b);
    }
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    let n = 0;
    for (let i = 0; i < o.batches; i++) {
      const b = await loader.next();
      if (!b) break;
      n += b.n;
      loader.release(b);
    }
    const seconds = (performance.now() - t0) / 1000;
    const cu = process.cpuUsage(c0);
    const cpu = (cu.user + cu.system) / 1e6;
    return {
      cropsPerSecond: n / seconds,
      viewsPerSecond: (n * o.views) / seconds,
      cropsPerCpuSecond: n / Math.max(cpu, 1e-6),
      seconds,
      options: o,
    };
  } finally {
    await loader.close();
  }
}
