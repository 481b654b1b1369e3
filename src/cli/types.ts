import type { QcbError } from '../errors.js';
import type { Logger } from '../util/log.js';

/** Context handed to every command. */
export interface CliContext {
  log: Logger;
}

/**
 * A top-level command or command group (`qcbench data …`). Each lives in its own file under src/cli/ and is listed
 * in src/cli/commands.ts. `run` returns the process exit code (0 ok, 1 run failures, 2 bad input) or throws a
 * QcbError, which main() prints with its code and maps to an exit code.
 */
export interface Command {
  name: string;
  /** One line for `qcbench --help`. */
  summary: string;
  /** Full help text for `qcbench <name> --help`. */
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** `--provider cpu|cuda`: the option of every command that runs models (spread into its parseArgs options). */
export const PROVIDER_OPTION = { provider: { type: 'string' } } as const;

/**
 * Applies `--provider` (or, without it, a protocol's `runtime.execution_provider`) as the process-wide default
 * execution provider, before any work starts.
 * @throws QCB_USAGE for an unknown provider (did-you-mean), QCB_PROVIDER when cuda's files are not installed
 */
export async function applyProviderOption(
  flag: string | undefined,
  protocol?: { provider: string; file?: string },
): Promise<void> {
  if (flag === undefined && protocol === undefined) return;
  const { setDefaultExecutionProvider } = await import('../engine/runtime/session.js');
  if (flag !== undefined) setDefaultExecutionProvider(flag, { key: '--provider' });
  else if (protocol)
    setDefaultExecutionProvider(protocol.provider, { key: 'runtime.execution_provider', file: protocol.file });
}

/**
 * The JSON form of an error on stdout under `--json`: always the same six keys (`null` when the error has no such
 * context), so a script can read `code` and `fix` without guessing. The exit code is unchanged.
 */
export function errorJson(err: QcbError): {
  code: string;
  message: string;
  file: string | null;
  key: string | null;
  value: unknown;
  fix: string | null;
} {
  const c = err.context;
  return {
    code: err.code,
    message: err.message,
    file: c.file ?? null,
    key: c.key ?? null,
    value: c.value ?? null,
    fix: c.fix ?? null,
  };
}
