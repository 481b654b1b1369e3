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
