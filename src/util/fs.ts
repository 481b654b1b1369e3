import { createHash, type Hash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Writes a file atomically: a temp file beside it, fsync, then rename. A reader (or a resumed run) sees either the
 * old file or the whole new one, never a half-written file, even if the process is killed midway.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** Writes JSON atomically (2-space indented, trailing newline, stable key order as given). */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** JSON with object keys sorted recursively: the canonical form that content hashes are taken of. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
      : v,
  );
}

/** SHA-256 (hex) of the canonical JSON of `value`, or of raw bytes/strings. */
export function contentHash(value: unknown): string {
  const h = createHash('sha256');
  if (typeof value === 'string' || value instanceof Uint8Array) h.update(value);
  else h.update(canonicalJson(value));
  return h.digest('hex');
}

/** Feeds a file into a hash in 8 MiB reads (memory stays flat for weights and screen-sized tables). */
export function updateHashFromFile(hash: Hash, path: string): Hash {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(8 * 2 ** 20);
    for (let n = readSync(fd, buf, 0, buf.length, null); n > 0; n = readSync(fd, buf, 0, buf.length, null))
      hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash;
}
