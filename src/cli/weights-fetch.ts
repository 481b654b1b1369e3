/**
 * `qcbench weights fetch NAME [--dir DIR] [--url URL] [--sha256 HEX] [--force] [--json]`: downloads an ImageNet
 * encoder's official timm safetensors into the weights folder, verifies it and writes it atomically. Needs internet;
 * offline it fails with QCB_DOWNLOAD (exit 1) and says how to install the weights by hand.
 */
import { parseArgs } from 'node:util';
import { type ImageNetName, WEIGHTS, fetchWeights, weightsDir } from '../encoders/weights.js';
import { QcbError } from '../errors.js';
import { lookup } from '../util/suggest.js';
import type { Command } from './types.js';

const usage = `qcbench weights fetch NAME [--dir DIR] [--url URL] [--sha256 HEX] [--force] [--json]

Downloads the ImageNet weights of a transfer-learning encoder (${Object.keys(WEIGHTS).join(', ')}) from the official
timm hub files (torchvision's own weights for vgg16 and resnet18):
${Object.entries(WEIGHTS)
  .map(([k, v]) => `  ${k.padEnd(14)} ${v.url}`)
  .join('\n')}
into <dir>/<name>.safetensors, verified (complete, safetensors structure, the architecture's tensors; SHA-256 with
--sha256) and written atomically. Then \`qcbench weights check\`.

Options:
  --dir DIR      weights folder (default: $QCBENCH_WEIGHTS or ~/.cache/qcbench/weights)
  --url URL      download from a mirror instead
  --sha256 HEX   expected SHA-256 of the file
  --force        download again even if the file is present
  --json         print the result as JSON on stdout

Offline: download the file elsewhere and copy it to <dir>/<name>.safetensors, or put an ONNX export at
<dir>/<name>.onnx. Exit codes: 0 done, 1 download failed (QCB_DOWNLOAD), 2 bad arguments.`;

export const command: Command = {
  name: 'fetch',
  summary: 'download ImageNet weights (timm/torchvision) into the weights folder',
  usage,
  async run(args, ctx) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        dir: { type: 'string' },
        url: { type: 'string' },
        sha256: { type: 'string' },
        force: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    });
    if (positionals.length !== 1) {
      throw new QcbError('QCB_USAGE', positionals.length ? 'give one encoder name' : 'missing encoder NAME', {
        key: 'NAME',
        value: positionals,
        allowed: Object.keys(WEIGHTS).join(', '),
        fix: 'qcbench weights fetch resnet18',
      });
    }
    lookup(WEIGHTS, positionals[0], 'ImageNet encoder', { key: 'NAME' });
    const name = positionals[0] as ImageNetName;
    if (values.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(values.sha256)) {
      throw new QcbError('QCB_USAGE', '--sha256 must be 64 hexadecimal digits', {
        key: '--sha256',
        value: values.sha256,
        allowed: '64 hex digits',
      });
    }
    const dir = weightsDir(values.dir);
    const r = await fetchWeights(name, {
      dir,
      url: values.url,
      sha256: values.sha256,
      force: values.force,
      log: ctx.log,
    });
    const note = WEIGHTS[name].safetensorsSupported
      ? undefined
      : `the engine has no ${name} builder to map safetensors onto yet: put an ONNX export at ${dir}/${WEIGHTS[name].onnx} (see README)`;
    if (values.json) process.stdout.write(`${JSON.stringify({ name, ...r, note }, null, 2)}\n`);
    else {
      process.stdout.write(
        `${r.present ? 'present' : 'fetched'}  ${name}  ${r.path}  ${r.bytes} bytes  sha256 ${r.sha256}\n`,
      );
      if (note) process.stdout.write(`note: ${note}\n`);
    }
    return 0;
  },
};
