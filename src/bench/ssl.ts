/**
 * Pretraining throughput per SSL method and the cost of each method's loss and non-differentiable machinery over
 * the encoder's own training step (requirement: "the loss and its non-differentiable parts cost at most 10% on top of
 * the encoder's own training step").
 *
 * For each method: the compiled step (backbone + projector + loss, SGD-momentum update) on 2N random views, timed
 * as median wall time per step together with the method's feeds/afterStep machinery, against a baseline step of
 * the same backbone + projector with a trivial loss (mean of z²), steps of the two interleaved. DeepClusterV2's k-means (once per epoch) is
 * timed on a memory bank of `kmeansImages` random unit embeddings and charged per step as
 * kmeans_seconds / (kmeansImages / N).
 */
import { randn } from '../engine/ir/builder.js';
import type { Tensor } from '../engine/ir/graph.js';
import { SSL_WEIGHT_DECAY } from '../protocol/defaults.js';
import { sphericalKMeans } from '../ssl/kmeans.js';
import { buildPretrainGraph, createSslTrainer, makeSslOptimizer } from '../ssl/pretrain.js';
import { SSL_METHODS, resolveHyper } from '../ssl/registry.js';
import type { SslMethodName } from '../ssl/registry.js';

export interface SslBenchRow {
  method: string;
  /** Images per second (each image = two views). */
  images_per_second: number;
  step_seconds: number;
  /** Baseline (backbone + projector + trivial loss) step time for the same method's projector. */
  baseline_step_seconds: number;
  /** Median process CPU seconds (all threads) of a step, and of the baseline step. */
  step_cpu_seconds: number;
  baseline_step_cpu_seconds: number;
  /**
   * Loss graph + machinery cost relative to the baseline step, percent, from CPU time (robust on a shared machine,
   * where other processes' load makes wall times swing by tens of percent between consecutive steps).
   */
  loss_overhead_percent: number;
  /** The same from wall time. */
  loss_overhead_wall_percent: number;
  /** k-means per step (DeepClusterV2), percent of the baseline step. */
  kmeans_overhead_percent?: number;
  compile_seconds: number;
}

export interface SslBenchOptions {
  methods?: SslMethodName[];
  /** Images per step (two views each), default 32. */
  batch?: number;
  /** Crop side, default 64. */
  size?: number;
  /** Timed steps after one warm-up, default 5. */
  steps?: number;
  threads?: number;
  /** Memory-bank size for the k-means timing (default 10,000). */
  kmeansImages?: number;
  onProgress?(msg: string): void;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface Runner {
  /** One step: wall seconds and process CPU seconds (all threads). */
  step(s: number): Promise<{ wall: number; cpu: number }>;
  compile: number;
}

/** A compiled step plus its machinery, ready to be timed one step at a time. */
async function makeRunner(
  method: SslMethodName,
  lossKind: 'method' | 'baseline',
  o: { batch: number; size: number; threads?: number },
): Promise<Runner> {
  const m = SSL_METHODS[method];
  const hp = resolveHyper(m);
  const n = o.batch;
  const t0 = performance.now();
  const pg = buildPretrainGraph(m, hp, { n, size: o.size, seed: 1, lossKind });
  const trainer = await createSslTrainer(
    pg,
    makeSslOptimizer({ momentum: 0.9, weightDecay: SSL_WEIGHT_DECAY }),
    [],
    o.threads,
  );
  const compile = (performance.now() - t0) / 1000;
  const fillSteps = Math.ceil(Math.max(hp.num_prototypes ?? 0, 4 * n) / n);
  const mach =
    lossKind === 'method'
      ? m.machinery?.({ hp, n, dim: hp.proj_output_dim, datasetSize: fillSteps * n, seed: 1 })
      : undefined;
  if (mach?.needsInitialMemory) {
    // fill the bank with random rows so the k-means before the epoch has data
    const d = hp.proj_output_dim;
    for (let s = 0; s < fillSteps; s++) {
      const z = randn([2 * n, d], 1, 3 + s).data as Float32Array;
      mach.afterStep?.(
        { epoch: -1, step: s, positions: Array.from({ length: n }, (_, i) => s * n + i) },
        { dc_embeddings: z },
      );
    }
    mach.beforeEpoch?.(0);
  }
  const x: Tensor = randn([2 * n, 3, o.size, o.size], 1, 7);
  return {
    compile,
    async step(s) {
      const t = performance.now();
      const c = process.cpuUsage();
      const info = { epoch: 1, step: s, positions: Array.from({ length: n }, (_, i) => i) };
      const r = await trainer.step({ [pg.input]: x, ...(mach?.feeds(info) ?? {}) }, 1e-4);
      if (mach?.afterStep) {
        const out: Record<string, Float32Array> = {};
        for (const k of pg.loss.outputs) out[k] = r.outputs[k].data as Float32Array;
        mach.afterStep(info, out);
      }
      const cu = process.cpuUsage(c);
      return { wall: (performance.now() - t) / 1000, cpu: (cu.user + cu.system) / 1e6 };
    },
  };
}

/** Runs the benchmark (slow: one compile and a few steps per method and baseline). */
export async function benchSsl(
  opts: SslBenchOptions = {},
): Promise<{ batch: number; size: number; threads?: number; rows: SslBenchRow[] }> {
  const o = { batch: opts.batch ?? 32, size: opts.size ?? 64, steps: opts.steps ?? 5, threads: opts.threads };
  const methods = opts.methods ?? (Object.keys(SSL_METHODS) as SslMethodName[]);
  const baselines = new Map<string, Runner>();
  const rows: SslBenchRow[] = [];
  for (const name of methods) {
    const m = SSL_METHODS[name];
    // the baseline depends only on the projector layout and width
    const key = `${JSON.stringify(m.projector)}:${m.defaults.proj_hidden_dim}:${m.defaults.proj_output_dim}`;
    if (!baselines.has(key)) {
      opts.onProgress?.(`compiling the baseline step for the ${name} projector…`);
      baselines.set(key, await makeRunner(name, 'baseline', o));
    }
    opts.onProgress?.(`${name}…`);
    const run = await makeRunner(name, 'method', o);
    const base = baselines.get(key)!;
    // interleaved, after one warm-up each, so that a shared machine's load drift hits both alike
    await base.step(0);
    await run.step(0);
    const tb: { wall: number; cpu: number }[] = [];
    const tm: { wall: number; cpu: number }[] = [];
    for (let s = 1; s <= o.steps; s++) {
      tb.push(await base.step(s));
      tm.push(await run.step(s));
    }
    const b = median(tb.map((t) => t.wall));
    const r = median(tm.map((t) => t.wall));
    const bc = median(tb.map((t) => t.cpu));
    const rc = median(tm.map((t) => t.cpu));
    const row: SslBenchRow = {
      method: name,
      images_per_second: o.batch / r,
      step_seconds: r,
      baseline_step_seconds: b,
      step_cpu_seconds: rc,
      baseline_step_cpu_seconds: bc,
      loss_overhead_percent: (100 * (rc - bc)) / bc,
      loss_overhead_wall_percent: (100 * (r - b)) / b,
      compile_seconds: run.compile,
    };
    if (name === 'deepclusterv2') {
      const hp = resolveHyper(m);
      const k = opts.kmeansImages ?? 10_000;
      const d = hp.proj_output_dim;
      const z = randn([k, d], 1, 5).data as Float32Array;
      for (let i = 0; i < k; i++) {
        let s = 0;
        for (let t = 0; t < d; t++) s += z[i * d + t] ** 2;
        for (let t = 0; t < d; t++) z[i * d + t] /= Math.sqrt(s);
      }
      const c0 = process.cpuUsage();
      sphericalKMeans(z, k, d, hp.num_prototypes, hp.kmeans_iters, 1);
      const cu = process.cpuUsage(c0);
      const km = (cu.user + cu.system) / 1e6;
      row.kmeans_overhead_percent = (100 * (km / (k / o.batch))) / bc;
    }
    rows.push(row);
  }
  return { batch: o.batch, size: o.size, threads: o.threads, rows };
}
