/**
 * `qcbench bench qc [--json]`: crops scored per second through an exported QC classifier, fp32 and int8 in the same
 * run (src/bench/qc.ts).
 */
import { parseArgs } from 'node:util';
import { QcbError } from '../errors.js';
import { benchQc } from '../bench/qc.js';
import { intArg } from './args.js';
import type { Command } from './types.js';

const usage = `qcbench bench qc [--json] [--encoder NAME] [--size 128] [--crops 512] [--batch 64] [--threads T]
                 [--fp32-only] [--model MODEL.onnx --store STORE]

Crops scored per second on this machine by an exported QC classifier (ResNet18 at 128×128 with a linear head by
default; target ≥ 180 crops/s on 2 cores): the forward pass alone and \`qcbench qc apply\` end to end on a temporary
crop store, the hours a BBBC022-sized screen (2.1 M crops) would take, the model size, the peak RSS and
onnxruntime's time per operator. The same for the model's int8 copy (\`qcbench qc quantize\`) in the same run
(target: int8 apply ≥ 2× fp32 and ≥ 300 crops/s), with the rank correlation of the two models' scores.

  --fp32-only             skip the int8 copy
  --model MODEL.onnx      benchmark a trained fp32 QC model instead of the untrained ResNet18 (its crop size)
  --store STORE           with --model: calibrate on this store; when it holds the test crops of the model's
                          annotation file, report the int8 − fp32 AUC / F1 on them

Numbers depend on the current load of the machine; compare fp32 and int8 within one run.`;

export const command: Command = {
  name: 'qc',
  summary: 'QC scoring throughput (crops/s) through an exported classifier',
  usage,
  async run(args) {
    const parse = () =>
      parseArgs({
        args,
        options: {
          json: { type: 'boolean', default: false },
          encoder: { type: 'string' },
          size: { type: 'string' },
          crops: { type: 'string' },
          batch: { type: 'string' },
          threads: { type: 'string' },
          'fp32-only': { type: 'boolean', default: false },
          model: { type: 'string' },
          store: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      }).values;
    let values: ReturnType<typeof parse>;
    try {
      values = parse();
    } catch (e) {
      throw new QcbError('QCB_USAGE', (e as Error).message, { fix: 'see `qcbench bench qc --help`' });
    }
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const r = await benchQc({
      encoder: values.encoder,
      size: intArg(values.size, '--size', 8),
      crops: intArg(values.crops, '--crops', 1),
      batch: intArg(values.batch, '--batch', 1),
      threads: intArg(values.threads, '--threads', 1),
      fp32Only: values['fp32-only'],
      model: values.model,
      store: values.store,
    });
    if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else {
      const f = (v: number) => v.toFixed(1);
      const prof = (p: { op: string; share: number }[]) =>
        p
          .slice(0, 4)
          .map((e) => `${e.op} ${(100 * e.share).toFixed(0)}%`)
          .join(', ');
      const q = r.int8;
      process.stdout.write(
        `qc ${r.encoder} ${r.size}×${r.size}, batch ${r.batch}, ${r.threads} thread(s)\n` +
          `fp32  forward ${f(r.forward_crops_per_s)} crops/s   apply ${f(r.apply_crops_per_s)} crops/s (target ≥ ${r.target_crops_per_s}: ${r.meets_target ? 'met' : 'NOT met'}; ${f(100 * r.apply_over_forward)}% of forward)   model ${f(r.model_mb)} MB\n` +
          `      time by op: ${prof(r.profile)}\n` +
          (q
            ? `int8  forward ${f(q.forward_crops_per_s)} crops/s (×${q.speedup_forward.toFixed(2)})   apply ${f(q.apply_crops_per_s)} crops/s (×${q.speedup_apply.toFixed(2)}; target ≥ 2× and ≥ 300: ${q.meets_target ? 'met' : 'NOT met'})   model ${f(q.model_mb)} MB\n` +
              `      time by op: ${prof(q.profile)}\n` +
              `      integer kernels: ${Object.entries(q.integer_kernels)
                .map(([k, v]) => `${k.replace('com.microsoft.', '')}×${v}`)
                .join(', ')}   kept fp32: ${
                Object.entries(q.fp32_ops)
                  .map(([k, v]) => `${k}×${v}`)
                  .join(', ') || 'none'
              }\n` +
              `      scores vs fp32: Spearman ${q.spearman.toFixed(4)}` +
              (q.labelled
                ? `   test split (${q.labelled.n_test}): AUC ${f(q.labelled.int8.auc)} vs ${f(q.labelled.fp32.auc)} (${q.labelled.delta_auc >= 0 ? '+' : ''}${q.labelled.delta_auc.toFixed(2)})   F1 ${f(q.labelled.int8.f1)} vs ${f(q.labelled.fp32.f1)} (${q.labelled.delta_f1 >= 0 ? '+' : ''}${q.labelled.delta_f1.toFixed(2)})\n`
                : '   (no labelled split: give --model and --store for the AUC / F1 difference)\n')
            : '') +
          `BBBC022 (2.1 M crops) ≈ ${f(r.bbbc022_hours)} h fp32${q ? `, ${f(2.1e6 / q.apply_crops_per_s / 3600)} h int8` : ''}   peak RSS ${r.peak_rss_gb.toFixed(2)} GB\n` +
          `(${r.note})\n`,
      );
    }
    return 0;
  },
};
