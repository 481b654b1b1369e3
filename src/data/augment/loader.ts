/**
 * The SSL batch loader: shuffled epochs (seeded), fixed batch size, drop_last, one or two augmented views per crop
 * (paper §3.2: "we forward pass the batch of images after producing two different views of them"), and a prefetch
 * queue (depth 2 by default) so the next batches are read and augmented while the training step runs in
 * onnxruntime. Augmentation runs on the main thread (it is free while onnxruntime computes) or, with `workers > 0`,
 * on a pool of worker threads.
 *
 * Every view of every batch has its own seed (seed, epoch, batch, view), so the data a run sees does not depend on
 * timing, prefetch depth or the number of workers.
 */
import { QcbError } from '../../errors.js';
import { WorkerPool } from '../synth/pool.js';
import { deriveSeed, Rng } from '../../util/random.js';
import { type AugmentOptions, augmentBatch, DEFAULT_AUGMENT, NO_AUGMENT } from './transforms.js';
import type { AugmentJob } from './worker.js';

/** What the loader needs from a crop store: N crops of C×S×S uint8, read by index. */
export interface CropSource {
  count: number;
  channels: number;
  size: number;
  /** The crops at these indices, in this order: uint8 k×C×S×S. */
  readIndices(idx: number[]): Promise<Uint8Array>;
}

/** Crops held in memory (uint8 N×C×S×S): for tests, small annotated sets, and crops made on the fly. */
export class ArrayCropSource implements CropSource {
  readonly count: number;

  constructor(
    readonly data: Uint8Array,
    readonly channels: number,
    readonly size: number,
  ) {
    const per = channels * size * size;
    if (per === 0 || data.length % per !== 0) {
      throw new QcbError(
        'QCB_STORE',
        `${data.length} bytes are not a whole number of ${channels}×${size}×${size} crops`,
        {
          value: data.length,
          fix: 'pass crops as uint8 N×C×S×S',
        },
      );
    }
    this.count = data.length / per;
  }

  async readIndices(idx: number[]): Promise<Uint8Array> {
    const per = this.channels * this.size * this.size;
    const out = new Uint8Array(idx.length * per);
    for (let i = 0; i < idx.length; i++) {
      const j = idx[i];
      if (!Number.isInteger(j) || j < 0 || j >= this.count) {
        throw new QcbError('QCB_STORE', `crop index ${j} out of range [0, ${this.count})`, {
          value: j,
          fix: 'use indices from 0 to count − 1',
        });
      }
      out.set(this.data.subarray(j * per, (j + 1) * per), i * per);
    }
    return out;
  }
}

export interface BatchLoaderOptions {
  batchSize: number;
  /** Seed of the epoch orders and the augmentations (default 0). */
  seed?: number;
  /** Drop the last incomplete batch of each epoch (default true, as SSL losses want full batches). */
  dropLast?: boolean;
  /** Augmented views per crop: 2 for SSL (default), 1 for supervised training. */
  views?: number;
  /** Batches prepared ahead (default 2). */
  prefetch?: number;
  /** Augmentation options (partial: merged into DEFAULT_AUGMENT); false: normalisation only. */
  augment?: Partial<AugmentOptions> | false;
  /** Epochs to iterate (default 1; Infinity for an endless stream). */
  epochs?: number;
  /** Shuffle the crop order each epoch (default true). */
  shuffle?: boolean;
  /** Worker threads for augmentation (default 0: the main thread). */
  workers?: number;
  /** Use only these crop indices (default: all). */
  indices?: number[];
}

/** One batch: `views[v]` is float32 n×C×S×S, normalised. */
export interface Batch {
  epoch: number;
  /** Batch number within the epoch. */
  index: number;
  /** Batch number since the start. */
  step: number;
  /** Source crop indices, in batch order. */
  indices: number[];
  n: number;
  channels: number;
  size: number;
  views: Float32Array[];
}

/**
 * Prefetching batch loader over a {@link CropSource}. Use as an async iterator (`for await (const b of loader)`) or
 * call `next()` until it returns null; call `close()` when done (stops worker threads).
 */
export class BatchLoader implements AsyncIterable<Batch> {
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private readonly seed: number;
  private readonly views: number;
  private readonly prefetch: number;
  private readonly epochs: number;
  private readonly shuffle: boolean;
  private readonly options: AugmentOptions;
  private readonly base: number[];
  private readonly queue: Promise<Batch>[] = [];
  private nextEpoch = 0;
  private nextIndex = 0;
  private order: number[] = [];
  private orderEpoch = -1;
  private pool?: WorkerPool<AugmentJob, Float32Array[]>;
  /** View buffers handed back with release(), reused by later batches. */
  private readonly free: Float32Array[] = [];
  private closed = false;

  constructor(
    private readonly source: CropSource,
    opts: BatchLoaderOptions,
  ) {
    const bad = (key: string, value: unknown, allowed: string) => {
      throw new QcbError('QCB_USAGE', `batch loader option ${key} must be ${allowed}`, {
        key,
        value,
        allowed,
        fix: `set ${key} to ${allowed}`,
      });
    };
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) bad('batchSize', opts.batchSize, 'a positive integer');
    this.batchSize = opts.batchSize;
    this.seed = opts.seed ?? 0;
    this.views = opts.views ?? 2;
    if (!Number.isInteger(this.views) || this.views < 1) bad('views', this.views, 'a positive integer');
    this.prefetch = opts.prefetch ?? 2;
    if (!Number.isInteger(this.prefetch) || this.prefetch < 1) bad('prefetch', this.prefetch, 'a positive integer');
    this.epochs = opts.epochs ?? 1;
    if (!(this.epochs >= 0)) bad('epochs', this.epochs, 'a non-negative number');
    this.shuffle = opts.shuffle ?? true;
    this.options = opts.augment === false ? NO_AUGMENT : { ...DEFAULT_AUGMENT, ...(opts.augment ?? {}) };
    this.base = opts.indices ? [...opts.indices] : Array.from({ length: source.count }, (_, i) => i);
    const n = this.base.length;
    this.batchesPerEpoch = (opts.dropLast ?? true) ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
    if (this.batchesPerEpoch === 0 && this.epochs > 0) {
      throw new QcbError('QCB_STORE', `${n} crops make no full batch of ${this.batchSize}`, {
        key: 'batchSize',
        value: this.batchSize,
        allowed: `at most ${n}`,
        fix: 'lower the batch size, pass dropLast: false, or extract more crops',
      });
    }
    const workers = opts.workers ?? 0;
    if (!Number.isInteger(workers) || workers < 0) bad('workers', workers, 'a non-negative integer');
    if (workers > 0)
      this.pool = new WorkerPool(new URL('./worker.ts', import.meta.url), workers, (r) => r.views as Float32Array[]);
  }

  /** The next batch, or null after the last epoch. */
  async next(): Promise<Batch | null> {
    if (this.closed) return null;
    this.fill();
    const p = this.queue.shift();
    if (!p) return null;
    this.fill();
    return p;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    try {
      for (;;) {
        const b = await this.next();
        if (!b) return;
        yield b;
      }
    } finally {
      await this.close();
    }
  }

  /**
   * Hands a batch's view buffers back for reuse (optional): call it once the training step no longer needs the
   * views. Saves allocating and zeroing 2 × N×C×S×S floats per batch (about a third of the loader's time).
   */
  release(batch: Batch): void {
    const len = this.batchSize * this.source.channels * this.source.size * this.source.size;
    for (const v of batch.views) {
      if (v.length === len && this.free.length < (this.prefetch + 1) * this.views && !this.free.includes(v))
        this.free.push(v);
    }
  }

  /** Stops prefetching and terminates worker threads. */
  async close(): Promise<void> {
    this.closed = true;
    this.queue.length = 0;
    await this.pool?.close();
    this.pool = undefined;
  }

  /** The crop order of an epoch (a seeded permutation, or the given order when shuffle is off). */
  epochOrder(epoch: number): number[] {
    if (this.orderEpoch !== epoch) {
      this.order = [...this.base];
      if (this.shuffle) new Rng(deriveSeed(this.seed, 'epoch', epoch)).shuffle(this.order);
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  private fill(): void {
    while (this.queue.length < this.prefetch && this.nextEpoch < this.epochs) {
      const epoch = this.nextEpoch;
      const index = this.nextIndex;
      const order = this.epochOrder(epoch);
      const indices = order.slice(index * this.batchSize, (index + 1) * this.batchSize);
      const p = this.produce(epoch, index, indices);
      // A prefetched batch may fail before anyone awaits it: keep the rejection for next(), silence the warning.
      p.catch(() => {});
      this.queue.push(p);
      this.nextIndex++;
      if (this.nextIndex >= this.batchesPerEpoch) {
        this.nextIndex = 0;
        this.nextEpoch++;
      }
    }
  }

  private async produce(epoch: number, index: number, indices: number[]): Promise<Batch> {
    const { channels, size } = this.source;
    const crops = await this.source.readIndices(indices);
    const n = indices.length;
    const seeds = Array.from({ length: this.views }, (_, v) => deriveSeed(this.seed, 'augment', epoch, index, v));
    const views = this.pool
      ? await this.pool.run({ crops, n, channels, size, seeds, options: this.options })
      : seeds.map((s) => {
          const len = n * channels * size * size;
          const reuse =
            this.free.length && this.free[this.free.length - 1].length === len ? this.free.pop() : undefined;
          return augmentBatch(crops, n, channels, size, new Rng(s), this.options, reuse);
        });
    return { epoch, index, step: epoch * this.batchesPerEpoch + index, indices, n, channels, size, views };
  }
}
