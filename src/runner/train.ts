/**
 * The downstream training stage as a content-addressed artifact: a model trained once per `trainId` (encoder, task,
 * budget, seed, training set, task settings — src/runner/cells.ts) and evaluated on every test set that asks for it,
 * so the domain-shift cell scores the very model the in-domain cell trained, and a resumed run does not retrain.
 *
 * Training, prediction and the model's own files are the task's (src/downstream/task.ts: `train`, `predict`,
 * `save`, `load`; the same code the cell pipeline src/downstream/cell.ts `runCell` trains in memory). This stage
 * adds the claim (src/runner/cache.ts `ensure`: one trainer across workers and shards, an atomic rename into place)
 * and the record. On disk, `<cache>/models/<trainId>/`:
 *   model.json   ModelRecord: task, settings used (line-search choice applied), line search, loss curve, and the
 *                task's saved JSON under its name (linear weights, quadratic head, kNN labels and k, fine-tuned
 *                model's input size and normalisation)
 *   bank.f32     kNN only: the training features, N×D float32 little-endian (the neighbour bank)
 *   model.onnx   fine-tuning only: the inference graph `input` N×3×T×T → `logits` N×2 (the engine's export)
 *
 * Predictions are always made from the reloaded artifact, so a cell's result does not depend on whether its model
 * was trained in this process.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DOWNSTREAM_TASKS, type RegisteredTask, resolveTask } from '../downstream/registry.js';
import type { LineSearchResult } from '../downstream/line-search.js';
import type { DownstreamTask, PredictInput, TaskPrediction, Trained, TrainContext } from '../downstream/task.js';
import { QcbError } from '../errors.js';
import { writeJsonAtomic } from '../util/fs.js';
import type { ArtifactStore } from './cache.js';
import type { TaskName } from '../results/schema.js';

export const MODEL_SCHEMA = 'qcbench.model/1';

/** What model.json holds: the training's record, and the task's saved JSON under the task's name. */
export type ModelRecord = {
  schema: typeof MODEL_SCHEMA;
  task: TaskName;
  train_id: string;
  n_train: number;
  train_crop_ids: string[];
  /** Settings actually used (defaults filled, line-search choice applied). */
  settings: Record<string, unknown>;
  line_search?: { best: number; scores: LineSearchResult['scores']; n_val: number };
  loss_curve?: number[];
  /** Seconds to train and save. */
  seconds: number;
} & { [K in RegisteredTask]?: ReturnType<(typeof DOWNSTREAM_TASKS)[K]['save']> };

/** What training needs: the task's training context (frozen tasks: with the N×D training features) and the id. */
export interface TrainInputs extends TrainContext {
  task: TaskName;
  trainId: string;
}

/** A model read back from its artifact, ready to predict. */
export interface LoadedModel {
  record: ModelRecord;
  dir: string;
  task: DownstreamTask;
  model: unknown;
}

/**
 * Writes a trained model into the directory `dir` (created): the task's files and model.json.
 * @param info the trainId, the N training crop ids and the seconds the training took
 */
export function saveModel(
  dir: string,
  task: DownstreamTask,
  trained: Trained<unknown>,
  info: { trainId: string; ids: readonly string[]; seconds: number },
): ModelRecord {
  const t0 = Date.now();
  mkdirSync(dir, { recursive: true });
  const saved = task.save(trained.model, dir, { metadata: { 'qcbench.train_id': info.trainId } });
  const ls = trained.lineSearch;
  const rec: ModelRecord = {
    schema: MODEL_SCHEMA,
    task: task.name,
    train_id: info.trainId,
    n_train: info.ids.length,
    train_crop_ids: [...info.ids],
    settings: trained.settings,
    line_search: ls ? { best: ls.best, scores: ls.scores, n_val: ls.valRows.length } : undefined,
    loss_curve: trained.lossCurve,
    seconds: 0,
    [task.name]: saved,
  };
  rec.seconds = info.seconds + (Date.now() - t0) / 1000;
  writeJsonAtomic(join(dir, 'model.json'), rec);
  return rec;
}

/**
 * Trains the model of `inp.task` on the training split and writes its artifact into the directory `dir` (created).
 * @throws what the task's training throws (QCB_NAN_LOSS, QCB_ANNOTATIONS for too few images, …)
 */
export async function trainModel(inp: TrainInputs, dir: string): Promise<ModelRecord> {
  const task = resolveTask(inp.task);
  const t0 = Date.now();
  const trained = await task.train(inp);
  return saveModel(dir, task, trained, {
    trainId: inp.trainId,
    ids: inp.train.ids,
    seconds: (Date.now() - t0) / 1000,
  });
}

/** Reads a model artifact written by `saveModel` / `trainModel`. @throws QCB_INTERNAL for another schema */
export function loadModel(dir: string): LoadedModel {
  const file = join(dir, 'model.json');
  const record = JSON.parse(readFileSync(file, 'utf8')) as ModelRecord;
  const fix = 'delete the model folder: it is retrained';
  if (record.schema !== MODEL_SCHEMA)
    throw new QcbError('QCB_INTERNAL', `model ${dir} has schema ${record.schema}, expected ${MODEL_SCHEMA}`, {
      file,
      fix,
    });
  const task = resolveTask(record.task);
  const saved = record[task.name as RegisteredTask];
  if (saved === undefined)
    throw new QcbError('QCB_INTERNAL', `model ${dir} holds no ${task.name} classifier`, { file, fix });
  return { record, dir, task, model: task.load(dir, saved) };
}

/** Predictions of a loaded model: frozen-encoder tasks score `input.features` (M×D), fine-tuning `input.crops`. */
export function predictModel(
  m: LoadedModel,
  input: PredictInput,
  o: { threads?: number } = {},
): Promise<TaskPrediction> {
  return m.task.predict(m.model, input, o);
}

/**
 * The model `<cache>/models/<trainId>`, trained unless another run, worker or shard has trained it or is training it
 * (then waited for), and loaded.
 * @param context the training context, asked for only when this call trains
 * @returns the loaded model, and whether this call trained it
 */
export async function ensureModel(
  cache: ArtifactStore,
  key: { task: TaskName; trainId: string },
  context: () => Promise<TrainContext>,
  o: { onWait?: () => void } = {},
): Promise<{ model: LoadedModel; computed: boolean }> {
  const { path, computed } = await cache.ensure(
    'models',
    key.trainId,
    async (tmp) => {
      await trainModel({ ...(await context()), ...key }, tmp);
    },
    { onWait: o.onWait },
  );
  return { model: loadModel(path), computed };
}
