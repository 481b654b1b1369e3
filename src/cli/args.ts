/**
 * Option handling shared by the subcommands: parsing argv and reading numeric options, each failing with QCB_USAGE
 * (exit 2) that names the option and the fix, so every command reports a bad argument the same way.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { QcbError } from '../errors.js';
import { didYouMean } from '../util/suggest.js';

/**
 * `parseArgs(config)` with its errors (unknown option, missing value, …) turned into QCB_USAGE pointing at
 * `qcbench <command> --help`.
 */
export function parseCommandArgs<T extends ParseArgsConfig>(
  config: T,
  command: string,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new QcbError('QCB_USAGE', (e as Error).message, { fix: `see \`qcbench ${command} --help\`` });
  }
}

/** The integer option `key` (undefined when absent); QCB_USAGE unless it is an integer ≥ `min`. */
export function intArg(v: string | undefined, key: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new QcbError('QCB_USAGE', `${key} must be an integer ≥ ${min}, got '${v}'`, {
      key,
      value: v,
      allowed: `an integer ≥ ${min}`,
      fix: `pass ${key} with an integer ≥ ${min}`,
    });
  return n;
}

/** The option `key` as a number in [0, 1] (undefined when absent); QCB_USAGE otherwise. */
export function unitArg(v: string | undefined, key: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n >= 0 && n <= 1))
    throw new QcbError('QCB_USAGE', `${key} must be a number in [0, 1], got '${v}'`, {
      key,
      value: v,
      allowed: '0 … 1',
      fix: `pass ${key} between 0 and 1`,
    });
  return n;
}

/**
 * QCB_USAGE `missing --<key>` for the first of `keys` that has no value in `values`; the fix shows `example`, a
 * complete command line.
 */
export function requireOptions(values: Record<string, unknown>, keys: readonly string[], example: string): void {
  for (const k of keys) {
    if (!values[k]) throw new QcbError('QCB_USAGE', `missing --${k}`, { key: `--${k}`, fix: example });
  }
}

/** The option `key` as one of `allowed` (undefined when absent); QCB_USAGE with a did-you-mean otherwise. */
export function choiceArg<T extends string>(v: string | undefined, key: string, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v))
    throw new QcbError('QCB_USAGE', `${key} must be one of ${allowed.join(', ')}, got '${v}'`, {
      key,
      value: v,
      allowed: allowed.join(', '),
      fix: didYouMean(v, allowed),
    });
  return v as T;
}
