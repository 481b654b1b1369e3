/**
 * `qcbench qc quantize MODEL.onnx --store STORE --out MODEL-int8.onnx`: an int8 copy of an fp32 QC classifier,
 * calibrated on crops of a store (src/qc/quantize.ts).
 */
import { CALIBRATION_METHODS, type CalibrationMethod } from '../engine/quantize/index.js';
import { QcbError } from '../errors.js';
import { CALIBRATION_CROPS, quantizeQcModel, type QuantizeQcOptions } from '../qc/quantize.js';
import { choiceArg, intArg, parseCommandArgs, requireOptions } from './args.js';
import type { Command } from './types.js';

/** Calibration options shared with `qc train --precision int8`. */
export const CALIBRATION_OPTIONS = {
  'calibration-crops': { type: 'string' },
  calibration: { type: 'string' },
  percentile: { type: 'string' },
} as const;

export const CALIBRATION_USAGE = `  --calibration-crops N  crops sampled (seeded) for calibration (default ${CALIBRATION_CROPS})
  --calibration M        activation ranges: minmax (default) or percentile
  --percentile P         p of --calibration percentile (default 99.99): ranges [100−p, p] percentiles`;

/** The calibration options' values. @throws QCB_USAGE for a bad value */
export function calibrationArgs(values: {
  'calibration-crops'?: string;
  calibration?: string;
  percentile?: string;
}): Pick<QuantizeQcOptions, 'crops' | 'method' | 'percentile'> {
  const p = values.percentile === undefined ? undefined : Number(values.percentile);
  if (p !== undefined && !(p > 50 && p <= 100)) {
    throw new QcbError('QCB_USAGE', `--percentile must be a number in (50, 100], got '${values.percentile}'`, {
      key: '--percentile',
      value: values.percentile,
      allowed: '50 < p ≤ 100',
      fix: 'use e.g. --percentile 99.99',
    });
  }
  return {
    crops: intArg(values['calibration-crops'], '--calibration-crops', 1),
    method: choiceArg<CalibrationMethod>(values.calibration, '--calibration', CALIBRATION_METHODS),
    percentile: p,
  };
}

const usage = `qcbench qc quantize MODEL.onnx --store STORE --out MODEL-int8.onnx [--calibration-crops N]
                    [--calibration minmax|percentile] [--percentile P] [--seed S] [--threads N] [--json]

Statically quantises an fp32 QC classifier (written by \`qcbench qc train\`) to int8: QuantizeLinear /
DequantizeLinear around its convolutions and GEMMs, int8 weights with one scale per output channel, uint8
activations with one scale per tensor calibrated on a seeded sample of the store's crops. The result is again one
self-contained ONNX file with the same input and outputs, which onnxruntime runs with integer kernels (QLinearConv,
QLinearAdd, …). The head (kNN bank / linear layer) and the uint8 → float preprocessing stay fp32.

MODEL-int8.json records the calibration (store, crops, method), the quantised and fp32-kept operators, the integer
kernels onnxruntime made of it, and, when the fp32 model's annotation file is at hand and the store holds its test
crops, the int8 model's test metrics next to the fp32 ones.

Options:
${CALIBRATION_USAGE}
  --seed S               seed of the crop sample (default the model's)
  --threads N            onnxruntime threads (default: all cores)
  --json                 print the sidecar as JSON

The store's crops must have the model's size and channels (else exit 2).
Exit codes: 0 done, 1 run failure, 2 bad input.`;

export const command: Command = {
  name: 'quantize',
  summary: 'int8 copy of a QC classifier, calibrated on crops of a store',
  usage,
  async run(args, ctx) {
    const { values, positionals } = parseCommandArgs(
      {
        args,
        allowPositionals: true,
        options: {
          store: { type: 'string' },
          out: { type: 'string' },
          ...CALIBRATION_OPTIONS,
          seed: { type: 'string' },
          threads: { type: 'string' },
          json: { type: 'boolean', default: false },
          help: { type: 'boolean', short: 'h' },
        },
      },
      'qc quantize',
    );
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const example = 'qcbench qc quantize qc.onnx --store crops/ --out qc-int8.onnx';
    if (positionals.length !== 1) {
      throw new QcbError('QCB_USAGE', `give exactly one MODEL.onnx, got ${positionals.length}`, {
        key: 'MODEL.onnx',
        value: positionals,
        fix: example,
      });
    }
    requireOptions(values, ['store', 'out'], example);
    const r = await quantizeQcModel({
      model: positionals[0],
      store: values.store!,
      out: values.out!,
      ...calibrationArgs(values),
      seed: intArg(values.seed, '--seed', 0),
      threads: intArg(values.threads, '--threads', 1),
      log: ctx.log,
    });
    if (values.json) process.stdout.write(`${JSON.stringify(r.meta, null, 2)}\n`);
    else {
      const m = r.meta.validation.metrics;
      const f = r.meta.validation.fp32_metrics;
      const q = r.meta.quantization!;
      const kept = Object.entries(q.fp32_ops)
        .map(([op, e]) => `${op}×${e.count}`)
        .join(', ');
      process.stdout.write(
        `${r.model}\n${r.sidecar}\n` +
          `int8 ops: ${Object.entries(q.int8_ops)
            .map(([op, c]) => `${op}×${c}`)
            .join(', ')}; kept fp32: ${kept || 'none'}\n` +
          `integer kernels: ${Object.entries(q.integer_kernels)
            .map(([op, c]) => `${op}×${c}`)
            .join(', ')}\n` +
          (m && f
            ? `test AUC ${m.auc.toFixed(1)} (fp32 ${f.auc.toFixed(1)})  F1 ${m.f1.toFixed(1)} (fp32 ${f.f1.toFixed(1)})\n`
            : 'no int8 validation (the fp32 model has no test metrics or its test crops are not in the store)\n'),
      );
    }
    return 0;
  },
};
