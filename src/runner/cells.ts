/**
 * Expands a protocol into cells (encoder × task × budget × seed × train set × test set) and computes every stage's
 * content hash: a cell's id hashes its resolved settings and the hashes of its inputs (data, annotations, encoder),
 * so a re-run computes only what changed, and two machines agree on ids without talking to each other.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { DatasetConfig, Protocol } from '../protocol/schema.js';
import type { CellKey } from '../results/schema.js';
import { QcbError } from '../errors.js';
import { contentHash, updateHashFromFile } from '../util/fs.js';
import { CATALOG, ENCODERS, isSslMethod } from './catalog.js';
import { findWeights, type ImageNetName } from '../encoders/weights.js';
import { DOWNSTREAM_TASKS } from '../downstream/registry.js';

/**
 * Versions of the code that produces each stage's output. Bump one when a change alters that stage's results, so
 * cached artifacts made by older code are not reused.
 */
export const STAGE_VERSIONS = { data: 1, pretrain: 1, features: 1, train: 1, cell: 1 } as const;

/** One cell of a run, with everything needed to compute it. */
export interface CellPlan {
  id: string;
  key: CellKey;
  /** Index in the protocol's deterministic cell order (shards take `index % n === i`). */
  index: number;
  /** Names of the evaluation blocks that asked for this cell. */
  blocks: string[];
  /** Settings hashed into the id. */
  settings: Record<string, unknown>;
  /** Hash of the trained model (encoder + head) this cell evaluates; cells differing only in test set share it. */
  trainId: string;
  encoderId: string;
}

export function fileHash(path: string | undefined): string | null {
  if (!path || !existsSync(path)) return null;
  const st = statSync(path);
  if (st.isDirectory()) return `dir:${path}`;
  // Content hash for small files (tables, annotations); size + mtime for large ones (weights), which are read once.
  if (st.size <= 64 * 2 ** 20) return createHash('sha256').update(readFileSync(path)).digest('hex');
  return `size:${st.size}:mtime:${Math.round(st.mtimeMs)}`;
}

const weightHashes = new Map<string, string>();
/** SHA-256 of a (large) weights file, streamed once per process per path, size and mtime. */
function weightsContentHash(path: string): string {
  const st = statSync(path);
  const key = `${path}|${st.size}|${st.mtimeMs}`;
  let h = weightHashes.get(key);
  if (!h) {
    h = updateHashFromFile(createHash('sha256'), path).digest('hex');
    weightHashes.set(key, h);
  }
  return h;
}

/** SHA-256 of a protocol's ONNX encoder file; QCB_FILE_NOT_FOUND naming it when it is missing. */
function onnxContentHash(path: string): string {
  if (!existsSync(path))
    throw new QcbError('QCB_FILE_NOT_FOUND', `encoder file not found: ${path}`, {
      file: path,
      key: 'encoders[].onnx',
      fix: 'check the onnx path of the encoder (relative to the protocol file); qcbench validate checks it',
    });
  return weightsContentHash(path);
}

/**
 * The crop settings of a data set that enter its id: none while they are what every store was cut with before the
 * `crops:` block existed (per-field percentiles, 30 px nuclei, skip), so such a protocol keeps its ids and caches;
 * otherwise the three settings (the DNA channel is hashed beside them, as it always was).
 */
function cropSettingsId(ds: DatasetConfig): Record<string, unknown> | undefined {
  const { normalise, diameter, border } = ds.crops ?? { normalise: 'field', diameter: 30, border: 'skip' };
  if (normalise === 'field' && diameter === 30 && border === 'skip') return undefined;
  return { normalise, diameter, border };
}

/** The SHA-256 content hash a complete crop store records in its qcbench.json, or null when there is none. */
function storeHash(path: string | undefined): string | null {
  if (!path) return null;
  try {
    return (JSON.parse(readFileSync(join(path, 'qcbench.json'), 'utf8')) as { hash?: string }).hash ?? null;
  } catch {
    return null;
  }
}

/**
 * Identity of a dataset's crops: what generates or lists its fields, how crops are cut — or, for an existing store
 * (`format: store`), the store's own content hash, so moving or copying it keeps the ids. Cheap to compute.
 */
export function datasetId(p: Protocol, name: string): string {
  const ds: DatasetConfig = p.data.datasets[name];
  if (ds.format === 'store')
    return contentHash({ v: STAGE_VERSIONS.data, format: ds.format, store: storeHash(ds.path) });
  const table =
    ds.image_table && ds.root
      ? isAbsolute(ds.image_table)
        ? ds.image_table
        : join(ds.root, ds.image_table)
      : undefined;
  return contentHash({
    v: STAGE_VERSIONS.data,
    format: ds.format,
    synth: ds.format === 'synthetic' ? ds.synth : undefined,
    root: ds.format === 'synthetic' ? undefined : ds.root,
    table: fileHash(table),
    centres: fileHash(ds.centres),
    channels: ds.channels ?? null,
    dna: ds.crops?.dna_channel ?? ds.dna_channel ?? null,
    crop_size: p.data.crop_size,
    crops: cropSettingsId(ds),
  });
}

/**
 * The hyperparameters an SSL method pretrains with: `pretrain.methods.<name>` over the catalogue defaults, with
 * `pretrain.projector_dim` as the projector's hidden width unless the method sets `proj_hidden_dim` itself.
 */
export function sslHyper(p: Protocol, method: string): Record<string, number> {
  const own = p.pretrain.methods[method] as Record<string, number | undefined>;
  const out: Record<string, number> = { proj_hidden_dim: p.pretrain.projector_dim };
  for (const [k, v] of Object.entries(own)) if (v !== undefined) out[k] = v;
  return out;
}

/**
 * The seed an encoder is pretrained or initialised with for a cell of seed `cellSeed`: the cell's seed with
 * `pretrain.per_seed` for every encoder that is trained or initialised here (SSL methods, FractalDB, the random
 * control, the from-scratch CNNs), else 0 — one pretraining and one initialisation shared by every seed (the paper's).
 * Transfer-learning weights are read from files, never seeded, and hand-made measures have nothing to seed: null.
 */
export function encoderSeed(p: Protocol, encoder: string, cellSeed: number): number | null {
  // weights read from files are never seeded (the transfer-learning encoders and the protocol's file encoders), nor
  // are hand-made measures (cp-quality): one encoder id for every seed
  const kind = ENCODERS[encoder]?.kind;
  if (p.encoder_files?.[encoder] || kind === 'tl' || kind === 'handcrafted') return null;
  return p.pretrain.per_seed ? cellSeed : 0;
}

/**
 * Identity of an encoder as the run will use it for cells of seed `cellSeed`. With `pretrain.per_seed` a seeded
 * encoder's identity includes its seed (each seed pretrains its own); without, it is the same for every seed.
 */
export function encoderId(p: Protocol, encoder: string, cellSeed: number): string {
  const entry = ENCODERS[encoder];
  const seed = encoderSeed(p, encoder, cellSeed);
  const settings = encoderSettingsOf(p, encoder);
  const base = {
    encoder,
    crop_size: p.data.crop_size,
    ...(p.pretrain.per_seed && seed !== null ? { seed } : {}),
    ...(settings ? { settings } : {}),
  };
  const file = p.encoder_files?.[encoder];
  if (file) {
    // the file's content, not its path or name: moving the file keeps the ids, changing its bytes changes them
    return contentHash({ onnx: onnxContentHash(file.onnx), crop_size: p.data.crop_size });
  }
  if (isSslMethod(encoder)) {
    // Everything that shapes the weights or the pretraining record: the projector width through the method's
    // effective hyperparameters, the augmentation set (order does not matter), and the kNN monitor with the
    // annotations it scores (its curve is part of the record). Only the loss-logging interval is left out.
    // (per_seed acts through `base.seed`; left out here so `per_seed: false` keeps the ids it had before the key)
    const { methods: _m, log_every: _l, projector_dim: _d, per_seed: _s, augmentations, ...pre } = p.pretrain;
    const monitorOn = p.data.datasets[p.data.pretrain_on]?.annotations;
    return contentHash({
      ...base,
      v: STAGE_VERSIONS.pretrain,
      // (an unset max_images_per_epoch is null whether or not the protocol has a `pretrain:` block)
      pretrain: {
        ...pre,
        max_images_per_epoch: pre.max_images_per_epoch ?? null,
        augmentations: [...augmentations].sort(),
      },
      method: sslHyper(p, encoder),
      data: datasetId(p, p.data.pretrain_on),
      ...(p.pretrain.knn_monitor ? { monitor: fileHash(monitorOn) } : {}),
    });
  }
  if (entry.kind === 'tl') {
    // the weights file's content, not its folder: shards on machines that mount the weights at different paths
    // agree on the cell ids, and replacing a file invalidates what was computed from it
    const found = findWeights(encoder as ImageNetName);
    return contentHash({ ...base, weights: entry.weights, file: found ? weightsContentHash(found.path) : null });
  }
  if (entry.kind === 'supervised-synthetic') return contentHash({ ...base, v: STAGE_VERSIONS.pretrain, fractaldb: 1 });
  return contentHash(base);
}

/** Expands the protocol into its cells, in a deterministic order, deduplicated across evaluation blocks. */
export function expandCells(p: Protocol): CellPlan[] {
  const byId = new Map<string, CellPlan>();
  const order: CellPlan[] = [];
  const annHash = new Map<string, string | null>();
  const ann = (set: string) => {
    if (!annHash.has(set)) annHash.set(set, fileHash(p.data.datasets[set]?.annotations));
    return annHash.get(set) ?? null;
  };
  const encIds = new Map<string, string>();
  const encIdOf = (encoder: string, seed: number) => {
    const k = `${encoder}\u0000${encoderSeed(p, encoder, seed)}`;
    if (!encIds.has(k)) encIds.set(k, encoderId(p, encoder, seed));
    return encIds.get(k)!;
  };
  p.evaluations.forEach((ev, evIndex) => {
    const block = ev.name ?? `evaluation-${evIndex}`;
    for (const encoder of ev.encoders ?? p.encoders) {
      for (const task of ev.tasks) {
        for (const budget of ev.budgets) {
          for (const seed of p.seeds) {
            const encId = encIdOf(encoder, seed);
            const key: CellKey = { encoder, task, budget, seed, train_set: ev.train_set, test_set: ev.test_set };
            const own = { ...taskSettingsOf(p, task), ...ev.task_settings?.[task] };
            const taskSettings = CATALOG.tasks[task]?.lineSearch ? { ...own, line_search: p.tasks.line_search } : own;
            const trainSettings = {
              v: STAGE_VERSIONS.train,
              encoder: encId,
              task,
              budget,
              seed,
              train_data: datasetId(p, ev.train_set),
              train_annotations: ann(ev.train_set),
              crop_size: p.data.crop_size,
              settings: taskSettings,
              // int8 frozen features (runtime.precision) change a frozen task's inputs; fp32 keeps the ids it had
              ...(int8Features(p, task) ? { precision: 'int8' } : {}),
            };
            const trainId = contentHash(trainSettings);
            const settings = {
              v: STAGE_VERSIONS.cell,
              train: trainId,
              test_data: datasetId(p, ev.test_set),
              test_annotations: ann(ev.test_set),
              bootstrap: p.metrics.bootstrap,
            };
            const id = contentHash({ key, settings }).slice(0, 24);
            const existing = byId.get(id);
            if (existing) {
              if (!existing.blocks.includes(block)) existing.blocks.push(block);
              continue;
            }
            const plan: CellPlan = {
              id,
              key,
              index: order.length,
              blocks: [block],
              settings: {
                ...settings,
                task: taskSettings,
                crop_size: p.data.crop_size,
                ...(int8Features(p, task) ? { precision: 'int8' } : {}),
              },
              trainId: trainId.slice(0, 24),
              encoderId: encId.slice(0, 24),
            };
            byId.set(id, plan);
            order.push(plan);
          }
        }
      }
    }
  });
  return order;
}

/** Whether cells of `task` use int8 frozen features (`runtime.precision: int8` and a frozen-encoder task). */
export function int8Features(p: Protocol, task: string): boolean {
  return (
    p.runtime.precision === 'int8' && (DOWNSTREAM_TASKS as Record<string, { frozen: boolean }>)[task]?.frozen === true
  );
}

/**
 * The `encoder_settings.<encoder>` keys the protocol wrote (the encoder fills the rest with its defaults), or
 * undefined when it wrote none.
 */
export function encoderSettingsOf(p: Protocol, encoder: string): Record<string, unknown> | undefined {
  const s = p.encoder_settings?.[encoder];
  return s && Object.keys(s).length ? s : undefined;
}

/** The protocol's `tasks.<task>` block (the settings of that downstream task, defaults filled). */
export function taskSettingsOf(p: Protocol, task: string): Record<string, unknown> {
  return (p.tasks as unknown as Record<string, Record<string, unknown>>)[task] ?? {};
}
