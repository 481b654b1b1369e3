/**
 * Content-addressed artifacts with claims, so that a stage's output is computed once — across re-runs, crashed runs,
 * local workers and shards on many machines sharing one directory.
 *
 * An artifact is a directory entry `<root>/<kind>/<hash>` whose presence means "finished": it is made atomically (a
 * temp name, then rename). A worker that starts computing an artifact first creates `<hash>.claim` with O_EXCL; other
 * workers wait for the artifact (or for the claim to go stale: its owner died) instead of computing it twice.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';

/** A claim older than this without a heartbeat is stale (its owner was killed). */
export const CLAIM_STALE_MS = 120_000;
const HEARTBEAT_MS = 15_000;

interface ClaimInfo {
  pid: number;
  host: string;
  started: string;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether an existing claim file is stale: its owner on this host is dead, or no heartbeat for CLAIM_STALE_MS. */
export function claimIsStale(claimFile: string, now = Date.now()): boolean {
  try {
    const info = JSON.parse(readFileSync(claimFile, 'utf8')) as ClaimInfo;
    if (info.host === hostname() && !processAlive(info.pid)) return true;
    return now - statSync(claimFile).mtimeMs > CLAIM_STALE_MS;
  } catch {
    // Unreadable (being written or removed): judge by age only.
    try {
      return now - statSync(claimFile).mtimeMs > CLAIM_STALE_MS;
    } catch {
      return true;
    }
  }
}

/** Tries to claim `file` (exclusive create). Returns a release function, or null when someone else holds it. */
export function tryClaim(claimFile: string): (() => void) | null {
  mkdirSync(dirname(claimFile), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(claimFile, 'wx');
      const info: ClaimInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
      writeSync(fd, JSON.stringify(info));
      closeSync(fd);
      const beat = setInterval(() => {
        try {
          const t = new Date();
          utimesSync(claimFile, t, t);
        } catch {
          /* released */
        }
      }, HEARTBEAT_MS);
      beat.unref();
      return () => {
        clearInterval(beat);
        rmSync(claimFile, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (!claimIsStale(claimFile)) return null;
      // Take over a stale claim: rename it away first so two takers cannot both succeed.
      const aside = `${claimFile}.stale.${randomBytes(3).toString('hex')}`;
      try {
        renameSync(claimFile, aside);
        rmSync(aside, { force: true });
      } catch {
        return null;
      }
    }
  }
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `work` while holding the claim `claimFile`, for work that writes in place rather than into one artifact (a
 * synthetic screen generated into its data folder): when another live process holds the claim, waits until it is
 * released (or goes stale), calling `onWait` once, then claims it and runs `work` — which must reuse what the other
 * process finished rather than redo it.
 */
export async function underClaim<T>(
  claimFile: string,
  work: () => Promise<T>,
  opts: { pollMs?: number; onWait?: () => void } = {},
): Promise<T> {
  let waited = false;
  for (;;) {
    const release = tryClaim(claimFile);
    if (release) {
      try {
        return await work();
      } finally {
        release();
      }
    }
    if (!waited) opts.onWait?.();
    waited = true;
    await sleep(opts.pollMs ?? 500);
  }
}

/** An artifact store rooted at a directory (`<workdir>/cache` for heavy artifacts, the results dir for records). */
export class ArtifactStore {
  constructor(readonly root: string) {}

  path(kind: string, name: string): string {
    return join(this.root, kind, name);
  }

  has(kind: string, name: string): boolean {
    return existsSync(this.path(kind, name));
  }

  readJson<T>(kind: string, name: string): T | undefined {
    const p = this.path(kind, name);
    return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as T) : undefined;
  }

  writeJson(kind: string, name: string, value: unknown): void {
    writeFileAtomic(this.path(kind, name), `${JSON.stringify(value, null, 2)}\n`);
  }

  /**
   * Returns the artifact `<kind>/<name>`, computing it at most once across processes: if it exists, `compute` does
   * not run; if another live worker is computing it, waits for it; otherwise claims it and runs `compute(tmpPath)`,
   * which must create `tmpPath` (a file or a directory); the result is renamed into place atomically.
   */
  async ensure(
    kind: string,
    name: string,
    compute: (tmpPath: string) => Promise<void>,
    opts: { pollMs?: number; onWait?: () => void } = {},
  ): Promise<{ path: string; computed: boolean }> {
    const target = this.path(kind, name);
    const claim = `${target}.claim`;
    let waited = false;
    for (;;) {
      if (existsSync(target)) return { path: target, computed: false };
      const release = tryClaim(claim);
      if (release) {
        try {
          if (existsSync(target)) return { path: target, computed: false };
          const tmp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
          try {
            await compute(tmp);
            if (!existsSync(tmp)) throw new Error(`stage ${kind} did not produce its output ${tmp}`);
            renameSync(tmp, target);
          } finally {
            rmSync(tmp, { recursive: true, force: true });
          }
          return { path: target, computed: true };
        } finally {
          release();
        }
      }
      if (!waited) opts.onWait?.();
      waited = true;
      await sleep(opts.pollMs ?? 500);
    }
  }
}
