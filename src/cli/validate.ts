import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EXIT, QcbError } from '../errors.js';
import { checkFileEncoders, ENCODERS, loadProtocol } from '../runner/catalog.js';
import { checkAnnotations } from '../runner/inputs.js';
import { protocolHash } from '../protocol/resolve.js';
import type { Protocol } from '../protocol/schema.js';
import { type Command, errorJson } from './types.js';

/** Paths a protocol reads that do not exist (yet): reported, not errors — data may live elsewhere until the run. */
export function missingInputs(p: Protocol): string[] {
  const out: string[] = [];
  for (const [name, ds] of Object.entries(p.data.datasets)) {
    if (ds.format !== 'synthetic' && ds.root && !existsSync(ds.root))
      out.push(`data.datasets.${name}.root: ${ds.root}`);
    if (ds.annotations && !existsSync(ds.annotations)) out.push(`data.datasets.${name}.annotations: ${ds.annotations}`);
    if (ds.centres && !existsSync(ds.centres)) out.push(`data.datasets.${name}.centres: ${ds.centres}`);
  }
  return out;
}

/** Number of cells a protocol expands to (encoder × task × budget × seed × test set). */
export function cellCount(p: Protocol): number {
  let n = 0;
  for (const ev of p.evaluations)
    n += (ev.encoders ?? p.encoders).length * ev.tasks.length * ev.budgets.length * p.seeds.length;
  return n;
}

export const command: Command = {
  name: 'validate',
  summary: 'resolve and check protocol files; runs nothing',
  usage: `qcbench validate <protocol.yaml> [more.yaml …] [--json] [--strict-paths]

Resolves each protocol (extends, defaults, \${VAR} expansion) and checks every key, then reads the annotation file
of every data set the protocol evaluates or pretrains on (labels, artefact types, splits, sources, duplicate crop
ids), and loads every encoder given as an ONNX file (encoders: [{ name, onnx, kind, label }]) and runs it once on
blank crops (it must map N×3×S×S crops to N×D features). Prints a summary, or every problem with its file, line,
key, value, what is allowed and the fix. Runs no benchmark.

  --json           print the resolved protocol(s) as JSON on stdout; on a problem, the first error as one
                   JSON object {code, message, file, key, value, fix} instead
  --strict-paths   also fail when a data root, annotation or centres file does not exist

Exit codes: 0 valid, 2 invalid.`,
  async run(args, ctx) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { json: { type: 'boolean', default: false }, 'strict-paths': { type: 'boolean', default: false } },
    });
    if (positionals.length === 0)
      throw new QcbError('QCB_USAGE', 'validate needs at least one protocol file', {
        fix: 'qcbench validate protocols/quick.yaml',
      });
    let worst: number = EXIT.ok;
    let firstError: QcbError | undefined;
    const resolved: Protocol[] = [];
    for (const file of positionals) {
      try {
        const p = loadProtocol(file);
        // A bad annotation file is bad input found now, not a failure of every cell later.
        checkAnnotations(p, { missingFiles: 'skip' });
        // An encoder file is loaded and run once on blank crops: it must map N×3×S×S to N×D.
        const dims = await checkFileEncoders(p);
        resolved.push(p);
        const missing = missingInputs(p);
        const tl = p.encoders.filter((e) => ENCODERS[e]?.kind === 'tl' && !p.encoder_files?.[e]);
        ctx.log.info(
          `ok ${file}: protocol '${p.name}' v${p.version}, ${p.encoders.length} encoders, ${cellCount(p)} cells, ${p.seeds.length} seed(s), hash ${protocolHash(p).slice(0, 12)}`,
        );
        for (const [name, d] of Object.entries(dims))
          ctx.log.info(`  encoder '${name}': ${p.encoder_files?.[name]?.onnx} loads, ${d}-d features`);
        if (tl.length)
          ctx.log.info(`  transfer-learning encoders need ImageNet weights: ${tl.join(', ')} (qcbench weights check)`);
        for (const m of missing) {
          if (values['strict-paths']) {
            ctx.log.error(`missing input ${m}`);
            worst = EXIT.badInput;
          } else ctx.log.warn(`input not found (yet): ${m}`);
        }
      } catch (e) {
        if (e instanceof QcbError) {
          process.stderr.write(`${e.format()}\n`);
          firstError ??= e;
          worst = EXIT.badInput;
        } else throw e;
      }
    }
    if (values.json)
      process.stdout.write(
        firstError
          ? `${JSON.stringify(errorJson(firstError))}\n`
          : `${JSON.stringify(resolved.length === 1 ? resolved[0] : resolved, null, 2)}\n`,
      );
    return worst;
  },
};
