/**
 * The SSL methods (Masud et al. 2022 §3.2), one file each.
 *
 * Adding a method: write `src/ssl/<method>.ts` exporting an `SslMethod` (name, label, description, paper, family,
 * `defaults` with their `sources`, projector, a pure `buildLoss`, optional machinery) and add one line to
 * `SSL_METHODS` below. The protocol schema (`pretrain.methods.<name>`), the encoder list (`encoders: [<name>]`), the
 * pretraining stage and the report's rows all derive from this map (src/runner/catalog.ts).
 */
import { QcbError } from '../errors.js';
import { lookup } from '../util/suggest.js';
import { barlowTwins } from './barlow-twins.js';
import { deepClusterV2 } from './deepcluster-v2.js';
import { simclr } from './simclr.js';
import { swav } from './swav.js';
import type { SslHyper, SslMethod } from './types.js';
import { vicreg } from './vicreg.js';

/** Every SSL method by name, in the order of the paper's tables. */
export const SSL_METHODS = {
  simclr,
  barlow_twins: barlowTwins,
  vicreg,
  deepclusterv2: deepClusterV2,
  swav,
} satisfies Record<string, SslMethod>;

export type SslMethodName = keyof typeof SSL_METHODS;

/** A method by name. @throws QCB_UNKNOWN_NAME with the closest names */
export function getMethod(name: string): SslMethod {
  return lookup(SSL_METHODS, name, 'SSL method', { key: 'method' });
}

/** The method's defaults with `overrides` applied (unknown keys refused with the allowed ones). */
export function resolveHyper(method: SslMethod, overrides: Record<string, number> = {}): SslHyper {
  const allowed = Object.keys(method.defaults);
  for (const k of Object.keys(overrides)) {
    if (!allowed.includes(k)) {
      throw new QcbError('QCB_USAGE', `unknown hyperparameter '${k}' for SSL method '${method.name}'`, {
        key: `pretrain.methods.${method.name}.${k}`,
        value: k,
        allowed: allowed.join(', '),
        fix: `use one of: ${allowed.join(', ')}`,
      });
    }
  }
  return { ...method.defaults, ...overrides };
}
