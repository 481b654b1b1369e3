/** The SSL methods (Masud et al. 2022 §3.2), one file each; `getMethod` resolves a name with "did you mean". */
import { SSL_METHOD_DEFAULTS, type SslMethodName } from '../protocol/catalog.js';
import { lookup } from '../util/suggest.js';
import { QcbError } from '../errors.js';
import { barlowTwins } from './barlow-twins.js';
import { deepClusterV2 } from './deepcluster-v2.js';
import { simclr } from './simclr.js';
import { swav } from './swav.js';
import type { SslHyper, SslMethod } from './types.js';
import { vicreg } from './vicreg.js';

export const SSL_METHODS = {
  simclr,
  barlow_twins: barlowTwins,
  vicreg,
  deepclusterv2: deepClusterV2,
  swav,
} satisfies Record<SslMethodName, SslMethod>;

/** A method by name. @throws QCB_UNKNOWN_NAME with the closest names */
export function getMethod(name: string): SslMethod {
  return lookup(SSL_METHODS, name, 'SSL method', { key: 'method' });
}

/** The method's defaults with `overrides` applied (unknown keys refused with the allowed ones). */
export function resolveHyper(method: SslMethod, overrides: Record<string, number> = {}): SslHyper {
  const allowed = Object.keys(SSL_METHOD_DEFAULTS[method.name]);
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
