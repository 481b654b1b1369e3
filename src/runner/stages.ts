/**
 * The real stage graph behind every cell:
 *
 *   dataset  (synthetic generation when absent → nuclei centres → Zarr crop store)   cache/stores/<datasetId>
 *   encoder  (SSL pretraining, FractalDB pretraining, ImageNet weights, random init)  cache/encoders/<encoderId>
 *   features (frozen encoders: every annotated crop of a data set, once per encoder)  cache/features/<featuresId>
 *   train    (kNN bank / linear probe / fine-tuning / quadratic head with the cell's   cache/models/<trainId>
 *             label budget and seed; shared by cells that differ only in test set)
 *   predict  (the trained model on the cell's test set)
 *   metrics  (weighted accuracy, F1, AUC with bootstrap intervals, confusion, recall per artefact type)
 *
 * Heavy artifacts are content-addressed in `<workdir>/cache` and claimed while computed, so a crop store, an SSL
 * encoder, an encoder's features of a data set or a trained downstream model is made once for every cell, run,
 * worker and shard that needs it, and a resumed run reads them back instead of recomputing.
 */
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Annotation, readAnnotations, sampleLabelBudget } from '../data/annotations.js';
import { openCropStore, type CropStore } from '../data/store/crop-store.js';
import { synthesizeScreen } from '../data/synth/screen.js';
import { montagePng } from '../render/montage.js';
import {
  type CropSet,
  extractFeatures,
  f32Bytes,
  type Features,
  readF32,
  selectCrops,
  selectFeatureRows,
} from '../encoders/features.js';
import { runCell } from '../downstream/cell.js';
import { resolveTask } from '../downstream/registry.js';
import type { EncoderGraph, Preprocess } from '../encoders/types.js';
import { QcbError } from '../errors.js';
import type { DatasetConfig, Protocol } from '../protocol/schema.js';
import { sslAugment } from '../ssl/augment.js';
import { type CropSource as SslCropSource, knnMonitorFor, type PretrainOptions, pretrain } from '../ssl/pretrain.js';
import { contentHash, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { encoderFor, isSslMethod } from './catalog.js';
import {
  type CellPlan,
  datasetId,
  encoderId,
  encoderSeed,
  encoderSettingsOf,
  STAGE_VERSIONS,
  sslHyper,
} from './cells.js';
import { ensureModel, predictModel } from './train.js';
import { underClaim } from './cache.js';
import { extractDatasetCrops } from './extract.js';
import { annotationsFileOf } from './inputs.js';
import type { Prediction } from '../results/schema.js';
import type { CellOutcome, StageContext, Stages } from './stage-types.js';

/** A data set ready for cells: its crop store and annotations. */
interface DatasetHandle {
  name: string;
  store: CropStore;
  annotations: Annotation[];
  annotationsFile: string;
  /** crop_id → store index. */
  index: Map<string, number>;
}

/** A loaded encoder. */
interface EncoderHandle {
  eg: EncoderGraph;
  preprocess: Preprocess;
  /** Pretraining record id, for SSL / FractalDB encoders. */
  pretrain?: string;
}

/** Per-process caches: a worker runs many cells of the same encoders and data sets. */
class Memo {
  datasets = new Map<string, Promise<DatasetHandle>>();
  /** Synthetic screens being generated or checked, by root folder. */
  screens = new Map<string, Promise<void>>();
  /** Crop store paths, by store id. */
  stores = new Map<string, Promise<string>>();
  encoders = new Map<string, Promise<EncoderHandle>>();
  features = new Map<string, Promise<Features>>();
  crops = new Map<string, Promise<CropSet>>();
}

export function createStages(): Stages {
  const memo = new Memo();
  return { cell: (ctx, cell, onStage) => computeCell(ctx, memo, cell, onStage) };
}

function once<T>(map: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
  let p = map.get(key);
  if (!p) {
    p = make();
    map.set(key, p);
    // A failure is not cached: the next cell may succeed (e.g. after a transient error). A divergence is: seeded
    // training diverges again, so the encoder's other cells fail with the same error without retraining.
    p.catch((e) => {
      if (!(e instanceof QcbError && (e.code === 'QCB_DIVERGED' || e.code === 'QCB_NAN_LOSS'))) map.delete(key);
    });
  }
  return p;
}

/** Generates (synthetic) and crops a data set into a content-addressed store; reads its annotations. */
async function ensureDataset(ctx: StageContext, memo: Memo, name: string): Promise<DatasetHandle> {
  return once(memo.datasets, name, async () => {
    const ds: DatasetConfig = ctx.p.data.datasets[name];
    const id = datasetId(ctx.p, name).slice(0, 24);
    if (ds.format === 'synthetic') await ensureScreen(ctx, memo, name, ds);
    // An existing crop store is used where it is; others are cut into the cache. Data sets of one screen and crop
    // settings share a store id: in one process they share the promise too.
    const path = await once(memo.stores, id, async () => {
      if (ds.format === 'store') return resolve(ds.path!);
      const made = await ctx.cache.ensure('stores', id, (tmp) => extractDatasetCrops(ctx, name, ds, tmp), {
        onWait: () =>
          ctx.log.info(`waiting for another process to finish the crop store of data set '${name}'`, {
            stage: 'crops',
            claim: `${ctx.cache.path('stores', id)}.claim`,
          }),
      });
      return made.path;
    });
    const store = await openCropStore(path);
    const annotationsFile = annotationsFileOf(ctx.p, name);
    const annotations = readAnnotations(annotationsFile);
    const index = new Map(store.meta.map((m) => [m.crop_id, m.index]));
    const missing = annotations.filter((a) => !index.has(a.crop_id));
    if (missing.length)
      throw new QcbError(
        'QCB_ANNOTATIONS',
        `${missing.length} annotated crop(s) are not in the crop store of '${name}'`,
        {
          file: annotationsFile,
          key: 'crop_id',
          value: missing.slice(0, 3).map((a) => a.crop_id),
          fix: `annotate crops of this store (ids as in ${join(path, 'crops.csv')}); crops are cut at the nuclei centres, so use the same centres table and crop size`,
        },
      );
    return { name, store, annotations, annotationsFile, index };
  });
}

/**
 * Generates a synthetic data set's screen into its root folder, once across processes: shards and workers sharing
 * the folder claim it (`<root>.synth.claim` beside it), so one generates while the others wait and then find it
 * complete (synthesizeScreen reuses a finished screen). In one process, data sets sharing a root share the promise.
 */
async function ensureScreen(ctx: StageContext, memo: Memo, name: string, ds: DatasetConfig): Promise<void> {
  const root = resolve(ds.root!);
  const s = ds.synth;
  await once(memo.screens, root, () =>
    underClaim(
      `${root}.synth.claim`,
      async () => {
        await synthesizeScreen({
          domain: s.domain,
          out: root,
          plates: s.plates,
          wells: s.wells,
          sites: s.sites,
          seed: s.seed,
          width: s.width,
          height: s.height,
          abnormalFraction: s.abnormal_fraction,
          // The ground truth marks a crop abnormal when an artefact reaches its central half: with the default 128
          // that is exactly what a 64-pixel crop (the quick protocol's) shows.
          cropSize: s.crop_size,
        });
      },
      {
        onWait: () =>
          ctx.log.info(`waiting for another process to finish generating the synthetic screen of data set '${name}'`, {
            stage: 'data',
            root,
            claim: `${root}.synth.claim`,
          }),
      },
    ),
  );
}

/**
 * Loads (and for SSL / FractalDB, first trains) an encoder for cells of seed `cellSeed`; content-addressed in
 * cache/encoders. With `pretrain.per_seed` each seed has its own (encoderSeed), else one serves every seed.
 */
async function ensureEncoder(
  ctx: StageContext,
  memo: Memo,
  name: string,
  cellSeed: number,
  onStage: (s: string) => void,
): Promise<EncoderHandle> {
  const id = encoderId(ctx.p, name, cellSeed).slice(0, 24);
  const seed = encoderSeed(ctx.p, name, cellSeed) ?? 0;
  return once(memo.encoders, id, async () => {
    const entry = encoderFor(ctx.p, name);
    const base = {
      cropSize: ctx.p.data.crop_size,
      seed,
      threads: ctx.threads,
      log: ctx.log,
      cacheDir: join(ctx.cache.root, 'fractaldb'),
      settings: encoderSettingsOf(ctx.p, name),
    };
    if (isSslMethod(name)) {
      onStage(`pretraining ${name}`);
      const pre = await ensurePretrained(ctx, memo, name, id, seed);
      const eg = await entry.load({ ...base, pretrained: pre.onnx });
      return { eg, preprocess: eg.preprocess ?? entry.preprocess, pretrain: pre.recordId };
    }
    if (entry.kind === 'supervised-synthetic') onStage(`pretraining ${name} on generated fractals`);
    const eg = await entry.load(base);
    return { eg, preprocess: eg.preprocess ?? entry.preprocess };
  });
}

/**
 * The pretraining options a protocol gives an SSL method: every `pretrain.*` key (the method's hyperparameters with
 * `projector_dim`, the augmentation list, the schedule, the optimizer) and, with `knn_monitor`, the kNN monitor on
 * the pretraining data set's annotations (as `qcbench pretrain --monitor`), and the pretraining's `seed`
 * (encoderSeed: the cell's with `pretrain.per_seed`, else 0). What `encoderId` hashes.
 */
export async function sslPretrainOptions(
  p: Protocol,
  method: string,
  data: {
    source: SslCropSource;
    index: ReadonlyMap<string, number>;
    annotations: readonly Annotation[];
    annotationsFile: string;
  },
  seed = 0,
): Promise<Omit<PretrainOptions, 'outDir'>> {
  const monitor = p.pretrain.knn_monitor
    ? await knnMonitorFor(data.source, data.index, data.annotations, { file: data.annotationsFile })
    : undefined;
  return {
    method,
    hyper: sslHyper(p, method),
    source: data.source,
    epochs: p.pretrain.epochs,
    batchSize: p.pretrain.batch_size,
    lr: p.pretrain.lr,
    momentum: p.pretrain.momentum,
    weightDecay: p.pretrain.weight_decay,
    optimizer: p.pretrain.optimizer,
    schedule: p.pretrain.schedule,
    warmupEpochs: p.pretrain.warmup_epochs,
    augment: sslAugment(p.pretrain.augmentations),
    seed,
    maxImagesPerEpoch: p.pretrain.max_images_per_epoch ?? undefined,
    logEvery: p.pretrain.log_every,
    ...(monitor ? { monitor } : {}),
  };
}

/** SSL pretraining on the protocol's `pretrain_on` crops; the exported encoder is cached by content hash. */
async function ensurePretrained(
  ctx: StageContext,
  memo: Memo,
  method: string,
  id: string,
  seed: number,
): Promise<{ onnx: string; recordId: string }> {
  const p = ctx.p;
  const ds = await ensureDataset(ctx, memo, p.data.pretrain_on);
  const { path } = await ctx.cache.ensure(
    'encoders',
    id,
    async (tmp) => {
      // Training works in a stable folder so a killed run resumes from its last epoch checkpoint.
      const work = join(ctx.cache.root, 'pretrain-work', id);
      mkdirSync(work, { recursive: true });
      const store = ds.store;
      const source: SslCropSource = {
        count: store.count,
        channels: store.channels.length,
        size: store.size,
        id: `${store.path}#${store.hash}`,
        read: (indices) => store.readIndices([...indices]),
      };
      const res = await pretrain({
        ...(await sslPretrainOptions(
          p,
          method,
          {
            source,
            index: ds.index,
            annotations: ds.annotations,
            annotationsFile: ds.annotationsFile,
          },
          seed,
        )),
        outDir: work,
        threads: ctx.threads,
        log: ctx.log,
      });
      mkdirSync(tmp, { recursive: true });
      copyFileSync(res.onnx, join(tmp, 'encoder.onnx'));
      copyFileSync(res.recordFile, join(tmp, 'pretrain.json'));
    },
    { onWait: () => ctx.log.info(`waiting for another worker to finish pretraining ${method}`) },
  );
  // The pretraining record goes into the results directory too: reports read only results.
  const record = JSON.parse(readFileSync(join(path, 'pretrain.json'), 'utf8'));
  const recordId = id;
  if (!ctx.results.has('pretrain', `${recordId}.json`))
    ctx.results.writeJson('pretrain', `${recordId}.json`, { ...record, id: recordId, encoder: method });
  return { onnx: join(path, 'encoder.onnx'), recordId };
}

/** Crops of the given annotation rows, in memory (cached per data set and row list). */
async function cropsOf(memo: Memo, ds: DatasetHandle, rows: Annotation[]): Promise<CropSet> {
  const key = `${ds.name}:${contentHash(rows.map((r) => r.crop_id)).slice(0, 16)}`;
  return once(memo.crops, key, async () => {
    const idx = rows.map((r) => ds.index.get(r.crop_id)!);
    const data = await ds.store.readIndices(idx);
    return { data, n: idx.length, channels: ds.store.channels.length, size: ds.store.size };
  });
}

/**
 * Features of every annotated crop of a data set through a frozen encoder, content-addressed by encoder, crop store
 * and crop list (`cache/features/<id>`: features.f32, N×D float32 little-endian, and meta.json), so kNN, the linear
 * probe and the quadratic head of every budget and seed, and a resumed run, share one extraction.
 */
async function ensureFeatures(
  ctx: StageContext,
  memo: Memo,
  encoder: string,
  cellSeed: number,
  enc: EncoderHandle,
  ds: DatasetHandle,
): Promise<Features> {
  const cropIds = ds.annotations.map((a) => a.crop_id);
  // runtime.precision int8 enters the id only when set, so fp32 features keep the ids they always had
  const int8 = ctx.p.runtime.precision === 'int8';
  const id = contentHash({
    v: STAGE_VERSIONS.features,
    encoder: encoderId(ctx.p, encoder, cellSeed),
    data: datasetId(ctx.p, ds.name),
    crops: contentHash(cropIds),
    ...(int8 ? { precision: 'int8' } : {}),
  }).slice(0, 24);
  return once(memo.features, id, async () => {
    const { path } = await ctx.cache.ensure(
      'features',
      id,
      async (tmp) => {
        const f = await extractFeatures(enc.eg, enc.preprocess, await cropsOf(memo, ds, ds.annotations), {
          threads: ctx.threads,
          log: ctx.log,
          label: `features ${encoder} ${ds.name}`,
          ...(int8 ? { precision: 'int8' as const } : {}),
        });
        mkdirSync(tmp, { recursive: true });
        writeFileAtomic(join(tmp, 'features.f32'), f32Bytes(f.data));
        writeJsonAtomic(join(tmp, 'meta.json'), {
          encoder,
          dataset: ds.name,
          rows: f.rows,
          cols: f.cols,
          ...(int8 ? { precision: 'int8' } : {}),
          crop_ids: cropIds,
        });
      },
      { onWait: () => ctx.log.info(`waiting for another worker to finish the features of ${encoder} on ${ds.name}`) },
    );
    const meta = JSON.parse(readFileSync(join(path, 'meta.json'), 'utf8')) as { rows: number; cols: number };
    const data = readF32(join(path, 'features.f32'));
    if (data.length !== meta.rows * meta.cols)
      throw new QcbError(
        'QCB_FILE_TRUNCATED',
        `cached features ${path} hold ${data.length} values, expected ${meta.rows}×${meta.cols}`,
        {
          file: path,
          fix: 'delete the folder: the features are extracted again',
        },
      );
    return { data, rows: meta.rows, cols: meta.cols };
  });
}

async function computeCell(
  ctx: StageContext,
  memo: Memo,
  cell: CellPlan,
  onStage: (stage: string) => void,
): Promise<CellOutcome> {
  const { key } = cell;
  const timing: Record<string, number> = {};
  const t = () => Date.now();
  let t0 = t();
  onStage('data');
  const trainDs = await ensureDataset(ctx, memo, key.train_set);
  const testDs = key.test_set === key.train_set ? trainDs : await ensureDataset(ctx, memo, key.test_set);
  timing.data = (t() - t0) / 1000;

  const trainPool = trainDs.annotations.filter((a) => a.split === 'train');
  const trainRows = sampleLabelBudget(trainPool, key.budget, key.seed, trainDs.annotationsFile);
  const testRows = testDs.annotations.filter((a) => a.split === 'test');
  if (testRows.length === 0)
    throw new QcbError('QCB_ANNOTATIONS', `data set '${testDs.name}' has no test annotations`, {
      file: testDs.annotationsFile,
      key: 'split',
      fix: 'mark some annotated crops as split=test',
    });

  t0 = t();
  onStage('encoder');
  const enc = await ensureEncoder(ctx, memo, key.encoder, key.seed, onStage);
  timing.encoder = (t() - t0) / 1000;

  const task = resolveTask(key.task);
  const [trainCrops, testCrops] = await Promise.all([
    cropsOf(memo, trainDs, trainRows),
    cropsOf(memo, testDs, testRows),
  ]);
  // Rows of an annotation subset in the data set's feature matrix (every annotated crop, in file order).
  const pos = (ds: DatasetHandle, rows: Annotation[]) => {
    const at = new Map(ds.annotations.map((a, i) => [a.crop_id, i]));
    return rows.map((r) => at.get(r.crop_id)!);
  };
  const splits = { train: { ds: trainDs, rows: trainRows }, test: { ds: testDs, rows: testRows } };
  const run = await runCell({
    task,
    eg: enc.eg,
    preprocess: enc.preprocess,
    train: { crops: trainCrops, labels: trainRows.map((a) => a.label), ids: trainRows.map((a) => a.crop_id) },
    test: { crops: testCrops, rows: testRows },
    seed: key.seed,
    // the plan's settings: `tasks.<task>` with the evaluation block's `task_settings` over it (what the id hashes)
    settings: cellTaskSettings(cell),
    lineSearch: task.lineSearch ? ctx.p.tasks.line_search : undefined,
    bootstrap: ctx.p.metrics.bootstrap,
    threads: ctx.threads,
    log: ctx.log,
    onStage,
    // Features of every annotated crop of a data set are extracted once per encoder and cached; a split takes its rows.
    features: async (split) => {
      const { ds, rows } = splits[split];
      return selectFeatureRows(await ensureFeatures(ctx, memo, key.encoder, key.seed, enc, ds), pos(ds, rows));
    },
    // The trained model is its own stage, keyed by trainId: cells that differ only in test set (the domain shift)
    // evaluate the model the first of them trained, and a resumed run reads it back.
    trainModel: async (context) => {
      const { model, computed } = await ensureModel(ctx.cache, { task: key.task, trainId: cell.trainId }, context, {
        onWait: () => ctx.log.info(`waiting for another worker to finish training model ${cell.trainId}`),
      });
      // Logged once the model is in place, so a model appears in the log at most once however runs are killed.
      if (computed)
        ctx.log.info(`trained ${key.task} on ${key.encoder} n=${key.budget} seed=${key.seed} ${key.train_set}`, {
          stage: 'train',
          train: cell.trainId,
          cell: cell.id,
          seconds: model.record.seconds,
        });
      else
        ctx.log.debug(`reusing trained ${key.task} model ${cell.trainId}`, {
          stage: 'train',
          train: cell.trainId,
          cell: cell.id,
        });
      // Predictions come from the reloaded artifact whether or not this process trained it.
      return {
        predict: (input) => predictModel(model, input, { threads: ctx.threads }),
        settings: model.record.settings,
        lineSearch: model.record.line_search,
        lossCurve: model.record.loss_curve,
      };
    },
  });
  Object.assign(timing, run.timing);
  const { metrics, predictions } = run;
  const montage = await writeMontage(ctx, cell, testCrops, predictions);
  return { metrics, predictions, pretrain: enc.pretrain, timing, ...(montage ? { montage } : {}) };
}

/** Misclassified test crops (at most 32: false negatives first) as a PNG for a person to look at. */
async function writeMontage(
  ctx: StageContext,
  cell: CellPlan,
  crops: CropSet,
  predictions: Prediction[],
): Promise<string | undefined> {
  const wrong = predictions
    .map((p, i) => ({ p, i }))
    .filter(({ p }) => p.pred !== p.label)
    .sort((a, b) => (a.p.label === b.p.label ? a.i - b.i : a.p.label === 'abnormal' ? -1 : 1))
    .slice(0, 32);
  if (wrong.length === 0) return undefined;
  const sub = selectCrops(
    crops,
    wrong.map((w) => w.i),
  );
  const cols = Math.min(8, wrong.length);
  const png = await montagePng(sub.data, sub.n, sub.channels, sub.size, cols);
  const rel = `montages/${cell.id}.png`;
  writeFileAtomic(join(ctx.p.results, rel), png);
  return rel;
}

/** A cell's task settings as planned (src/runner/cells.ts expandCells), without the line search's own block. */
function cellTaskSettings(cell: CellPlan): Record<string, unknown> {
  const { line_search: _l, ...own } = cell.settings.task as Record<string, unknown>;
  return own;
}
