/**
 * Pretraining throughput per SSL method and the cost of each method's loss and non-differentiable machinery over
 * the encoder's own training step (issue 5: "the loss and its non-differentiable parts cost at most 10% on top of
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
import { sphericalKMeans } from './kmeans.js';
import { buildPretrainGraph, createSslTrainer, makeSslOptimizer } from './pretrain.js';
import { SSL_METHODS, resolveHyper } from './registry.js';
import type { SslMethodName } from './types.js';

export interface SslBenchRow {
  method: string;
  /** Images per second (each image = two views). */
  images_per_second: number;
  step_seconds: number;
  /** Baseline (backbone + projector + trivial loss) step time for the same method's projector. */
  baseline_step_seconds: number;
  /** Loss graph + machinery time relative to the baseline step, percent. */
  loss_overhead_percent: number;
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
  /** Timed steps after one warm-up, default 3. */
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
  step(s: number): Promise<number>;
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
  const trainer = await createSslTrainer(pg, makeSslOptimizer({ momentum: 0.9, weightDecay: 1e-4 }), [], o.threads);
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
      const info = { epoch: 1, step: s, positions: Array.from({ length: n }, (_, i) => i) };
      const r = await trainer.step({ [pg.input]: x, ...(mach?.feeds(info) ?? {}) }, 1e-4);
      if (mach?.afterStep) {
        const out: Record<string, Float32Array> = {};
        for (const k of pg.loss.outputs) out[k] = r.outputs[k].data as Float32Array;
        mach.afterStep(info, out);
      }
      return (performance.now() - t) / 1000;
    },
  };
}

/** Runs the benchmark (slow: one compile and a few steps per method and baseline). */
export async function benchSsl(
  opts: SslBenchOptions = {},
): Promise<{ batch: number; size: number; threads?: number; rows: SslBenchRow[] }> {
  const o = { batch: opts.batch ?? 32, size: opts.size ?? 64, steps: opts.steps ?? 3, threads: opts.threads };
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
    const tb: number[] = [];
    const tm: number[] = [];
    for (let s = 1; s <= o.steps; s++) {
      tb.push(await base.step(s));
      tm.push(await run.step(s));
    }
    const b = median(tb);
    const r = median(tm);
    const row: SslBenchRow = {
      method: name,
      images_per_second: o.batch / r,
      step_seconds: r,
      baseline_step_seconds: b,
      loss_overhead_percent: (100 * (r - b)) / b,
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
      const t0 = performance.now();
      sphericalKMeans(z, k, d, hp.num_prototypes, hp.kmeans_iters, 1);
      const km = (performance.now() - t0) / 1000;
      row.kmeans_overhead_percent = (100 * (km / (k / o.batch))) / b;
    }
    rows.push(row);
  }
  return { batch: o.batch, size: o.size, threads: o.threads, rows };
}
