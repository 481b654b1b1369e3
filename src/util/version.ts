/** Versions of qcbench and of the packages it runs on, recorded in results, QC model sidecars and `qcbench env`. */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** Installed version of a package, or null when it is not installed. */
export function packageVersion(name: string): string | null {
  try {
    // Walk up from the resolved entry to the package's own package.json (exports maps may hide it).
    let entry: string;
    try {
      entry = require.resolve(name);
    } catch {
      entry = new URL(import.meta.resolve(name)).pathname; // ESM-only packages (no "require" export)
    }
    let dir = dirname(entry);
    for (let i = 0; i < 6; i++) {
      const pj = join(dir, 'package.json');
      if (existsSync(pj)) {
        const j = JSON.parse(readFileSync(pj, 'utf8'));
        if (j.name === name) return j.version;
      }
      dir = dirname(dir);
    }
  } catch {
    /* not installed */
  }
  return null;
}

/** qcbench's own version (package.json). */
export function qcbenchVersion(): string {
  return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
}
