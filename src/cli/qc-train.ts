/**
 * `qcbench qc train --encoder NAME|FILE --task knn|linear|finetune --annotations FILE --store STORE --out MODEL.onnx`:
 * trains the chosen encoder + head on the annotations' train split and exports one self-contained ONNX QC classifier
 * with its JSON sidecar (src/qc/train.ts, src/qc/model.ts).
 */
import { PRECISIONS, type Precision } from '../engine/quantize/index.js';
import { trainQcModel } from '../qc/train.js';
import { choiceArg, intArg, parseCommandArgs, requireOptions, unitArg } from './args.js';
import { CALIBRATION_OPTIONS, CALIBRATION_USAGE, calibrationArgs } from './qc-quantize.js';
import { applyProviderOption, type Command, PROVIDER_OPTION } from './types.js';

const usage = `qcbench qc train --encoder NAME|FILE.onnx --task knn|linear|finetune --annotations FILE --store STORE
                 --out MODEL.onnx [--seed S] [--epochs N] [--k N] [--channels A,B,C] [--threshold T] [--threads N]
                 [--precision fp32|int8] [--calibration-crops N] [--calibration minmax|percentile]

Trains the encoder chosen with the benchmark and a downstream head (Masud et al. 2022 §3.3: kNN with k = 5, a
linear layer on the frozen encoder, or fine-tuning) on the train split of the annotation file, and exports ONE
self-contained ONNX classifier that onnxruntime in any language runs:

  input   crops           N×C×S×S uint8 (the crop store's channels and crop size, raw 0…255 values)
  outputs abnormal_score  N      (probability / kNN vote share of the abnormal class)
          probabilities   N×2    (normal, abnormal)
          logits          N×2    (linear and fine-tuned heads only)

Preprocessing (channel selection, /255, ImageNet-style mean/std) is inside the graph; the kNN training bank is
embedded (distances as MatMul, TopK, label vote). A crop is abnormal when abnormal_score > threshold. Beside the model,
MODEL.json records encoder, task, crop size, channels, preprocessing, classes, threshold, the validation metrics
of the exported model on the test split, the data hashes and the qcbench version.

Options:
  --seed S          seed of initialisations and shuffling (default 0)
  --epochs N        training epochs (linear: default 150, finetune: default 50; paper §3.3)
  --k N             neighbours of the kNN (default 5)
  --channels A,B,C  store channels fed as R,G,B (default: all of a 1/3-channel store, else Ph_golgi,Mito,Hoechst)
  --threshold T     decision threshold stored in the sidecar (default 0.5)
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
        threshold: { type: 'string' },
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
      threshold: unitArg(values.threshold, '--threshold'),
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
          (m
            ? `validation (${r.meta.validation.n_test} test crops${r.meta.precision === 'int8' ? ', int8' : ''}): accuracy ${m.accuracy.toFixed(1)}  F1 ${m.f1.toFixed(1)}  AUC ${m.auc.toFixed(1)}\n` +
              (r.meta.validation.fp32_metrics
                ? `fp32 model: F1 ${r.meta.validation.fp32_metrics.f1.toFixed(1)}  AUC ${r.meta.validation.fp32_metrics.auc.toFixed(1)}\n`
                : '')
            : 'no validation: the test split lacks normal or abnormal crops\n'),
      );
    }
    return 0;
  },
};
