/**
 * `qcbench qc train --encoder NAME|FILE --task knn|linear|finetune --annotations FILE --store STORE --out MODEL.onnx`:
 * trains the chosen encoder + head on the annotations' train split and exports one self-contained ONNX QC classifier
 * with its JSON sidecar (src/qc/train.ts, src/qc/model.ts).
 */
import type { OperatingPoint } from '../qc/calibrate.js';
import { PRECISIONS, type Precision } from '../engine/quantize/index.js';
import { trainQcModel } from '../qc/train.js';
import { choiceArg, intArg, parseCommandArgs, requireOptions, unitArg } from './args.js';
import { CALIBRATION_OPTIONS, CALIBRATION_USAGE, calibrationArgs } from './qc-quantize.js';
import { applyProviderOption, type Command, PROVIDER_OPTION } from './types.js';

const usage = `qcbench qc train --encoder NAME|FILE.onnx --task knn|linear|finetune --annotations FILE --store STORE
                 --out MODEL.onnx [--seed S] [--epochs N] [--k N] [--channels A,B,C] [--artefacts T,…]
                 [--max-fpr F | --threshold T]
                 [--threads N] [--precision fp32|int8] [--calibration-crops N] [--calibration minmax|percentile]

Trains the encoder chosen with the benchmark and a downstream head (Masud et al. 2022 §3.3: kNN with k = 5, a
linear layer on the frozen encoder, or fine-tuning) on the train split of the annotation file, and exports ONE
self-contained ONNX classifier that onnxruntime in any language runs:

  input   crops           N×C×S×S uint8 (the crop store's channels and crop size, raw 0…255 values)
  outputs abnormal_score  N      (probability / kNN vote share of the abnormal class)
          probabilities   N×2    (normal, abnormal)
          logits          N×2    (linear and fine-tuned heads only)

Preprocessing (channel selection, /255, ImageNet-style mean/std) is inside the graph; the kNN training bank is
embedded (distances as MatMul, TopK, label vote). cp-quality (CellProfiler's image-quality measures, the incumbent)
is computed inside the graph too and z-scored with the training crops' statistics: knn and linear only. A crop is abnormal when abnormal_score > threshold. Beside the model,
MODEL.json records encoder, task, crop size, channels, preprocessing, classes, threshold, the validation metrics
of the exported model on the test split, the data hashes and the qcbench version.

Options:
  --seed S          seed of initialisations and shuffling (default 0)
  --epochs N        training epochs (linear: default 150, finetune: default 50; paper §3.3)
  --k N             neighbours of the kNN (default 5)
  --channels A,B,C  store channels fed as R,G,B (default: all of a 1/3-channel store, else Ph_golgi,Mito,Hoechst)
  --artefacts T,…   a detector of these artefact types (the annotations' artefact_type, e.g. blur for a focus
                    model): other abnormal crops are left out, so "abnormal" means these types. Default: all
  --max-fpr F       calibrate the threshold: hold out a stratified 25% of the train split, train on the rest, and
                    take the lowest threshold flagging at most F of its normal crops (default 0.05). Needs
                    ⌈1/F⌉ normal validation crops: fewer is an error with --max-fpr (exit 2), and threshold 0.5 on
                    the whole train split with the default. The operating point (threshold, FPR and recall on the
                    validation and test splits) goes to MODEL.json; qc apply uses it.
  --threshold T     decision threshold stored in the sidecar instead (no calibration)
  --pretrained FILE encoder.onnx exported by \`qcbench pretrain\` (SSL encoders)
  --weights DIR     ImageNet weights folder
  --threads N       onnxruntime threads (default: all cores)
  --precision P     fp32 (default) or int8: the exported model statically quantised (as \`qcbench qc quantize\`),
                    calibrated on a seeded sample of the training crops; MODEL.json gives its test metrics next to
                    the fp32 model's
${CALIBRATION_USAGE}
  --provider P      onnxruntime execution provider: cpu (default) or cuda (README "GPU")
  --json            print the sidecar as JSON

Exit codes: 0 done, 1 run failure, 2 bad input.`;

function parse(args: string[]) {
  return parseCommandArgs(
    {
      args,
      options: {
        encoder: { type: 'string' },
        task: { type: 'string' },
        annotations: { type: 'string' },
        store: { type: 'string' },
        out: { type: 'string' },
        seed: { type: 'string' },
        epochs: { type: 'string' },
        k: { type: 'string' },
        channels: { type: 'string' },
        artefacts: { type: 'string' },
        threshold: { type: 'string' },
        'max-fpr': { type: 'string' },
        pretrained: { type: 'string' },
        weights: { type: 'string' },
        threads: { type: 'string' },
        precision: { type: 'string' },
        ...CALIBRATION_OPTIONS,
        ...PROVIDER_OPTION,
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    },
    'qc train',
  );
}

export const command: Command = {
  name: 'train',
  summary: 'train the chosen encoder + head and export one self-contained ONNX QC classifier',
  usage,
  async run(args, ctx) {
    const { values } = parse(args);
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    await applyProviderOption(values.provider);
    requireOptions(
      values,
      ['encoder', 'task', 'annotations', 'store', 'out'],
      'qcbench qc train --encoder resnet18 --task linear --annotations annotations.csv --store crops/ --out qc.onnx',
    );
    const r = await trainQcModel({
      encoder: values.encoder!,
      task: values.task!,
      annotations: values.annotations!,
      store: values.store!,
      out: values.out!,
      seed: intArg(values.seed, '--seed', 0),
      epochs: intArg(values.epochs, '--epochs', 1),
      k: intArg(values.k, '--k', 1),
      channels: values.channels
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      artefacts: values.artefacts
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      threshold: unitArg(values.threshold, '--threshold'),
      maxFpr: values['max-fpr'] === undefined ? undefined : Number(values['max-fpr']),
      pretrained: values.pretrained,
      weightsDir: values.weights,
      threads: intArg(values.threads, '--threads', 1),
      precision: choiceArg<Precision>(values.precision, '--precision', PRECISIONS),
      calibration: calibrationArgs(values),
      log: ctx.log,
    });
    if (values.json) process.stdout.write(`${JSON.stringify(r.meta, null, 2)}\n`);
    else {
      const m = r.meta.validation.metrics;
      process.stdout.write(
        `${r.model}\n${r.sidecar}\n` +
          (r.meta.artefacts ? `abnormal means: ${r.meta.artefacts.join(', ')} (other artefacts left out)\n` : '') +
          (m
            ? `validation (${r.meta.validation.n_test} test crops${r.meta.precision === 'int8' ? ', int8' : ''}): accuracy ${m.accuracy.toFixed(1)}  F1 ${m.f1.toFixed(1)}  AUC ${m.auc.toFixed(1)}\n` +
              (r.meta.validation.fp32_metrics
                ? `fp32 model: F1 ${r.meta.validation.fp32_metrics.f1.toFixed(1)}  AUC ${r.meta.validation.fp32_metrics.auc.toFixed(1)}\n`
                : '')
            : 'no validation: the test split lacks normal or abnormal crops\n') +
          operatingPointLine(r.meta.operating_point),
      );
    }
    return 0;
  },
};

function operatingPointLine(op: OperatingPoint | undefined): string {
  if (!op) return '';
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const head =
    op.source === 'calibrated'
      ? `threshold ${op.threshold.toFixed(4)} (calibrated for FPR ≤ ${op.max_fpr} on ${op.validation?.normal} normal validation crops)`
      : `threshold ${op.threshold} (${op.source === 'given' ? '--threshold' : (op.note ?? 'default')})`;
  return `${head}; test split: FPR ${pct(op.test?.fpr)}, recall ${pct(op.test?.recall)}\n`;
}
