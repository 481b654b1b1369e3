/**
 * The names a protocol may use. Encoders, downstream tasks and SSL methods live in their registries, which sit above
 * this layer (src/encoders, src/downstream, src/ssl); src/runner/catalog.ts assembles them into a `Catalog` and
 * passes it to `resolveProtocol`, so the schema always accepts exactly what can run and nothing is listed twice.
 * Validation stays light: building the catalogue loads the registries but runs nothing.
 */
import { OPTIMIZERS as OPTIMIZER_FACTORIES } from '../engine/train/optim/index.js';
import type { EncoderKind } from '../results/schema.js';
import type { Spec } from './spec.js';

/** What the protocol and its report need to know of an encoder before any weights are loaded. */
export interface CatalogEncoder {
  /** Label in the paper's tables, or ours for rows the paper lacks. */
  label: string;
  kind: EncoderKind;
  /** Feature dimension of the pooled output. */
  dim: number;
  /** Weights needed from the weights directory (transfer learning only). */
  weights?: string;
  description: string;
  /** The encoder's `encoder_settings.<name>` keys (no defaults: unset keys take the encoder's own). */
  settings?: Record<string, Spec>;
}

/** The registries' names, as a protocol sees them. */
export interface Catalog {
  /** Every encoder `encoders:` may list, in the order `qcbench validate` lists them. */
  encoders: Readonly<Record<string, CatalogEncoder>>;
  /** Downstream tasks (paper §3.3) by name, with their `tasks.<name>` keys and whether the line search applies. */
  tasks: Readonly<
    Record<string, { label: string; description: string; settings: Record<string, Spec>; lineSearch: boolean }>
  >;
  /** SSL methods by name with their hyperparameter defaults (`pretrain.methods.<name>`); each is also an encoder. */
  sslMethods: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/**
 * Dataset formats a protocol's `data.datasets.*.format` may name: field layouts that are cut into crops, and `store`,
 * an existing crop store (made by `qcbench data crops`) used as it is.
 */
export const DATASET_FORMATS = ['bbbc022', 'bbbc021', 'csv', 'synthetic', 'store'] as const;

/** `data.datasets.*.crops.normalise`: one intensity window per plate (default) or per field (src/data/crops.ts). */
export const CROP_NORMALISE = ['plate', 'field'] as const;

/** `data.datasets.*.crops.border`: what to do with a crop that leaves its field (src/data/crops.ts). */
export const CROP_BORDERS = ['skip', 'pad', 'reflect'] as const;

/** Optimizers the engine provides (src/engine/train/optim). */
export const OPTIMIZERS = Object.keys(OPTIMIZER_FACTORIES) as (keyof typeof OPTIMIZER_FACTORIES)[];

/** SSL augmentations (paper §3.2). */
export const AUGMENTATIONS = ['rot90', 'flip', 'transpose', 'shift', 'scale'] as const;
