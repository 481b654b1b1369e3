/**
 * Worker thread of the augmentation pool: receives a batch of uint8 crops and the seeds of its views, returns the
 * augmented float32 views (transferred, not copied). Same code and same seeds as the main-thread path, so results
 * do not depend on whether workers are used.
 */
import { parentPort } from 'node:worker_threads';
import { Rng } from '../../util/random.js';
import { type AugmentOptions, augmentBatch } from './transforms.js';

/** A job sent to a worker. */
export interface AugmentJob {
  id: number;
  crops: Uint8Array;
  n: number;
  channels: number;
  size: number;
  seeds: number[];
  options: AugmentOptions;
}

/** A worker's answer: one buffer per view, or the error message. */
export interface AugmentReply {
  id: number;
  views?: Float32Array[];
  error?: string;
}

parentPort?.on('message', (job: AugmentJob) => {
  try {
    const views = job.seeds.map((s) => augmentBatch(job.crops, job.n, job.channels, job.size, new Rng(s), job.options));
    parentPort?.postMessage(
      { id: job.id, views } satisfies AugmentReply,
      views.map((v) => v.buffer as ArrayBuffer),
    );
  } catch (e) {
    parentPort?.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e) } satisfies AugmentReply);
  }
});
