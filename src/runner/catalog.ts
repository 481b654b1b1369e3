/**
 * The catalogue: every name a protocol may use, assembled from the registries — encoders (src/encoders/registry.ts)
 * with one encoder per SSL method (src/ssl/registry.ts), downstream tasks (src/downstream/registry.ts) — and the
 * resolver that checks protocols against it. Nothing here is listed by hand: a method, an encoder or a task added to
 * its registry is accepted by `validate`, run by `run` and shown in the report.
 */
import { DOWNSTREAM_TASKS } from '../downstream/registry.js';
import { ENCODERS as BASE_ENCODERS, pretrainedEncoder, resolveEncoder as resolveIn } from '../encoders/registry.js';
import type { Encoder } from '../encoders/types.js';
import type { Catalog } from '../protocol/catalog.js';
import { type ResolveOptions, resolveProtocol } from '../protocol/resolve.js';
import type { Protocol } from '../protocol/schema.js';
import { SSL_METHODS, type SslMethodName } from '../ssl/registry.js';

const SSL_ENCODERS = Object.fromEntries(
  Object.values(SSL_METHODS).map((m) => [m.name, pretrainedEncoder(m.name, m.label, m.description)]),
) as Record<SslMethodName, Encoder>;

const byKind = (kind: Encoder['kind'], want: boolean) =>
  Object.entries(BASE_ENCODERS).filter(([, e]) => (e.kind === kind) === want);

/**
 * Every encoder by name: the transfer-learning encoders, then the SSL methods' encoders (paper §3.2 order), then the
 * rest of the encoder registry in its order.
 */
export const ENCODERS: Readonly<Record<string, Encoder>> = Object.fromEntries([
  ...byKind('tl', true),
  ...Object.entries(SSL_ENCODERS),
  ...byKind('tl', false),
]);

/** True when `name` is an SSL method, i.e. its encoder comes out of the pretraining stage. */
export function isSslMethod(name: string): name is SslMethodName {
  return Object.hasOwn(SSL_METHODS, name);
}

/** An encoder by name (any of ENCODERS) or an ONNX CNN by path; "did you mean" for a typo. */
export function resolveEncoder(nameOrPath: string): Encoder {
  return resolveIn(nameOrPath, ENCODERS);
}

/** The catalogue protocols are checked against. */
export const CATALOG: Catalog = {
  encoders: ENCODERS,
  tasks: Object.fromEntries(
    Object.values(DOWNSTREAM_TASKS).map((t) => [
      t.name,
      { label: t.label, description: t.description, settings: t.settings, lineSearch: t.lineSearch },
    ]),
  ),
  sslMethods: Object.fromEntries(Object.values(SSL_METHODS).map((m) => [m.name, m.defaults])),
};

/** `resolveProtocol` against CATALOG: what every command that reads a protocol calls. */
export function loadProtocol(file: string, opts: Omit<ResolveOptions, 'catalog'> = {}): Protocol {
  return resolveProtocol(file, { ...opts, catalog: CATALOG });
}
