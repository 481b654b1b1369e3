/**
 * `qcbench`: one CLI. Dispatches to a command or a command group, prints QcbErrors with their code, file, key and fix,
 * and maps them to exit codes (0 ok, 1 run failures, 2 bad input).
 */
import { asQcbError, EXIT, QcbError } from '../errors.js';
import { logger } from '../util/log.js';
import { didYouMean } from '../util/suggest.js';
import { COMMANDS, type CommandEntry, GROUPS, type GroupEntry } from './commands.js';
import { qcbenchVersion } from '../util/version.js';
import { type CliContext, errorJson } from './types.js';

const TOP_HELP = () => {
  const cmds = Object.entries(COMMANDS as Record<string, CommandEntry>).map(
    ([n, c]) => `  ${n.padEnd(22)} ${c.summary}`,
  );
  const groups = Object.entries(GROUPS as Record<string, GroupEntry>).flatMap(([g, e]) => [
    `  ${g.padEnd(22)} ${e.summary}`,
    ...Object.entries(e.subs).map(([s, c]) => `    ${s.padEnd(20)} ${c.summary}`),
  ]);
  return `qcbench ${qcbenchVersion()} — which image encoder for high-content-screening quality control?

Usage: qcbench <command> [options]        qcbench help <command> (or qcbench <command> --help) for its options

Commands:
${[...cmds, ...groups].join('\n')}

Everyday tasks:
  qcbench run protocols/quick.yaml                 the embedded default (synthetic screen)
  qcbench run protocols/full.yaml                  the paper's Tables 1-3 on BBBC022/BBBC021
  qcbench ablation label-budget                    one ablation (label-budget | domain-shift)
  qcbench report --results DIR                     regenerate the report tables from results

Environment: QCBENCH_DATA (data sets), QCBENCH_WEIGHTS (ImageNet weights), QCBENCH_LOG_LEVEL (debug|info|warn|error).
Exit codes: 0 ok, 1 run failures, 2 bad input. With --json an error is also printed on stdout as one JSON object
{code, message, file, key, value, fix}.`;
};

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const ctx: CliContext = { log: logger };
  try {
    const [first, ...rest] = argv;
    // `qcbench help CMD [SUB]` is `qcbench CMD [SUB] --help`
    if (first === 'help' && rest.length > 0) return await main([...rest, '--help']);
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      process.stdout.write(`${TOP_HELP()}\n`);
      return EXIT.ok;
    }
    if (first === '--version' || first === '-v' || first === 'version') {
      process.stdout.write(`${qcbenchVersion()}\n`);
      return EXIT.ok;
    }
    const commands = COMMANDS as Record<string, CommandEntry>;
    const groups = GROUPS as Record<string, GroupEntry>;
    if (Object.hasOwn(commands, first)) return await runEntry(commands[first], rest, ctx);
    if (Object.hasOwn(groups, first)) {
      const g = groups[first];
      const [subName, ...subArgs] = rest;
      if (subName === undefined || subName === '--help' || subName === '-h') {
        process.stdout.write(
          `qcbench ${first} — ${g.summary}\n\n${Object.entries(g.subs)
            .map(([s, c]) => `  qcbench ${first} ${s.padEnd(14)} ${c.summary}`)
            .join('\n')}\n`,
        );
        return subName === undefined ? EXIT.badInput : EXIT.ok;
      }
      if (!Object.hasOwn(g.subs, subName))
        throw new QcbError('QCB_UNKNOWN_COMMAND', `unknown command 'qcbench ${first} ${subName}'`, {
          value: subName,
          fix: didYouMean(subName, Object.keys(g.subs)),
        });
      return await runEntry(g.subs[subName], subArgs, ctx);
    }
    throw new QcbError('QCB_UNKNOWN_COMMAND', `unknown command '${first}'`, {
      value: first,
      fix: `${didYouMean(first, [...Object.keys(commands), ...Object.keys(groups)])}; see qcbench --help`,
    });
  } catch (e) {
    const err = usageError(e) ?? asQcbError(e);
    process.stderr.write(`${err.format()}\n`);
    // Under --json a script reads stdout: the error is there too, as one object.
    if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(errorJson(err))}\n`);
    if (err.code === 'QCB_INTERNAL' && e instanceof Error && e.stack) logger.debug(e.stack);
    return err.exitCode;
  }
}

async function runEntry(entry: CommandEntry, args: string[], ctx: CliContext): Promise<number> {
  const cmd = await entry.load();
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${cmd.usage}\n`);
    return EXIT.ok;
  }
  return await cmd.run(args, ctx);
}

/** node:util parseArgs errors (unknown option, missing value) become QCB_USAGE with the command's help hint. */
function usageError(e: unknown): QcbError | undefined {
  const code = (e as { code?: string } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))
    return new QcbError('QCB_USAGE', (e as Error).message, { fix: 'see the command with --help for its options' });
  return undefined;
}
