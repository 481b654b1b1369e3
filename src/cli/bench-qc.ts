/** `qcbench bench qc [--json]`: crops scored per second through an exported QC classifier (src/bench/qc.ts). */
import { parseArgs } from 'node:util';
import { QcbError } from '../errors.js';
import { benchQc } from '../bench/qc.js';
import { intArg } from './args.js';
import type { Command } from './types.js';

const usage = `qcbench bench qc [--json] [--encoder NAME] [--size 128] [--crops 512] [--batch 64] [--threads T]

Crops scored per second on this machine by an exported QC classifier (ResNet18 at 128×128 with a linear head by
default; target ≥ 180 crops/s on 2 cores): the forward pass alone and \`qcbench qc apply\` end to end on a temporary
crop store, the hours a BBBC022-sized screen (2.1 M crops) would take, and the peak RSS. Numbers depend on the
current load of the machine.`;

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
    });
    if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else {
      const f = (v: number) => v.toFixed(1);
      process.stdout.write(
        `qc ${r.encoder} ${r.size}×${r.size}, batch ${r.batch}, ${r.threads} thread(s)\n` +
          `forward ${f(r.forward_crops_per_s)} crops/s   apply ${f(r.apply_crops_per_s)} crops/s (target ≥ ${r.target_crops_per_s}: ${r.meets_target ? 'met' : 'NOT met'})\n` +
          `BBBC022 (2.1 M crops) ≈ ${f(r.bbbc022_hours)} h   peak RSS ${r.peak_rss_gb.toFixed(2)} GB   model ${f(r.model_mb)} MB\n` +
          `(${r.note})\n`,
      );
    }
    return 0;
  },
};
