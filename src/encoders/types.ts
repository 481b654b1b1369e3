/**
 * What an encoder is to the rest of qcbench: a name, how it was obtained (kind), its feature width, the pixel
 * normalisation it expects, and a way to get its graph — input `input` N×3×S×S float32 → output `features` N×D —
 * for feature extraction (kNN, linear probe) and for fine-tuning (trainable parameters, BN nodes).
 */
import type { Graph } from '../engine/ir/graph.js';
import { QcbError } from '../errors.js';
import type { Spec } from '../protocol/spec.js';
import type { EncoderKind } from '../results/schema.js';
import type { Logger } from '../util/log.js';
import type { CropSet, Features } from './features.js';

/** Per-channel normalisation applied to crops scaled to [0, 1]: x' = (x − mean[c]) / std[c]. */
export interface Preprocess {
  mean: number[];
  std: number[];
}

/** torchvision/timm ImageNet statistics (RGB): every ImageNet-pretrained encoder expects them. */
export const IMAGENET_PREPROCESS: Preprocess = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** An encoder graph ready to run or to fine-tune, or an encoder computed by hand ({@link handMadeEncoder}). */
export interface EncoderGraph {
  /**
   * Input `input` N×3×S×S float32 → output `features` N×D (the engine's IR; parameters are initializers). An encoder
   * computed by hand has no network: reading its `graph` throws QCB_NOT_APPLICABLE (see {@link handMadeEncoder}).
   */
  graph: Graph;
  /**
   * Features computed in JavaScript instead of by the graph (hand-made measures): crops N×C×S×S (any C) → N×D.
   * Feature extraction calls it when present.
   */
  compute?: (crops: CropSet) => Features;
  /**
   * True when a cell z-scores the features, column by column, with the mean and sd of its training crops (never its
   * test crops) before its head sees them: for features on unrelated scales (src/downstream/cell.ts).
   */
  standardise?: boolean;
  /** Feature width D as the graph really gives it (may differ from the registry's nominal width for reduced models). */
  dim: number;
  /**
   * Trainable parameters for fine-tuning (names of initializers). Undefined: every float initializer of rank ≥ 1
   * the features depend on (BN running statistics excluded), which is right for imported ONNX files.
   */
  params?: string[];
  /** BatchNormalization node names (trained in training mode when fine-tuning). */
  bnNodes?: string[];
  /**
   * Spatial input size the graph is fixed to, when it cannot take the crop size (an export with hard-coded
   * reshapes): crops are then resized to this size before they are fed. Undefined: the graph takes S×S crops.
   */
  inputSize?: number;
  /** Normalisation recorded with the weights (an export's metadata), overriding the registry entry's. */
  preprocess?: Preprocess;
  /** Where the weights came from (file path and hash, engine builder and seed, …): recorded in results. */
  source: Record<string, unknown>;
}

/** Options every encoder loader receives. */
export interface EncoderLoadOptions {
  /** Side S of the square crops fed to the encoder (protocol `data.crop_size`). */
  cropSize: number;
  /** Seed for encoders that are initialised randomly or trained here (random control, FractalDB). */
  seed: number;
  /** Folder of pretrained weights (default `QCBENCH_WEIGHTS` or `~/.cache/qcbench/weights`). */
  weightsDir?: string;
  /** Cache folder for encoders trained here (FractalDB), default `<weightsDir>/../fractaldb` → see fractaldb.ts. */
  cacheDir?: string;
  /** Exported SSL encoder (`encoder.onnx` from `qcbench pretrain`) for the SSL methods' names. */
  pretrained?: string;
  /** onnxruntime intra-op threads for any training the loader does. */
  threads?: number;
  log?: Logger;
  /** Encoder-specific settings (e.g. FractalDB's categories/epochs), from the protocol. */
  settings?: Record<string, unknown>;
}

/** A registry entry: everything the reports and the runner need before any weights are loaded. */
export interface Encoder {
  name: string;
  /** Display label (the paper's table name where it has one). */
  label: string;
  kind: EncoderKind;
  /** Nominal feature width D of the pooled output. */
  dim: number;
  preprocess: Preprocess;
  description: string;
  /** Weights the encoder reads from the weights directory (transfer learning: `weights fetch <name>`). */
  weights?: string;
  /**
   * The encoder's protocol keys, `encoder_settings.<name>.<key>`, with their bounds (as a downstream task's
   * `settings`). No spec default: an unset key takes the encoder's own default, and only written keys enter the
   * encoder's identity (src/runner/cells.ts encoderId), so a protocol that writes none keeps its ids. They reach
   * `load` as `EncoderLoadOptions.settings`.
   */
  settings?: Record<string, Spec>;
  /**
   * Builds or loads the graph. Throws QCB_WEIGHTS_MISSING (transfer learning without weights; the runner reports the
   * cell as skipped with the fix command), never falls back to random weights under a pretrained name.
   */
  load(opts: EncoderLoadOptions): Promise<EncoderGraph>;
}

/**
 * The coded n/a of a use that needs a network (fine-tuning, a QC model, quantisation) on an encoder computed by hand.
 * Its message starts `n/a`: the runner records the cell as skipped with it (src/runner/run.ts).
 */
export function notApplicable(encoder: string, use: string): QcbError {
  return new QcbError(
    'QCB_NOT_APPLICABLE',
    `n/a: ${use} does not apply to ${encoder}: its features are computed by hand, with no network to train or export`,
    {
      key: '--encoder',
      value: encoder,
      fix: 'use it with the frozen-feature tasks (knn, linear), or choose an encoder with a network',
    },
  );
}

/**
 * The encoder graph of features computed by hand (`compute`). Its `graph` is not enumerable (copies and JSON leave it
 * out). Without `network` there is no graph: reading it throws {@link notApplicable}, so every use that needs one
 * (exporting a QC model, quantising, verifying) fails with a coded n/a. With `network` — the same measures written as
 * an ONNX graph (`input` N×3×S×S → `features`), built on first read — a QC model can embed them. Either way nothing
 * is trained: fine-tuning is n/a because `compute` is set (src/downstream/cell.ts).
 */
export function handMadeEncoder(
  name: string,
  eg: Omit<EncoderGraph, 'graph' | 'compute'> & { compute: (crops: CropSet) => Features; network?: () => Graph },
): EncoderGraph {
  const { network, ...rest } = eg;
  const out = { ...rest } as EncoderGraph;
  let built: Graph | undefined;
  Object.defineProperty(out, 'graph', {
    enumerable: false,
    get: () => {
      if (!network) throw notApplicable(name, 'a use that needs its network (fine-tuning, a QC model, quantisation)');
      built ??= network();
      return built;
    },
  });
  return out;
}
