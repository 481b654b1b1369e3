/**
 * The one protocol resolver: reads a YAML protocol, applies `extends:` (maps merge key by key, lists and scalars
 * replace), expands `${VAR}` / `${VAR:-default}` in paths, fills defaults from named constants, checks every key and
 * cross-reference, and returns a typed `Protocol`. Errors name the file, the line, the key path, the bad value, what
 * is allowed and the fix. Nothing runs: `qcbench validate` is this function.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, LineCounter, parseDocument, type Document } from 'yaml';
import { QcbError } from '../errors.js';
import { contentHash } from '../util/fs.js';
import { ENCODER_KINDS, type EncoderKind } from '../results/schema.js';
import type { Catalog, CatalogEncoder } from './catalog.js';
import { CROPS } from './defaults.js';
import { type FileEncoderConfig, PROTOCOL_VERSION, type Protocol, protocolSpec } from './schema.js';
import { check, formatPath, type Issue } from './spec.js';

/** One YAML file of an `extends` chain. */
interface Layer {
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
  raw: Record<string, unknown>;
}

/** Every problem of a protocol, each located in its file; thrown by `resolveProtocol`, printed whole by `validate`. */
export class ProtocolError extends QcbError {
  readonly issues: (Issue & { file: string; line?: number })[];
  constructor(issues: (Issue & { file: string; line?: number })[]) {
    const first = issues[0];
    super(
      first.code,
      issues.length === 1 ? first.message : `${first.message} (and ${issues.length - 1} more problem(s))`,
      {
        file: first.line ? `${first.file}:${first.line}` : first.file,
        key: formatPath(first.path),
        value: first.value,
        allowed: first.allowed,
        fix: first.fix,
      },
    );
    this.issues = issues;
  }

  /** All problems, one block each. */
  override format(): string {
    return this.issues
      .map((i) =>
        [
          `error ${i.code}: ${i.message}`,
          `  file:    ${i.line ? `${i.file}:${i.line}` : i.file}`,
          `  key:     ${formatPath(i.path)}`,
          ...(i.value !== undefined ? [`  value:   ${JSON.stringify(i.value)}`] : []),
          ...(i.allowed !== undefined ? [`  allowed: ${i.allowed}`] : []),
          `  fix:     ${i.fix}`,
        ].join('\n'),
      )
      .join('\n');
  }
}

function readLayer(file: string): Layer {
  if (!existsSync(file) || !statSync(file).isFile())
    throw new QcbError('QCB_PROTOCOL_NOT_FOUND', `protocol file not found: ${file}`, {
      file,
      fix: 'check the path; the protocols that ship with qcbench are in protocols/ (full, label-budget, domain-shift, quick, second-order)',
    });
  const text = readFileSync(file, 'utf8');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const pos = lines.linePos(e.pos[0]);
    throw new QcbError('QCB_PROTOCOL_YAML', `not valid YAML: ${e.message.split('\n')[0]}`, {
      file: `${file}:${pos.line}:${pos.col}`,
      fix: 'fix the YAML syntax at that line (indentation with spaces, `key: value`, lists as `- item` or [a, b])',
    });
  }
  const raw = doc.toJS();
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || !isMap(doc.contents))
    throw new QcbError('QCB_PROTOCOL_YAML', 'a protocol must be a YAML mapping (key: value lines)', {
      file,
      fix: 'start the file with `version: 1` and `name: …`; see protocols/quick.yaml',
    });
  return { file, doc, lines, raw };
}

function lineOf(layer: Layer, path: (string | number)[]): number | undefined {
  for (let n = path.length; n > 0; n--) {
    const node = layer.doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return layer.lines.linePos(node.range[0]).line;
  }
  return undefined;
}

function has(obj: unknown, path: (string | number)[]): boolean {
  let cur = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object' || !(p in (cur as object))) return false;
    cur = (cur as Record<string | number, unknown>)[p];
  }
  return true;
}

/** Maps merge key by key (child wins), everything else is replaced by the child. */
export function deepMerge(base: unknown, child: unknown): unknown {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(base) || !isObj(child)) return child === undefined ? base : child;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(child)) out[k] = deepMerge(base[k], v);
  return out;
}

/** Reads `file` and the chain of files it extends, child first. */
function loadChain(file: string): Layer[] {
  const chain: Layer[] = [];
  let cur: string | undefined = resolve(file);
  while (cur) {
    if (chain.some((l) => l.file === cur))
      throw new QcbError(
        'QCB_PROTOCOL_EXTENDS',
        `'extends' makes a cycle: ${[...chain.map((l) => l.file), cur].join(' → ')}`,
        {
          file: chain[chain.length - 1].file,
          key: 'extends',
          fix: 'remove the cycle: a protocol extends a base that does not extend it back',
        },
      );
    const layer: Layer = readLayer(cur);
    chain.push(layer);
    const ext = layer.raw.extends;
    if (ext === undefined) break;
    if (typeof ext !== 'string')
      throw new QcbError('QCB_PROTOCOL_TYPE', "'extends' must be a file path", {
        file: `${layer.file}:${lineOf(layer, ['extends']) ?? ''}`,
        key: 'extends',
        value: ext,
        fix: 'write extends: full.yaml (relative to this file)',
      });
    const next = resolve(dirname(layer.file), ext);
    if (!existsSync(next))
      throw new QcbError('QCB_PROTOCOL_EXTENDS', `'extends' names a missing file: ${ext}`, {
        file: `${layer.file}:${lineOf(layer, ['extends']) ?? ''}`,
        key: 'extends',
        value: ext,
        fix: `the path is relative to ${dirname(layer.file)}; check the file name`,
      });
    cur = next;
  }
  return chain;
}

const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Expands `${VAR}` and `${VAR:-default}`; an unset variable without default is an error naming it. */
export function expandEnv(s: string, env: NodeJS.ProcessEnv, onMissing: (name: string) => void): string {
  return s.replace(ENV_RE, (_m, name: string, def: string | undefined) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (def !== undefined) return def;
    onMissing(name);
    return '';
  });
}

export interface ResolveOptions {
  /** The names the protocol may use (src/runner/catalog.ts `CATALOG`). */
  catalog: Catalog;
  /** Environment for `${VAR}` expansion (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Directory that `workdir` and `results` are relative to (default process.cwd()). */
  cwd?: string;
  /** Overrides the protocol's `workdir` (the `--workdir` option). */
  workdir?: string;
}

/**
 * Resolves a protocol file: `extends`, defaults, paths, checks. Throws `ProtocolError` listing every problem, or a
 * QcbError for a missing/unparseable file.
 */
export function resolveProtocol(file: string, opts: ResolveOptions): Protocol {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const chain = loadChain(file);
  const merged = chain.reduceRight<unknown>((acc, l) => deepMerge(acc, l.raw), {}) as Record<string, unknown>;
  delete merged.extends;
  const issues: (Issue & { file: string; line?: number })[] = [];
  const locate = (i: Issue) => {
    const layer =
      chain.find((l) => has(l.raw, i.path)) ?? chain.find((l) => has(l.raw, i.path.slice(0, -1))) ?? chain[0];
    issues.push({ ...i, file: layer.file, line: lineOf(layer, i.path) });
  };

  if (merged.version === undefined) {
    throw new QcbError('QCB_PROTOCOL_VERSION', 'the protocol has no version', {
      file: chain[0].file,
      key: 'version',
      fix: `add \`version: ${PROTOCOL_VERSION}\` at the top`,
    });
  }
  if (typeof merged.version === 'number' && merged.version > PROTOCOL_VERSION) {
    throw new QcbError(
      'QCB_PROTOCOL_VERSION',
      `protocol version ${merged.version} is newer than this qcbench supports`,
      {
        file: chain[0].file,
        key: 'version',
        value: merged.version,
        allowed: `1..${PROTOCOL_VERSION}`,
        fix: 'upgrade qcbench, or write the protocol for version 1',
      },
    );
  }

  // Relative paths are relative to the file that wrote them (a base protocol's paths stay right when extended).
  const expand = (s: string, path: (string | number)[]) => {
    const layer = chain.find((l) => has(l.raw, path)) ?? chain[0];
    const v = expandEnv(s, env, (name) =>
      locate({
        code: 'QCB_PROTOCOL_VALUE',
        path,
        message: `${formatPath(path)} uses the environment variable ${name}, which is not set`,
        value: s,
        fix: `set ${name} (e.g. export ${name}=/data/…) or write \${${name}:-default}`,
      }),
    );
    return isAbsolute(v) ? v : resolve(dirname(layer.file), v);
  };
  const catalog = withFileEncoders(opts.catalog, merged.encoders);
  const PROTOCOL_SPEC = protocolSpec(catalog);
  const spec = check(merged, PROTOCOL_SPEC, [], [], expand) as Record<string, unknown>;
  // Re-run to collect issues with location (check is pure apart from `expand`'s env issues, which dedupe below).
  const found: Issue[] = [];
  check(merged, PROTOCOL_SPEC, [], found, () => '');
  for (const i of found) locate(i);

  const p = spec as unknown as Protocol;
  fileEncoders(p, opts.catalog, locate);
  crossChecks(p, locate, merged);

  const seen = new Set<string>();
  const unique = issues.filter((i) => {
    const k = `${i.code}|${formatPath(i.path)}|${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  if (unique.length) throw new ProtocolError(unique);

  p.workdir = resolve(cwd, opts.workdir ?? expandEnv(p.workdir, env, () => {}));
  p.results = p.results
    ? resolve(
        cwd,
        expandEnv(p.results, env, () => {}),
      )
    : resolve(p.workdir, 'results', p.name);
  for (const [name, ds] of Object.entries(p.data.datasets)) {
    if (!ds.root && ds.format === 'synthetic') ds.root = resolve(p.workdir, 'data', name);
  }
  p.source = { file: chain[0].file, chain: chain.map((l) => l.file) };
  return p;
}

/**
 * The catalogue with the protocol's file encoders (`encoders: [{ name, onnx, … }]`) added by name, so that
 * `evaluations[].encoders` may list them; `catalog` itself when there are none (its spec stays cached).
 */
function withFileEncoders(catalog: Catalog, encoders: unknown): Catalog {
  if (!Array.isArray(encoders)) return catalog;
  const extra: Record<string, CatalogEncoder> = {};
  for (const e of encoders) {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) continue;
    const { name, label, kind } = e as Record<string, unknown>;
    if (typeof name !== 'string' || Object.hasOwn(catalog.encoders, name)) continue;
    extra[name] = {
      label: typeof label === 'string' ? label : name,
      kind: (ENCODER_KINDS as readonly unknown[]).includes(kind) ? (kind as EncoderKind) : 'tl',
      dim: 0,
      description: 'encoder from an ONNX file',
    };
  }
  return Object.keys(extra).length ? { ...catalog, encoders: { ...catalog.encoders, ...extra } } : catalog;
}

/**
 * Moves the file encoders of `encoders:` to `encoder_files` (name → absolute path, kind, label), leaving their names
 * in `encoders`. A name must not be a registry name (it would be ambiguous in cells and reports) nor be listed twice.
 */
function fileEncoders(p: Protocol, catalog: Catalog, report: (i: Issue) => void): void {
  if (!Array.isArray(p.encoders)) return;
  const files: Record<string, FileEncoderConfig> = {};
  const first = new Map<string, { i: number; json: string }>();
  p.encoders = p.encoders.map((e: unknown, i) => {
    const f = (e !== null && typeof e === 'object' ? e : { name: e }) as Partial<FileEncoderConfig> & { name?: string };
    const name = f.name as string;
    const json = JSON.stringify(e);
    const seen = first.get(name);
    // (identical entries are already refused by the list's `unique`)
    if (seen && seen.json !== json)
      report({
        code: 'QCB_PROTOCOL_VALUE',
        path: ['encoders', i],
        message: `encoders[${i}] repeats the encoder name '${name}' (first at encoders[${seen.i}])`,
        value: name,
        fix: 'list each encoder once; give each ONNX file a name of its own',
      });
    if (!seen) first.set(name, { i, json });
    if (e === null || typeof e !== 'object' || typeof f.onnx !== 'string' || typeof name !== 'string') return name;
    if (Object.hasOwn(catalog.encoders, name))
      report({
        code: 'QCB_PROTOCOL_VALUE',
        path: ['encoders', i, 'name'],
        message: `encoders[${i}].name '${name}' is the name of a registry encoder`,
        value: name,
        fix: `give the file encoder a name of its own, e.g. '${name}-onnx'`,
      });
    else files[name] = { onnx: f.onnx, kind: f.kind ?? 'tl', label: f.label ?? name };
    return name;
  });
  if (Object.keys(files).length) p.encoder_files = files;
}

/** Keys of a data set entry that mean nothing for an existing crop store (its crops are already cut). */
const NOT_FOR_STORES = ['root', 'image_table', 'centres', 'channels', 'dna_channel', 'crops', 'synth'] as const;

function crossChecks(p: Protocol, report: (i: Issue) => void, raw: Record<string, unknown>): void {
  const datasets = Object.keys(p.data?.datasets ?? {});
  const dsFix = datasets.length
    ? `use one of the data sets under data.datasets: ${datasets.join(', ')}`
    : 'declare it under data.datasets';
  if (p.data?.pretrain_on && !datasets.includes(p.data.pretrain_on))
    report({
      code: 'QCB_PROTOCOL_VALUE',
      path: ['data', 'pretrain_on'],
      message: `data.pretrain_on names '${p.data.pretrain_on}', which is not under data.datasets`,
      value: p.data.pretrain_on,
      allowed: datasets.join(', '),
      fix: dsFix,
    });
  const written = (name: string) =>
    ((raw.data as { datasets?: Record<string, Record<string, unknown>> } | undefined)?.datasets?.[name] ??
      {}) as Record<string, unknown>;
  for (const [name, ds] of Object.entries(p.data?.datasets ?? {})) {
    const w = written(name);
    if (ds.format === 'store') {
      if (!ds.path)
        report({
          code: 'QCB_PROTOCOL_KEY',
          path: ['data', 'datasets', name, 'path'],
          message: `data set '${name}' has format store but no path`,
          fix: `add data.datasets.${name}.path: DIR (a crop store made by \`qcbench data crops --out DIR\`)`,
        });
      for (const k of NOT_FOR_STORES)
        if (w[k] !== undefined)
          report({
            code: 'QCB_PROTOCOL_KEY',
            path: ['data', 'datasets', name, k],
            message: `data.datasets.${name}.${k} does nothing for format store: the store's crops are already cut`,
            allowed: 'format, path, annotations',
            fix: `remove ${k}, or recut the store with \`qcbench data crops\` using the setting you want`,
          });
      continue;
    }
    if (w.path !== undefined)
      report({
        code: 'QCB_PROTOCOL_KEY',
        path: ['data', 'datasets', name, 'path'],
        message: `data.datasets.${name}.path is for format store (an existing crop store); format ${ds.format} reads its fields from root`,
        fix: `write root: for the fields, or format: store to use an existing crop store`,
      });
    // Segmentation settings act only where nuclei are segmented: a synthetic screen brings its true centres, and
    // `centres:` imports them.
    const crops = (w.crops ?? {}) as Record<string, unknown>;
    for (const k of ['diameter', 'dna_channel'])
      if (crops[k] !== undefined && (ds.format === 'synthetic' || ds.centres))
        report({
          code: 'QCB_PROTOCOL_KEY',
          path: ['data', 'datasets', name, 'crops', k],
          message: `data.datasets.${name}.crops.${k} is a segmentation setting, but this data set's nuclei centres are ${ds.format === 'synthetic' ? "the synthetic screen's own" : 'imported (centres:)'}`,
          fix: `remove crops.${k}${ds.format === 'synthetic' ? '' : ', or remove centres: to segment the DNA channel'}`,
        });
    if (ds.dna_channel && ds.crops?.dna_channel && ds.dna_channel !== ds.crops.dna_channel)
      report({
        code: 'QCB_PROTOCOL_VALUE',
        path: ['data', 'datasets', name, 'crops', 'dna_channel'],
        message: `data set '${name}' names two DNA channels: dna_channel ${ds.dna_channel} and crops.dna_channel ${ds.crops.dna_channel}`,
        value: ds.crops.dna_channel,
        fix: 'write the DNA channel once (crops.dna_channel)',
      });
    if (ds.format !== 'synthetic' && !ds.root)
      report({
        code: 'QCB_PROTOCOL_KEY',
        path: ['data', 'datasets', name, 'root'],
        message: `data set '${name}' (format ${ds.format}) needs a root directory`,
        fix: `add data.datasets.${name}.root: /path/to/${name} (or \${QCBENCH_DATA}/${name})`,
      });
    if (ds.format === 'csv' && !ds.image_table)
      report({
        code: 'QCB_PROTOCOL_KEY',
        path: ['data', 'datasets', name, 'image_table'],
        message: `data set '${name}' has format csv but no image_table`,
        fix: `add data.datasets.${name}.image_table: fields.csv (columns field_id, path_<channel>…)`,
      });
  }
  (p.evaluations ?? []).forEach((ev, i) => {
    ev.train_set ??= p.data?.pretrain_on;
    ev.test_set ??= ev.train_set;
    for (const key of ['train_set', 'test_set'] as const) {
      if (ev[key] && !datasets.includes(ev[key]))
        report({
          code: 'QCB_PROTOCOL_VALUE',
          path: ['evaluations', i, key],
          message: `evaluations[${i}].${key} names '${ev[key]}', which is not under data.datasets`,
          value: ev[key],
          allowed: datasets.join(', '),
          fix: dsFix,
        });
    }
    for (const e of ev.encoders ?? [])
      if (!p.encoders?.includes(e))
        report({
          code: 'QCB_PROTOCOL_VALUE',
          path: ['evaluations', i, 'encoders'],
          message: `evaluations[${i}].encoders lists '${e}', which is not in the protocol's encoders`,
          value: e,
          allowed: (p.encoders ?? []).join(', '),
          fix: `add '${e}' to encoders, or remove it here`,
        });
    // a block's task overrides: only written keys, only for the block's own tasks (every accepted key acts)
    const written = Object.entries(ev.task_settings ?? {}).filter(([, o]) => o && Object.keys(o).length);
    for (const [t] of written)
      if (!ev.tasks?.includes(t))
        report({
          code: 'QCB_PROTOCOL_VALUE',
          path: ['evaluations', i, 'task_settings', t],
          message: `evaluations[${i}].task_settings.${t} is set but the block does not run ${t}`,
          value: t,
          allowed: (ev.tasks ?? []).join(', '),
          fix: `add ${t} to evaluations[${i}].tasks, or remove its settings`,
        });
    if (written.length) ev.task_settings = Object.fromEntries(written);
    else delete ev.task_settings;
    for (const [t, o] of written) {
      const base = (p.tasks as unknown as Record<string, Record<string, unknown>> | undefined)?.[t] ?? {};
      checkSchedule({ ...base, ...o }, ['evaluations', i, 'task_settings', t], `evaluations[${i}].task_settings.${t}`);
    }
  });
  // every task with a step schedule (the trained heads): its milestones must fall before its last epoch
  for (const [t, c] of Object.entries(p.tasks ?? {})) checkSchedule(c, ['tasks', t], `tasks.${t}`);

  function checkSchedule(c: unknown, path: (string | number)[], name: string): void {
    const cfg = c as { milestones?: unknown; epochs?: unknown };
    if (!Array.isArray(cfg.milestones) || typeof cfg.epochs !== 'number') return;
    const epochs = cfg.epochs;
    cfg.milestones.forEach((m: number, j: number) => {
      if (m >= epochs)
        report({
          code: 'QCB_PROTOCOL_VALUE',
          path: [...path, 'milestones', j],
          message: `${name}.milestones[${j}] = ${m} is not before the last epoch (${epochs})`,
          value: m,
          allowed: `integers below ${name}.epochs (${epochs})`,
          fix: `lower the milestone or raise ${name}.epochs; for short runs use a shorter list`,
        });
    });
  }
}

/**
 * Content hash of a resolved protocol's settings. Locations (workdir, results, data roots, annotation files) are left
 * out: moving a checkout or a data set keeps the hash; the runner hashes the data's content separately.
 */
export function protocolHash(p: Protocol): string {
  const {
    source: _s,
    workdir: _w,
    results: _r,
    description: _d,
    data,
    pretrain,
    encoder_settings,
    encoder_files,
    ...rest
  } = p;
  // file encoders without their paths: moving a file keeps the hash (the runner hashes its content for the cells)
  const files = Object.entries(encoder_files ?? {}).map(([n, { onnx: _o, ...f }]) => [n, f]);
  // A data set's crop settings enter only when they differ from the defaults, so protocols that write none keep the
  // hash they had before the `crops:` block existed (the crop store ids, src/runner/cells.ts, carry the settings).
  const cropDefaults = contentHash({ ...CROPS });
  const datasets = Object.fromEntries(
    Object.entries(data.datasets).map(([k, { root: _root, path: _p, annotations: _a, centres: _c, crops, ...ds }]) => [
      k,
      crops && contentHash(crops) !== cropDefaults ? { ...ds, crops } : ds,
    ]),
  );
  // `per_seed: false` is what every protocol meant before the key existed (one pretraining for all seeds): left out,
  // so protocols that keep the single pretraining keep their hash
  const { per_seed, ...pre } = pretrain;
  // likewise encoder settings: only written ones, so a protocol that writes none keeps the hash it had before the key
  const written = Object.entries(encoder_settings ?? {}).filter(([, s]) => Object.keys(s).length);
  return contentHash({
    ...rest,
    pretrain: per_seed ? pretrain : pre,
    data: { ...data, datasets },
    ...(written.length ? { encoder_settings: Object.fromEntries(written) } : {}),
    ...(files.length ? { encoder_files: Object.fromEntries(files) } : {}),
  });
}
