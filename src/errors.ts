/**
 * Errors with stable codes. Every error a user can cause names the file, the field (key path) and the fix, and maps
 * to an exit code: 2 for bad input (protocol, data, model files, arguments), 1 for run failures.
 *
 * Codes are stable: scripts and CI jobs may match on them. Add new codes at the end of their group; never rename.
 */

/** Exit codes of the `qcbench` CLI. */
export const EXIT = { ok: 0, runFailure: 1, badInput: 2 } as const;

/** The catalogue of error codes: the group decides the exit code. */
export const ERROR_CODES = {
  // usage and arguments
  QCB_USAGE: 'bad command-line arguments',
  QCB_UNKNOWN_COMMAND: 'unknown command',
  QCB_UNKNOWN_NAME: 'unknown registry name (encoder, method, task, optimizer, …)',
  // protocols
  QCB_PROTOCOL_NOT_FOUND: 'protocol file not found',
  QCB_PROTOCOL_YAML: 'protocol file is not valid YAML',
  QCB_PROTOCOL_VERSION: 'protocol version missing or unsupported',
  QCB_PROTOCOL_KEY: 'unknown key in a protocol',
  QCB_PROTOCOL_TYPE: 'a protocol value has the wrong type',
  QCB_PROTOCOL_VALUE: 'a protocol value is out of range or not allowed',
  QCB_PROTOCOL_EXTENDS: 'a protocol extends a missing file or itself',
  QCB_PROTOCOL_ENV: 'a protocol names an environment variable that is not set',
  QCB_ABLATION_BASE: 'an ablation cannot be laid over the base protocol (e.g. no second data set for a domain shift)',
  // files and data
  QCB_FILE_NOT_FOUND: 'input file not found',
  QCB_FILE_FORMAT: 'input file has an unknown or unsupported format',
  QCB_FILE_TRUNCATED: 'input file is truncated or corrupt',
  QCB_CSV_COLUMNS: 'a CSV file lacks required columns',
  QCB_CSV_VALUE: 'a CSV cell has a bad value',
  QCB_IMAGE_SIZE: 'images that must match in size do not',
  QCB_CHANNEL_MISSING: 'a channel file is missing',
  QCB_STORE: 'crop store missing, incomplete or of another shape',
  QCB_ANNOTATIONS: 'annotation file is malformed',
  // models and engine
  QCB_ONNX_PARSE: 'ONNX file is malformed or truncated',
  QCB_ONNX_UNSUPPORTED_OP: 'operator has no gradient rule or no shape rule',
  QCB_ONNX_GRAPH: 'graph is inconsistent (unknown value, cycle, shape mismatch)',
  QCB_FEED: 'a model input has the wrong shape or dtype',
  QCB_WEIGHTS_MISSING: 'pretrained weights are not present',
  QCB_REFERENCE: 'reference file (.ref.json) is malformed',
  QCB_PROVIDER: 'the requested onnxruntime execution provider is not installed on this machine',
  QCB_NOT_APPLICABLE: 'the task or use does not apply to the encoder (fine-tuning or exporting hand-made measures)',
  // run failures (exit 1)
  QCB_NAN_LOSS: 'the loss became NaN or infinite',
  QCB_RUNTIME: 'onnxruntime failed while running a model',
  QCB_CELL_FAILED: 'one or more benchmark cells failed',
  QCB_VERIFY_FAILED: 'verification found errors above tolerance',
  QCB_INTERNAL: 'internal error (a bug in qcbench)',
  QCB_DOWNLOAD: 'a download failed (offline, unreachable, or the file did not verify)',
  QCB_DIVERGED: 'training diverged (exploding loss, non-finite parameters, or non-finite or collapsed features)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

const RUN_FAILURE_CODES = new Set<ErrorCode>([
  'QCB_NAN_LOSS',
  'QCB_RUNTIME',
  'QCB_CELL_FAILED',
  'QCB_VERIFY_FAILED',
  'QCB_INTERNAL',
  'QCB_DOWNLOAD',
  'QCB_DIVERGED',
]);

/** Where an error comes from and how to fix it. All fields optional; the message is built from those present. */
export interface ErrorContext {
  /** The file at fault (protocol, image, CSV, model). */
  file?: string;
  /** Key path inside the file (`tasks.linear.epochs`), column name, node name or tensor name. */
  key?: string;
  /** The offending value, shown as JSON. */
  value?: unknown;
  /** What is allowed, e.g. "a positive integer" or a list of names. */
  allowed?: string;
  /** One sentence telling the user what to do. */
  fix?: string;
  /** Underlying error. */
  cause?: unknown;
}

/** An error a user can act on. `code` is stable; `exitCode` is 2 for bad input and 1 for run failures. */
export class QcbError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = 'QcbError';
    this.code = code;
    this.context = context;
  }

  get exitCode(): number {
    return RUN_FAILURE_CODES.has(this.code) ? EXIT.runFailure : EXIT.badInput;
  }

  /** Multi-line text for the terminal: code and message, then file / key / value / allowed / fix lines. */
  format(): string {
    const c = this.context;
    const lines = [`error ${this.code}: ${this.message}`];
    if (c.file !== undefined) lines.push(`  file:    ${c.file}`);
    if (c.key !== undefined) lines.push(`  key:     ${c.key}`);
    if (c.value !== undefined) lines.push(`  value:   ${safeJson(c.value)}`);
    if (c.allowed !== undefined) lines.push(`  allowed: ${c.allowed}`);
    if (c.fix !== undefined) lines.push(`  fix:     ${c.fix}`);
    return lines.join('\n');
  }

  /** Plain object for JSON logs and results files. */
  toJSON(): Record<string, unknown> {
    const { cause: _cause, ...rest } = this.context;
    return { code: this.code, message: this.message, ...rest };
  }
}

function safeJson(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 200 ? `${s.slice(0, 200)}…` : s;
  } catch {
    return String(v);
  }
}

/** Wraps anything thrown into a QcbError (unknown errors become QCB_INTERNAL, keeping the original as cause). */
export function asQcbError(e: unknown): QcbError {
  if (e instanceof QcbError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new QcbError('QCB_INTERNAL', msg, { cause: e, fix: 'please report this with the command you ran' });
}
