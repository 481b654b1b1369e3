/**
 * The catalogue: every name a protocol may use, assembled from the registries — encoders (src/encoders/registry.ts)
 * with one encoder per SSL method (src/ssl/registry.ts), downstream tasks (src/downstream/registry.ts) — and the
 * resolver that checks protocols against it. Nothing here is listed by hand: a method, an encoder or a task added to
 * its registry is accepted by `validate`, run by `run` and shown in the report.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { DOWNSTREAM_TASKS } from '../downstream/registry.js';
import {
  ENCODERS as BASE_ENCODERS,
  onnxFileEncoder,
  pretrainedEncoder,
  resolveEncoder as resolveIn,
} from '../encoders/registry.js';
import { checkOnnxEncoder } from '../encoders/onnx-file.js';
import type { Encoder } from '../encoders/types.js';
import { EXIT, QcbError } from '../errors.js';
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

/**
 * An encoder of a protocol by name: one of its file encoders (`encoders: [{ name, onnx, kind, label }]`, with the
 * protocol's kind and label), else a catalogue encoder.
 */
export function encoderFor(p: Protocol, name: string): Encoder {
  const f = p.encoder_files?.[name];
  return f ? onnxFileEncoder(f.onnx, { name, label: f.label, kind: f.kind }) : resolveEncoder(name);
}

/** Label and kind of a protocol's encoder without reading any file (a file encoder's come from the protocol). */
export function encoderInfo(p: Protocol, name: string): { label: string; kind: Encoder['kind'] } | undefined {
  return p.encoder_files?.[name] ?? ENCODERS[name];
}

/**
 * Loads every file encoder of a protocol and runs it once on blank crops of the protocol's crop size
 * (`checkOnnxEncoder`): what `validate` does so that a missing file, a file that is not ONNX or a graph without N×D
 * features is bad input found before the run. Errors name the ONNX file, the protocol and the `encoders` entry.
 * @returns the feature width of each file encoder
 */
export async function checkFileEncoders(p: Protocol): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, f] of Object.entries(p.encoder_files ?? {})) {
    const key = `encoders (${name}).onnx in ${p.source.file}`;
    if (!existsSync(f.onnx))
      throw new QcbError('QCB_FILE_NOT_FOUND', `encoder '${name}': file not found: ${f.onnx}`, {
        file: f.onnx,
        key,
        fix: `check the onnx path of '${name}' (relative to the protocol file, ${dirname(p.source.file)}), or put the file there`,
      });
    try {
      out[name] = await checkOnnxEncoder(f.onnx, p.data.crop_size, key);
    } catch (e) {
      if (!(e instanceof QcbError) || e.exitCode !== EXIT.badInput) throw e;
      throw new QcbError(e.code, `encoder '${name}' (${f.onnx}): ${e.message}`, {
        ...e.context,
        file: f.onnx,
        key,
        fix: e.context.fix ?? 'check the onnx path (relative to the protocol file) and the file',
      });
    }
  }
  return out;
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
