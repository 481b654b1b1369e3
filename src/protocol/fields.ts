/**
 * Building blocks of protocol specs, shared by the schema and by the registries' own settings (a downstream task
 * declares its `tasks.<name>` keys with these, so its defaults live in its file).
 */
import { OPTIMIZERS } from './catalog.js';
import type { Spec } from './spec.js';

/** An integer ≥ 1, with its default when given. */
export const posInt = (def?: number): Spec => ({ kind: 'int', min: 1, ...(def !== undefined ? { default: def } : {}) });

/** A number ≥ 0, with its default when given. */
export const nonNeg = (def?: number): Spec => ({
  kind: 'number',
  min: 0,
  ...(def !== undefined ? { default: def } : {}),
});

/** The schedule and optimiser of a trained head (paper §3.3: epochs, batch, SGD with momentum, `MultiStepLR`). */
export interface OptimDefaults {
  epochs: number;
  batch_size: number;
  optimizer: string;
  lr: number;
  momentum: number;
  weight_decay: number;
  milestones: readonly number[];
  gamma: number;
}

/**
 * The protocol keys of a trained head's schedule, defaulting to `d`. `optimizer` names the engine's registry
 * (sgd, lars, adamw); `momentum` is SGD's and LARS's and is not used by AdamW, which has no momentum term.
 */
export const optimizerFields = (d: OptimDefaults): Record<string, Spec> => ({
  epochs: posInt(d.epochs),
  batch_size: posInt(d.batch_size),
  optimizer: { kind: 'enum', values: OPTIMIZERS, what: 'optimizer', default: d.optimizer },
  lr: { kind: 'number', gt: 0, default: d.lr },
  momentum: { kind: 'number', min: 0, max: 1, default: d.momentum },
  weight_decay: nonNeg(d.weight_decay),
  milestones: { kind: 'list', of: { kind: 'int', min: 1 }, default: [...d.milestones] },
  gamma: { kind: 'number', gt: 0, max: 1, default: d.gamma },
});
