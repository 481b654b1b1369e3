import type { Protocol } from '../protocol/schema.js';
import type { Logger } from '../util/log.js';
import type { ArtifactStore } from './cache.js';
import type { CellPlan } from './cells.js';
import type { CellMetrics, Prediction } from '../results/schema.js';

/** What every stage sees: the protocol, the heavy-artifact cache (`<workdir>/cache`), the results records, a logger. */
export interface StageContext {
  p: Protocol;
  cache: ArtifactStore;
  results: ArtifactStore;
  log: Logger;
  /** onnxruntime intra-op threads for this worker. */
  threads: number;
}

/** What computing a cell yields (the runner adds status, ids and timestamps). */
export interface CellOutcome {
  metrics: CellMetrics;
  predictions: Prediction[];
  pretrain?: string;
  montage?: string;
  timing: Record<string, number>;
}

/**
 * The stage graph behind a cell (data → crops → pretraining → features → downstream → metrics). Each stage caches its
 * output by content hash in `ctx.cache`, so cells sharing a stage (all cells of one encoder share its pretraining;
 * cells differing only in test set share the trained model) compute it once.
 */
export interface Stages {
  cell(ctx: StageContext, cell: CellPlan, onStage: (stage: string) => void): Promise<CellOutcome>;
}
