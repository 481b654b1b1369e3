/**
 * Protocol schema, version 1. A protocol is a YAML file that says which encoders, tasks, label budgets, seeds and test
 * sets a run covers, on which data, with which settings. Every key not written takes its named default
 * (src/protocol/defaults.ts; a downstream task's in its own file), so a protocol lists only what differs from the
 * paper.
 */
import { AUGMENTATIONS, type Catalog, CROP_BORDERS, CROP_NORMALISE, DATASET_FORMATS } from './catalog.js';
import * as D from './defaults.js';
import { nonNeg, posInt } from './fields.js';
import type { Spec } from './spec.js';
import { ID_ALLOWED, ID_PATTERN } from '../util/ids.js';
import { ENCODER_KINDS, type EncoderKind } from '../results/schema.js';

export const PROTOCOL_VERSION = 1;

const datasetSpec: Spec = {
  kind: 'object',
  required: ['format'],
  fields: {
    format: { kind: 'enum', values: DATASET_FORMATS, what: 'dataset format' },
    /** Where the fields are (for `synthetic`: where they are generated; default `<workdir>/data/<name>`). */
    root: { kind: 'path' },
    /**
     * For `store`: the folder of an existing crop store (`qcbench data crops --out DIR`), used as it is (no cutting);
     * its annotation crop ids must be in its crops.csv. The store's content, not its place, enters the cell ids.
     */
    path: { kind: 'path' },
    /** The image table (BBBC021_v1_image.csv, a BBBC022 per-plate table, or a generic CSV), relative to root. */
    image_table: { kind: 'string' },
    /** CellProfiler object table of nuclei centres (Location_Center_X/Y); default: segment the DNA channel. */
    centres: { kind: 'path' },
    /** Annotation CSV (annotations/README.md). */
    annotations: { kind: 'path' },
    /** Channels mapped to the encoder's R, G, B inputs (paper: Ph_golgi → red, Mito → green, Hoechst → blue). */
    channels: { kind: 'list', of: { kind: 'string' }, minLength: 1 },
    /** Nuclear stain used for segmentation (same as `crops.dna_channel`; write one of them). */
    dna_channel: { kind: 'string' },
    /**
     * How this data set's crops are cut (src/data/crops.ts); every key enters the crop store's id, so changing one
     * cuts the crops again. Not for `format: store` (its crops are already cut).
     */
    crops: {
      kind: 'object',
      fields: {
        /**
         * `plate`: one intensity window per plate and channel, the median over 8 seeded fields of the plate of their
         * 0.1/99.9 percentiles (a dim or saturated field keeps its difference); `field`: each field's own
         * 0.1/99.9 percentiles (the paper's per-field stretch: every field looks alike).
         */
        normalise: { kind: 'enum', values: CROP_NORMALISE, what: 'normalisation', default: D.CROPS.normalise },
        /** Typical nucleus diameter in pixels, for segmenting the DNA channel (not used with `centres`). */
        diameter: { kind: 'number', min: 4, max: 1000, default: D.CROPS.diameter },
        /** A crop that leaves its field: `skip` it, `pad` with zeros, or `reflect` the field at its edge. */
        border: { kind: 'enum', values: CROP_BORDERS, what: 'border policy', default: D.CROPS.border },
        /** Nuclear stain to segment (default: the layout's — Hoechst, DAPI, or a csv channel named dna/dapi/hoechst). */
        dna_channel: { kind: 'string' },
      },
    },
    /** For `synthetic`: the generator's settings. */
    synth: {
      kind: 'object',
      fields: {
        domain: { kind: 'enum', values: ['u2os', 'mcf7'], what: 'synthetic domain', default: 'u2os' },
        // Unset keys take the generator's quick-screen defaults (src/data/synth/screen.ts QUICK_SCREENS), which the
        // shipped synthetic annotation files were made from.
        plates: posInt(),
        wells: { kind: 'int', min: 1, max: 96 },
        sites: posInt(),
        width: { kind: 'int', min: 64 },
        height: { kind: 'int', min: 64 },
        abnormal_fraction: { kind: 'number', min: 0, max: 0.9 },
        seed: { kind: 'int', min: 0 },
        /** Crop side the ground truth is judged for: abnormal when an artefact reaches the central half (default 128). */
        crop_size: { kind: 'int', min: 8 },
      },
    },
  },
};

/**
 * An encoder from an ONNX file (any CNN mapping N×3×S×S crops to N×D features, logits or a feature map; see
 * src/encoders/onnx-file.ts): `name` is its id in cells and reports (a safe id, not a registry name), `onnx` the file
 * (relative to the protocol file), `kind` where the report lists it, `label` its row label (default: the name).
 * Cells identify it by the file's content, so moving the file keeps them.
 */
export const fileEncoderSpec: Spec = {
  kind: 'object',
  required: ['name', 'onnx'],
  fields: {
    name: { kind: 'string', pattern: ID_PATTERN, patternDoc: ID_ALLOWED },
    onnx: { kind: 'path' },
    kind: { kind: 'enum', values: ENCODER_KINDS, what: 'encoder kind', default: 'tl' },
    label: { kind: 'string' },
  },
};

/** An encoder from an ONNX file after resolution (`Protocol.encoder_files`). */
export interface FileEncoderConfig {
  /** Absolute path of the ONNX file. */
  onnx: string;
  kind: EncoderKind;
  label: string;
}

const evaluationSpec = (c: Catalog): Spec => ({
  kind: 'object',
  required: ['tasks', 'budgets'],
  fields: {
    /** Name of the block in reports (`table1`, `label-budget`, `domain-shift`); a safe id (src/util/ids.ts). */
    name: { kind: 'string', pattern: ID_PATTERN, patternDoc: ID_ALLOWED },
    tasks: {
      kind: 'list',
      of: { kind: 'enum', values: Object.keys(c.tasks), what: 'downstream task' },
      minLength: 1,
      unique: true,
    },
    budgets: { kind: 'list', of: { kind: 'int', min: 2 }, minLength: 1, unique: true },
    /** Data set whose annotated train split trains the head (default: data.pretrain_on). */
    train_set: { kind: 'string' },
    /** Data set whose annotated test split is scored (default: train_set). */
    test_set: { kind: 'string' },
    /** Restrict this block to some encoders (default: all of `encoders`). */
    encoders: { kind: 'list', of: { kind: 'enum', values: Object.keys(c.encoders), what: 'encoder' }, unique: true },
    /**
     * Task settings of this block's cells over `tasks.<task>` (e.g. more fine-tuning epochs for a small label budget,
     * where `tasks.finetune.epochs` gives too few steps). Only the keys written act; resolve.ts drops empty entries.
     */
    task_settings: {
      kind: 'object',
      fields: Object.fromEntries(
        Object.entries(c.tasks).map(([name, t]) => [name, { kind: 'object', fields: withoutDefaults(t.settings) }]),
      ),
    },
  },
});

/** Field specs without their defaults: an override block whose unwritten keys stay absent (and so inherit). */
function withoutDefaults(fields: Record<string, Spec>): Record<string, Spec> {
  return Object.fromEntries(
    Object.entries(fields).map(([k, s]) => {
      if (s.kind === 'object') return [k, { ...s, fields: withoutDefaults(s.fields) }];
      const { default: _d, ...rest } = s as Spec & { default?: unknown };
      return [k, rest as Spec];
    }),
  );
}

/**
 * `pretrain.methods.<name>`: each method's hyperparameters with their catalogue defaults, except `proj_hidden_dim`,
 * which has none here: unset, it is `pretrain.projector_dim` (the paper's one "2048 dimension FC layers" for every
 * method; `sslHyper` in src/runner/cells.ts applies it), set, it wins for that method.
 */
const methodOverrides = (c: Catalog): Spec => ({
  kind: 'object',
  fields: Object.fromEntries(
    Object.entries(c.sslMethods).map(([m, defaults]) => [
      m,
      {
        kind: 'object',
        fields: Object.fromEntries(
          Object.entries(defaults).map(([k, v]) => [
            k,
            k === 'proj_hidden_dim'
              ? ({ kind: 'int', min: 1 } as Spec)
              : Number.isInteger(v)
                ? ({ kind: 'int', min: 0, default: v } as Spec)
                : ({ kind: 'number', gt: 0, default: v } as Spec),
          ]),
        ),
      } as Spec,
    ]),
  ),
});

/** Optimizers SSL pretraining implements (src/ssl/pretrain/graph.ts): SGD with momentum (paper) and LARS (solo-learn). */
export const SSL_OPTIMIZERS = ['sgd', 'lars'] as const;

const specs = new WeakMap<Catalog, Spec>();

/**
 * The whole protocol, for the names of `catalog` (built once per catalogue). Keys in snake_case as in solo-learn and
 * lm-evaluation-harness configs.
 */
export function protocolSpec(catalog: Catalog): Spec {
  let s = specs.get(catalog);
  if (!s) specs.set(catalog, (s = buildSpec(catalog)));
  return s;
}

const buildSpec = (c: Catalog): Spec => ({
  kind: 'object',
  required: ['version', 'name', 'encoders', 'evaluations', 'data'],
  fields: {
    version: { kind: 'int', min: 1, max: PROTOCOL_VERSION },
    name: { kind: 'string', pattern: /^[a-z0-9][a-z0-9._-]*$/, patternDoc: 'lower-case letters, digits, . _ -' },
    description: { kind: 'string', default: '' },
    extends: { kind: 'string' },
    /** Outputs (generated data, caches) relative to the current directory. */
    workdir: { kind: 'string', default: D.WORKDIR },
    /** Results directory (default `<workdir>/results/<name>`), relative to the current directory. */
    results: { kind: 'string' },
    seeds: { kind: 'list', of: { kind: 'int', min: 0 }, minLength: 1, unique: true, default: [...D.SEEDS] },
    // a catalogue name, or an encoder from an ONNX file (resolve.ts moves those to `encoder_files`, keeping the name)
    encoders: {
      kind: 'list',
      of: { kind: 'oneOf', of: [{ kind: 'enum', values: Object.keys(c.encoders), what: 'encoder' }, fileEncoderSpec] },
      minLength: 1,
      unique: true,
    },
    data: {
      kind: 'object',
      required: ['datasets', 'pretrain_on'],
      fields: {
        crop_size: { kind: 'int', min: 16, max: 1024, default: D.CROP_SIZE },
        /** Data set whose crops SSL methods pretrain on and whose annotations train the heads by default. */
        pretrain_on: { kind: 'string' },
        // A data set's name becomes a folder (`<workdir>/data/<name>`) and a cell's train/test set: a safe id
        // (src/util/ids.ts), so it cannot point outside the workdir.
        datasets: {
          kind: 'map',
          of: datasetSpec,
          keys: { pattern: ID_PATTERN, patternDoc: ID_ALLOWED, what: 'data set' },
        },
      },
    },
    pretrain: {
      kind: 'object',
      fields: {
        backbone: { kind: 'enum', values: ['resnet18'], what: 'SSL backbone', default: D.PRETRAIN.backbone },
        epochs: posInt(D.PRETRAIN.epochs),
        batch_size: { kind: 'int', min: 2, default: D.PRETRAIN.batch_size },
        optimizer: { kind: 'enum', values: SSL_OPTIMIZERS, what: 'SSL optimizer', default: D.PRETRAIN.optimizer },
        lr: { kind: 'number', gt: 0, default: D.PRETRAIN.lr },
        momentum: { kind: 'number', min: 0, max: 1, default: D.PRETRAIN.momentum },
        weight_decay: nonNeg(D.PRETRAIN.weight_decay),
        schedule: {
          kind: 'enum',
          values: ['warmup_cosine', 'constant'],
          what: 'schedule',
          default: D.PRETRAIN.schedule,
        },
        warmup_epochs: { kind: 'number', min: 0, default: D.PRETRAIN.warmup_epochs },
        /** Hidden width of every method's projector (`methods.<name>.proj_hidden_dim` overrides it per method). */
        projector_dim: posInt(D.PRETRAIN.projector_dim),
        /** Augmentations making the two views (src/ssl/augment.ts); a name left out turns that step off. */
        augmentations: {
          kind: 'list',
          of: { kind: 'enum', values: AUGMENTATIONS, what: 'augmentation' },
          unique: true,
          default: [...D.PRETRAIN.augmentations],
        },
        // default null (D.PRETRAIN.max_images_per_epoch: every crop), also when the protocol has no `pretrain:` block
        max_images_per_epoch: { kind: 'nullable', of: posInt(), default: null },
        log_every: posInt(D.PRETRAIN.log_every),
        knn_monitor: { kind: 'bool', default: D.PRETRAIN.knn_monitor },
        /** One pretraining / initialisation per seed (true) or one shared by every seed (false, the paper's). */
        per_seed: { kind: 'bool', default: D.PRETRAIN_PER_SEED },
        methods: methodOverrides(c),
      },
    },
    tasks: {
      kind: 'object',
      fields: {
        ...Object.fromEntries(
          Object.entries(c.tasks).map(([name, t]) => [name, { kind: 'object', fields: t.settings } as Spec]),
        ),
        line_search: {
          kind: 'object',
          fields: {
            enabled: { kind: 'bool', default: D.LINE_SEARCH.enabled },
            val_fraction: { kind: 'number', gt: 0, max: 0.5, default: D.LINE_SEARCH.val_fraction },
            lr: { kind: 'list', of: { kind: 'number', gt: 0 }, minLength: 1, default: [...D.LINE_SEARCH.lr] },
          },
        },
      },
    },
    /** Per-encoder settings, for the encoders that declare them (e.g. resnet18-fractaldb's pretraining). */
    encoder_settings: {
      kind: 'object',
      fields: Object.fromEntries(
        Object.entries(c.encoders)
          .filter(([, e]) => e.settings && Object.keys(e.settings).length)
          .map(([name, e]) => [name, { kind: 'object', fields: e.settings } as Spec]),
      ),
    },
    evaluations: { kind: 'list', of: evaluationSpec(c), minLength: 1 },
    metrics: {
      kind: 'object',
      fields: { bootstrap: { kind: 'int', min: 0, default: D.BOOTSTRAP_RESAMPLES } },
    },
    runtime: {
      kind: 'object',
      fields: {
        threads: { kind: 'int', min: 0, default: D.RUNTIME.threads },
        execution_provider: {
          kind: 'enum',
          values: ['cpu', 'cuda'],
          what: 'execution provider',
          default: D.RUNTIME.execution_provider,
        },
        workers: posInt(D.RUNTIME.workers),
        // int8: frozen features through the statically quantised encoder (src/encoders/features.ts int8Encoder)
        precision: { kind: 'enum', values: ['fp32', 'int8'], what: 'feature precision', default: D.RUNTIME.precision },
      },
    },
  },
});

/** A dataset entry after resolution. */
export interface DatasetConfig {
  format: (typeof DATASET_FORMATS)[number];
  root?: string;
  /** `format: store`: the crop store folder. */
  path?: string;
  image_table?: string;
  centres?: string;
  annotations?: string;
  channels?: string[];
  dna_channel?: string;
  crops: {
    normalise: (typeof CROP_NORMALISE)[number];
    diameter: number;
    border: (typeof CROP_BORDERS)[number];
    dna_channel?: string;
  };
  synth: {
    domain: 'u2os' | 'mcf7';
    plates?: number;
    wells?: number;
    sites?: number;
    width?: number;
    height?: number;
    abnormal_fraction?: number;
    seed?: number;
    crop_size?: number;
  };
}

export interface EvaluationConfig {
  name?: string;
  /** Names of src/downstream/registry.ts. */
  tasks: string[];
  budgets: number[];
  train_set: string;
  test_set: string;
  encoders?: string[];
  /** `tasks.<task>` keys this block overrides (only written keys; absent when none). */
  task_settings?: Record<string, Record<string, unknown>>;
}

/** A protocol after `extends` was applied, defaults filled, paths made absolute and everything checked. */
export interface Protocol {
  version: number;
  name: string;
  description: string;
  workdir: string;
  results: string;
  seeds: number[];
  /** Names of the catalogue's encoders (src/runner/catalog.ts) and of the protocol's file encoders. */
  encoders: string[];
  /** The encoders of `encoders:` given as ONNX files, by name; absent when there are none. */
  encoder_files?: Record<string, FileEncoderConfig>;
  data: { crop_size: number; pretrain_on: string; datasets: Record<string, DatasetConfig> };
  pretrain: {
    backbone: 'resnet18';
    epochs: number;
    batch_size: number;
    optimizer: (typeof SSL_OPTIMIZERS)[number];
    lr: number;
    momentum: number;
    weight_decay: number;
    schedule: 'warmup_cosine' | 'constant';
    warmup_epochs: number;
    projector_dim: number;
    augmentations: (typeof AUGMENTATIONS)[number][];
    max_images_per_epoch: number | null;
    log_every: number;
    knn_monitor: boolean;
    /** Each seed pretrains and initialises its own seeded encoders (src/runner/cells.ts encoderSeed). */
    per_seed: boolean;
    /** Per-method hyperparameters; `proj_hidden_dim` only when the protocol sets it (else `projector_dim`). */
    methods: {
      /** Per SSL method (a key of src/ssl/registry.ts): its hyperparameters, defaults filled. */
      [method: string]: Record<string, number> & { proj_hidden_dim?: number };
    };
  };
  /** `tasks.<name>`: each downstream task's settings (keys and defaults in the task's own file), and the line search. */
  tasks: { [task: string]: Record<string, unknown> } & {
    line_search: { enabled: boolean; val_fraction: number; lr: number[] };
  };
  /** `encoder_settings.<encoder>`: the keys the protocol wrote (unset ones take the encoder's defaults). */
  encoder_settings: Record<string, Record<string, unknown>>;
  evaluations: EvaluationConfig[];
  metrics: { bootstrap: number };
  runtime: { threads: number; execution_provider: 'cpu' | 'cuda'; workers: number; precision: 'fp32' | 'int8' };
  /** The file this protocol was read from and the chain of files it extends (child first). */
  source: { file: string; chain: string[] };
}
