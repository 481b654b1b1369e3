/**
 * The results directory: the only thing reports read. Everything a report shows is in these records, so a report can
 * always be rebuilt from results, never the other way.
 *
 * Layout of a results directory (`results/<protocol-name>/` by default):
 * ```
 * run.json                 RunRecord: the resolved protocol and the list of cell ids (written at start)
 * cells/<cellId>.json      CellRecord: one per (encoder × task × budget × seed × test set), written atomically
 * pretrain/<hash>.json     PretrainRecord: SSL / supervised pretraining loss curves and throughput
 * montages/<cellId>.png    misclassified crops of a cell (optional)
 * log.jsonl                JSON-lines log of the run
 * ```
 */

/** Schema tags, bumped when a record's meaning changes. */
export const CELL_SCHEMA = 'qcbench.cell/1';
export const RUN_SCHEMA = 'qcbench.run/1';
export const PRETRAIN_SCHEMA = 'qcbench.pretrain/1';

/**
 * How an encoder was obtained, in the order the report lists them: `tl` ImageNet transfer learning (the paper's TL
 * rows), `ssl` self-supervised on the screen's own crops, `supervised-synthetic` supervised pretraining on generated
 * images (FractalDB), `control` untrained (random init), `scratch` trained from scratch on the annotations (the
 * second-order CNN and its first-order twin), `handcrafted` hand-made measures with no network (CellProfiler's
 * image-quality metrics, the incumbent QC of screening labs).
 */
export const ENCODER_KINDS = ['tl', 'ssl', 'supervised-synthetic', 'control', 'scratch', 'handcrafted'] as const;
export type EncoderKind = (typeof ENCODER_KINDS)[number];

/**
 * A downstream task's name: a key of src/downstream/registry.ts (paper §3.3 plus the second-order head). Results
 * store it as written; readers take unknown names as they come, so a new task reaches the report.
 */
export type TaskName = string;

/** The coordinates of one benchmark cell. */
export interface CellKey {
  /** Registry name of the encoder or SSL method (`vgg16`, `simclr`, `random-resnet18`, …). */
  encoder: string;
  task: TaskName;
  /** Number of annotated training images (label budget). */
  budget: number;
  seed: number;
  /** Data set the annotated training images come from (`bbbc022`, or a synthetic domain). */
  train_set: string;
  /** Data set the test images come from (`bbbc022` in-domain, `bbbc021` domain shift). */
  test_set: string;
}

/** Weighted-average metrics in percent (paper §3.4), with bootstrap 95% intervals. */
export interface CellMetrics {
  accuracy: number;
  f1: number;
  auc: number;
  n_train: number;
  n_test: number;
  /** Bootstrap 95% interval of each metric, in percent. */
  ci95?: { accuracy: [number, number]; f1: [number, number]; auc: [number, number] };
  /** Rows = true class, columns = predicted class, in `classes` order. */
  confusion: number[][];
  classes: string[];
  /** Recall of the abnormal class per artefact type, where types are known (percent). */
  recall_by_type?: Record<string, { recall: number; n: number }>;
}

/** One test prediction. */
export interface Prediction {
  crop_id: string;
  label: string;
  pred: string;
  /** Score of the abnormal class in [0, 1]. */
  score: number;
  artefact_type?: string;
}

/** True when there are predictions and all of them are of one class (a constant predictor: a degenerate cell). */
export function predictsOneClass(predictions: readonly Prediction[] | undefined): boolean {
  if (!predictions || predictions.length === 0) return false;
  return predictions.every((p) => p.pred === predictions[0].pred);
}

/** A finished, failed or skipped cell. */
export interface CellRecord {
  schema: typeof CELL_SCHEMA;
  /** Content hash of the cell's resolved settings and its inputs' hashes. */
  id: string;
  key: CellKey;
  /** Display name of the encoder as in the paper's tables where it has one (`VGG16`, `Barlow Twins`). */
  encoder_label: string;
  encoder_kind: EncoderKind;
  status: 'done' | 'failed' | 'skipped';
  metrics?: CellMetrics;
  predictions?: Prediction[];
  /** For failed cells: the error (code, message, fix). */
  error?: { code: string; message: string; fix?: string };
  /**
   * For skipped cells: why, and the command that fixes it (e.g. missing ImageNet weights). A task that does not apply
   * to the encoder (fine-tuning hand-made measures) is skipped with a reason starting `n/a` and no fix.
   */
  skip?: { reason: string; fix_command?: string };
  /** Pretraining record hash (pretrain/<hash>.json) this cell's encoder came from, if any. */
  pretrain?: string;
  /** Relative path of the misclassified-crops montage, if written. */
  montage?: string;
  /**
   * True for a done cell whose test predictions are all one class (see {@link predictsOneClass}): its metrics are
   * chance-like by construction (a constant predictor), so reports mark the cell and leave it out of the mean ± sd
   * instead of averaging it in. Absent otherwise.
   */
  degenerate?: boolean;
  /** Wall-clock seconds per stage. */
  timing?: Record<string, number>;
  /** Settings of the cell after defaults were filled (task hyperparameters, encoder source…). */
  settings: Record<string, unknown>;
  finished_at: string;
}

/** Pretraining of one encoder: the loss curve (SSL paper §3.2) and throughput. */
export interface PretrainRecord {
  schema: typeof PRETRAIN_SCHEMA;
  id: string;
  encoder: string;
  method: string;
  settings: Record<string, unknown>;
  /** One point per logged step. */
  loss: { epoch: number; step: number; loss: number; lr: number }[];
  /** Optional kNN monitor on the annotated set, per epoch (percent). */
  knn_monitor?: { epoch: number; accuracy: number }[];
  images_per_second: number;
  seconds: number;
  /** Path of the exported inference ONNX encoder (relative to the results directory or absolute). */
  onnx: string;
  finished_at: string;
}

/** Written at the start of a run: what the run is and which cells it has. */
export interface RunRecord {
  schema: typeof RUN_SCHEMA;
  /**
   * `pretrain_per_seed`: whether each seed pretrained and initialised its own encoders (protocol `pretrain.per_seed`)
   * or all seeds shared one; absent in records written before the key existed, which always shared one.
   */
  protocol: { name: string; file: string; version: number; hash: string; pretrain_per_seed?: boolean };
  /** The resolved protocol (defaults filled, `extends` applied). */
  resolved: Record<string, unknown>;
  cells: { id: string; key: CellKey }[];
  started_at: string;
  qcbench_version: string;
}
