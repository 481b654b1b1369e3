/**
 * Safe identifiers: every value that becomes a path component or an id (protocol data-set and evaluation names,
 * plate / well / site / field ids of field tables, crop ids of annotation files) is letters, digits, `-`, `_` and
 * `.`, and not `.` or `..` alone — so a value can never leave the folder it names a file in (`../x`), split a path
 * (`a/b`) or break a CSV line. Real identifiers pass: BBBC021 plates `Week4_27481`, BBBC022 plate `20585`, wells
 * `B02`, sites `s1`, crop ids `20585_A01_s1_120_84`.
 */
import { QcbError } from '../errors.js';

/** The one pattern of a safe id (see the module comment). */
export const ID_PATTERN = /^(?!\.\.?$)[A-Za-z0-9._-]+$/;

/** What {@link ID_PATTERN} allows, for error messages and the protocol spec. */
export const ID_ALLOWED = "letters, digits, '-', '_' and '.' (not '.' or '..' alone)";

/** True when `value` is a safe id. */
export function isId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/** Where a table value comes from: the file, its column and line. */
export interface IdSource {
  file: string;
  /** Column (or key) the value is in. */
  key: string;
  /** 1-based line of the file. */
  line?: number;
}

/**
 * Returns `value` when it is a safe id; otherwise throws QCB_CSV_VALUE naming the file, line, column, the value and
 * the fix. For values read from tables; protocols use {@link ID_PATTERN} through their spec (QCB_PROTOCOL_VALUE).
 */
export function checkId(value: string, at: IdSource): string {
  if (isId(value)) return value;
  const where = at.line === undefined ? at.file : `${at.file}:${at.line}`;
  throw new QcbError('QCB_CSV_VALUE', `${where}: ${at.key} '${value}' is not a safe id`, {
    file: at.file,
    key: at.line === undefined ? at.key : `line ${at.line}, column ${at.key}`,
    value,
    allowed: ID_ALLOWED,
    fix: `correct the value in the table, using only ${ID_ALLOWED}: ids name crops and files, so they cannot hold paths`,
  });
}
