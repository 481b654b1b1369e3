/**
 * The SSL method interface. A method is (1) a projector layout, (2) a loss written as a pure graph function of the
 * two views' projected embeddings (N×D each) and per-step inputs the pretraining loop feeds (centroids and
 * assignments, a queue), and (3) optional non-differentiable machinery beside the graph (memory bank + k-means for
 * DeepClusterV2, the queue for SwAV) that the loop calls between steps. Methods see embeddings and the graph
 * builder only — never images, stores or the optimizer (docs/architecture.md: "SSL methods see only embeddings").
 */
import type { GraphBuilder } from '../engine/ir/builder.js';
import type { DType, Tensor } from '../engine/ir/graph.js';

/** Method family in Masud et al. 2022 §2 (contrastive, non-contrastive/redundancy reduction, clustering). */
export type SslFamily = 'contrastive' | 'non-contrastive' | 'clustering';

/** Resolved hyperparameters of a method (its `defaults`, overridden by the protocol's `pretrain.methods.<name>`). */
export type SslHyper = Record<string, number>;

/** One projector layer, as solo-learn writes its `nn.Sequential`. */
export type ProjectorLayer = { kind: 'linear'; out: 'hidden' | 'output' } | { kind: 'bn' } | { kind: 'relu' };

/** What `buildLoss` receives. */
export interface SslLossContext {
  b: GraphBuilder;
  /** Projector output of view 1 (N×D). */
  z1: string;
  /** Projector output of view 2 (N×D), row i the same image as row i of z1. */
  z2: string;
  /** Images per view N (static: the loss may build N-sized constants). */
  n: number;
  /** Embedding width D (`proj_output_dim`). */
  dim: number;
  hp: SslHyper;
  seed: number;
}

/** A per-step data input of the loss graph. */
export interface SslFeedSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

/** What `buildLoss` returns. */
export interface SslLoss {
  /** Scalar loss value. */
  loss: string;
  /** Inputs the machinery feeds each step (assignments, centroids, queue). */
  feeds: SslFeedSpec[];
  /** Trainable parameters the loss owns (SwAV's prototypes). */
  params: string[];
  /** Values the machinery reads back after every step (e.g. the L2-normalised embeddings of both views, 2N×D). */
  outputs: string[];
  /** Parameters excluded from the update during the first `epochs` epochs (SwAV's prototypes, epoch 0). */
  frozenFirstEpochs?: { params: string[]; epochs: number };
}

/** One step as the machinery sees it. */
export interface SslStepInfo {
  epoch: number;
  /** Index of the step inside the epoch. */
  step: number;
  /** Dataset positions (0…M−1 within the pretraining set) of the batch's images, N of them. */
  positions: readonly number[];
}

/**
 * The non-differentiable part of a method, kept in TypeScript beside the graph. All hooks are optional.
 */
export interface SslMachinery {
  /**
   * True when the method needs the embeddings of every image before its first epoch (DeepClusterV2's `init_memory`):
   * the loop then runs a forward pass over the set and hands the embeddings to `afterStep`.
   */
  needsInitialMemory?: boolean;
  /** Called before each epoch (k-means on the memory bank). */
  beforeEpoch?(epoch: number): void;
  /** Per-step feeds, by the names `buildLoss` declared. */
  feeds(step: SslStepInfo): Record<string, Tensor>;
  /** After every step with the values `buildLoss` listed in `outputs` (row-major Float32Arrays). */
  afterStep?(step: SslStepInfo, outputs: Record<string, Float32Array>): void;
  /** Serialisable state for checkpoints (typed arrays allowed) and its restore. */
  state?(): Record<string, Tensor>;
  restore?(s: Record<string, Tensor>): void;
  /** Figures for the pretraining record (seconds spent in k-means, …). */
  stats?(): Record<string, number>;
}

/** Options the machinery factory gets. */
export interface SslMachineryOptions {
  hp: SslHyper;
  /** Images per view per step. */
  n: number;
  /** Embedding width D. */
  dim: number;
  /** Number of images in the pretraining set (memory-bank size). */
  datasetSize: number;
  seed: number;
}

/** A self-supervised method (Masud et al. 2022 §3.2: trained with solo-learn's implementations). */
export interface SslMethod {
  /** Registry key (src/ssl/registry.ts), also the encoder's name in protocols and results. */
  name: string;
  /** Name in the paper's tables. */
  label: string;
  /** One line for `qcbench validate` and the report: what the encoder is. */
  description: string;
  /** The method's paper. */
  paper: string;
  family: SslFamily;
  /**
   * Hyperparameter defaults, each with its source in `sources`; exactly these keys may be set under
   * `pretrain.methods.<name>` in a protocol (the schema is derived from them).
   */
  defaults: SslHyper;
  /** Where each default (and each implementation choice) comes from. */
  sources: Record<string, string>;
  /** Projector layers (solo-learn's `self.projector` of the method). */
  projector: ProjectorLayer[];
  /** Builds the loss on the two views' projector outputs. */
  buildLoss(ctx: SslLossContext): SslLoss;
  /** Non-differentiable machinery, when the method has any. */
  machinery?(opts: SslMachineryOptions): SslMachinery;
}
