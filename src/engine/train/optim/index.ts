/** Optimizer registry: name → factory from a plain options object (protocol files name optimizers). */
import { lookup } from '../../../util/suggest.js';
import { AdamW, type AdamWOptions } from './adamw.js';
import { Lars, type LarsOptions } from './lars.js';
import { Sgd, type SgdOptions } from './sgd.js';
import type { Optimizer } from './types.js';

export type { Optimizer, OptParam, StateSpec } from './types.js';
export type { AdamWOptions, LarsOptions, SgdOptions };
export { AdamW, Lars, Sgd };

export const OPTIMIZERS = {
  sgd: (o: Record<string, unknown> = {}) => new Sgd(o as SgdOptions),
  lars: (o: Record<string, unknown> = {}) => new Lars(o as LarsOptions),
  adamw: (o: Record<string, unknown> = {}) => new AdamW(o as AdamWOptions),
} satisfies Record<string, (o?: Record<string, unknown>) => Optimizer>;

/** An optimizer by registry name (QCB_UNKNOWN_NAME with "did you mean" for a typo). */
export function makeOptimizer(name: string, opts: Record<string, unknown> = {}): Optimizer {
  return lookup(OPTIMIZERS, name, 'optimizer')(opts);
}
