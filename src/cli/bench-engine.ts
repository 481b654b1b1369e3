/**
 * `qcbench bench engine [--json]`: training and feature-extraction throughput of the engine on torchvision ResNet18
 * with BatchNorm (128×128, batch 64 by default), peak RSS, and the ratio to PyTorch where `python3 -c 'import torch'`
 * works.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type BenchResult, benchEngine } from '../bench/engine.js';
import { QcbError } from '../errors.js';
import { applyProviderOption, type Command, PROVIDER_OPTION } from './types.js';

const usage = `qcbench bench engine [--json] [--batch 64] [--size 128] [--steps 5] [--threads 2] [--model M.onnx]
                     [--no-torch] [--paired] [--profile]

Measures, on this machine: a full fine-tuning step of torchvision's ResNet18 as the engine builds it (BatchNorm in
training mode: batch statistics and running-statistic updates; features → linear head → cross-entropy, SGD with
momentum 0.9 and weight decay 1e-4) in images/s, feature extraction through the exported inference model (BatchNorm
in inference mode) in images/s, and peak RSS. Where 'python3 -c "import torch"' works (python3, then
/usr/bin/python3), the same model (torchvision's resnet18 layout with BatchNorm, defined with torch.nn) runs the
same step in train() mode and the forward pass in eval() mode in a child process, and the ratio is printed.
Targets on 2 cores: training ≥ 52 img/s (≥ 1.0× PyTorch 1.13's 51.6), features ≥ 200 img/s (PyTorch 173),
RSS ≤ 4 GB. Figures vary with machine load: compare ratios.

Options:
  --model FILE   benchmark this encoder ONNX as imported instead (input resized to --size); e.g. a
                 torchvision resnet18 export, whose BatchNorm is folded into the convolutions
                 (PyTorch then runs ResNet18 with conv biases and no BatchNorm)
  --batch N      batch size (default 64; at least 2 for BatchNorm in training mode)
  --size S       image side in pixels (default 128)
  --steps K      timed training steps after one warm-up (default 5; the median is reported)
  --threads T    intra-op threads for onnxruntime and PyTorch (default 2)
  --provider P   onnxruntime execution provider: cpu (default) or cuda (README "GPU"; PyTorch stays on the CPU)
  --no-torch     skip the PyTorch comparison
  --paired       interleave single engine and PyTorch steps and report the median of paired ratios (for a machine
                 with a varying load; interleaving slows PyTorch's steps more than ours, so the default runs each
                 side's steps as a block while the other waits)
  --profile      profile one more step with onnxruntime and print time per operator type
  --json         print the result as JSON on stdout`;

function posInt(v: string | undefined, key: string, d: number): number {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new QcbError('QCB_USAGE', `${key} must be a positive integer, got '${v}'`, {
      key,
      value: v,
      allowed: 'a positive integer',
    });
  return n;
}

export const command: Command = {
  name: 'engine',
  summary: 'training and feature-extraction speed of the engine vs PyTorch (ResNet18)',
  usage,
  async run(args, ctx) {
    const { values } = parseArgs({
      args,
      options: {
        json: { type: 'boolean', default: false },
        batch: { type: 'string' },
        size: { type: 'string' },
        steps: { type: 'string' },
        threads: { type: 'string' },
        ...PROVIDER_OPTION,
        model: { type: 'string' },
        'no-torch': { type: 'boolean', default: false },
        paired: { type: 'boolean', default: false },
        profile: { type: 'boolean', default: false },
      },
    });
    await applyProviderOption(values.provider);
    const model = values.model;
    if (model !== undefined && !existsSync(model)) {
      throw new QcbError('QCB_FILE_NOT_FOUND', `model not found: ${model}`, {
        file: model,
        key: '--model',
        fix: 'pass --model with an exported encoder (.onnx)',
      });
    }
    const r: BenchResult = await benchEngine({
      model,
      batch: posInt(values.batch, '--batch', 64),
      size: posInt(values.size, '--size', 128),
      steps: posInt(values.steps, '--steps', 5),
      threads: posInt(values.threads, '--threads', 2),
      torch: !values['no-torch'],
      paired: values.paired,
      profile: values.profile,
      onProgress: (m) => ctx.log.info(m),
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return 0;
    }
    const f = (n: number) => n.toFixed(1);
    const lines = [
      `${model === undefined ? `ResNet18 (BatchNorm in training mode, ${r.bn_training_nodes} BN layers)` : `${model} (as imported, ${r.bn_training_nodes} BN layers in training mode)`} ${r.size}×${r.size}, batch ${r.batch}, ${r.threads} threads`,
      `engine   train ${f(r.train_img_s)} img/s   features ${f(r.features_img_s)} img/s   peak RSS ${r.peak_rss_gb.toFixed(2)} GB   (compile ${r.compile_seconds.toFixed(1)} s)`,
    ];
    if (r.torch && 'train_img_s' in r.torch) {
      lines.push(
        `pytorch  train ${f(r.torch.train_img_s)} img/s   features ${f(r.torch.features_img_s)} img/s   peak RSS ${r.torch.peak_rss_gb.toFixed(2)} GB   (${r.torch.version}, ${r.torch.python})`,
      );
      lines.push(`ratio    train ${r.ratio_train!.toFixed(2)}×   features ${r.ratio_features!.toFixed(2)}×`);
    } else if (r.torch) lines.push(`pytorch  skipped: ${r.torch.error}`);
    if (r.profile) {
      lines.push('time per operator (one profiled step):');
      for (const p of r.profile.slice(0, 12))
        lines.push(
          `  ${p.op.padEnd(20)} ${p.ms.toFixed(0).padStart(7)} ms  ${(100 * p.share).toFixed(1).padStart(5)}%  (${p.count} nodes)`,
        );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
