/**
 * `qcbench weights check [NAME…] [--dir DIR] [--size S] [--json]`: for each ImageNet transfer-learning encoder
 * (vgg16, resnet18, convnext_tiny), whether its weights are in the weights folder, load, run, and give the paper's
 * feature width (512 / 512 / 768). Exit 0 when all checked encoders are ready, 2 otherwise (missing or unusable
 * model files), with the fix command per encoder.
 */
import { parseArgs } from 'node:util';
import { checkWeights } from '../encoders/imagenet.js';
import { type ImageNetName, WEIGHTS, weightsDir } from '../encoders/weights.js';
import { EXIT, QcbError } from '../errors.js';
import { lookup } from '../util/suggest.js';
import type { Command } from './types.js';

const usage = `qcbench weights check [NAME…] [--dir DIR] [--size S] [--json]

Checks the ImageNet weights of the transfer-learning encoders (default: all of ${Object.keys(WEIGHTS).join(', ')}):
present in the weights folder (<name>.onnx or <name>.safetensors)? loads? runs? right feature width?

Options:
  --dir DIR     weights folder (default: $QCBENCH_WEIGHTS or ~/.cache/qcbench/weights)
  --size S      crop side used for the test forward pass (default 64)
  --json        print the report as JSON on stdout

Exit codes: 0 all ready, 2 some missing or unusable (each line says how to fix it).`;

export const command: Command = {
  name: 'check',
  summary: 'check the ImageNet weights: present, loadable, right feature size',
  usage,
  async run(args, ctx) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { dir: { type: 'string' }, size: { type: 'string' }, json: { type: 'boolean', default: false } },
    });
    const size = values.size === undefined ? 64 : Number(values.size);
    if (!Number.isInteger(size) || size < 8) {
      throw new QcbError('QCB_USAGE', `--size must be an integer ≥ 8, got '${values.size}'`, {
        key: '--size',
        value: values.size,
        allowed: 'an integer ≥ 8',
      });
    }
    const names = (positionals.length ? positionals : Object.keys(WEIGHTS)).map((n) => {
      lookup(WEIGHTS, n, 'ImageNet encoder', { key: 'NAME' });
      return n as ImageNetName;
    });
    const dir = weightsDir(values.dir);
    const results = [];
    for (const n of names) results.push(await checkWeights(n, { weightsDir: dir, cropSize: size }));
    const ok = results.every((r) => r.status === 'ok');
    if (values.json) process.stdout.write(`${JSON.stringify({ dir, ok, encoders: results }, null, 2)}\n`);
    else {
      const lines = [`weights folder ${dir}`];
      for (const r of results) {
        const dims = r.dim === undefined ? `expects ${r.expectedDim}-d` : `${r.dim}-d (expects ${r.expectedDim})`;
        lines.push(`${r.status.padEnd(9)} ${r.name.padEnd(14)} ${dims}${r.file ? `  ${r.format} ${r.file}` : ''}`);
        if (r.status !== 'ok') {
          if (r.message) lines.push(`          ${r.message}`);
          if (r.fix) lines.push(`          fix: ${r.fix}`);
        }
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    if (!ok)
      ctx.log.debug('weights check: not all encoders are ready', {
        missing: results.filter((r) => r.status !== 'ok').map((r) => r.name),
      });
    return ok ? EXIT.ok : EXIT.badInput;
  },
};
