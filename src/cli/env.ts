import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageVersion, qcbenchVersion } from '../util/version.js';
import type { Command } from './types.js';

const require = createRequire(import.meta.url);

/** Execution providers onnxruntime-node can use here: bundled ones, plus CUDA when its provider library is present. */
export async function executionProviders(): Promise<{ name: string; available: boolean; note: string }[]> {
  const ort = await import('onnxruntime-node');
  const listed = ort.listSupportedBackends?.() ?? [{ name: 'cpu', bundled: true }];
  const binDir = dirname(require.resolve('onnxruntime-node/package.json'));
  const libs: string[] = [];
  const walk = (d: string, depth: number) => {
    if (depth > 5 || !existsSync(d)) return;
    for (const f of readdirSync(d, { withFileTypes: true })) {
      if (f.isDirectory()) walk(join(d, f.name), depth + 1);
      else libs.push(f.name);
    }
  };
  walk(join(binDir, 'bin'), 0);
  return listed.map((b: { name: string; bundled: boolean }) => {
    if (b.bundled) return { name: b.name, available: true, note: 'bundled' };
    const lib = libs.find((l) => l.includes(`providers_${b.name}`));
    return {
      name: b.name,
      available: Boolean(lib),
      note: lib ? `provider library ${lib}` : 'not installed (see README "GPU")',
    };
  });
}

export async function envReport(): Promise<Record<string, unknown>> {
  const pkgs = [
    'onnxruntime-node',
    'onnx-proto',
    'sharp',
    'zarrita',
    'ml-knn',
    'vega',
    'vega-lite',
    'vega-embed',
    'yaml',
    'mathjs',
    '@tensorflow/tfjs',
    '@tensorflow/tfjs-node',
    '@tensorflow/tfjs-node-gpu',
    'playwright-core',
  ];
  const versions = Object.fromEntries(pkgs.map((p) => [p, packageVersion(p)]));
  return {
    qcbench: qcbenchVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    default_threads: availableParallelism(),
    memory_gib: Number((totalmem() / 2 ** 30).toFixed(1)),
    engine: { name: 'onnxruntime-node', version: versions['onnxruntime-node'] },
    execution_providers: await executionProviders(),
    reference_engine: {
      tfjs: versions['@tensorflow/tfjs'],
      tfjs_node: versions['@tensorflow/tfjs-node'],
      tfjs_node_gpu: versions['@tensorflow/tfjs-node-gpu'],
    },
    chromium: existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : null,
    weights_dir: process.env.QCBENCH_WEIGHTS ?? null,
    data_dir: process.env.QCBENCH_DATA ?? null,
    packages: versions,
  };
}

export const command: Command = {
  name: 'env',
  summary: 'show Node, engine, execution providers, threads and package versions',
  usage: `qcbench env [--json]

Prints what qcbench runs on: Node, onnxruntime-node and the execution providers it finds (cpu; cuda when
onnxruntime-node's CUDA files are installed), cores and default threads, and versions of the key packages.`,
  async run(args) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
    const r = await envReport();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return 0;
    }
    const eps = (r.execution_providers as { name: string; available: boolean; note: string }[])
      .map((e) => `${e.name}${e.available ? '' : ' (unavailable)'}`)
      .join(', ');
    const lines = [
      `qcbench        ${r.qcbench}`,
      `node           ${r.node} (${r.platform})`,
      `cpu            ${r.cpu}, ${r.cores} cores, ${r.memory_gib} GiB`,
      `engine         onnxruntime-node ${(r.engine as { version: string }).version}, threads ${r.default_threads}`,
      `providers      ${eps}`,
      `reference      @tensorflow/tfjs ${(r.reference_engine as Record<string, string | null>).tfjs ?? 'absent'}; tfjs-node ${(r.reference_engine as Record<string, string | null>).tfjs_node ?? 'absent'}; tfjs-node-gpu ${(r.reference_engine as Record<string, string | null>).tfjs_node_gpu ?? 'absent'}`,
      `chromium       ${r.chromium ?? 'absent (needed only for the HTML report test)'}`,
      `weights dir    ${r.weights_dir ?? 'unset (QCBENCH_WEIGHTS)'}`,
      `data dir       ${r.data_dir ?? 'unset (QCBENCH_DATA)'}`,
      'packages',
      ...Object.entries(r.packages as Record<string, string | null>).map(([k, v]) => `  ${k.padEnd(28)} ${v ?? '-'}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
