/**
 * The layer order of src/ (docs/architecture.md): every import points into its own folder or to a folder lower in
 * LAYERS, so the folders form no cycle and a newcomer can read the code bottom-up. Static imports, `export … from`
 * and dynamic `import()` all count; type-only imports too (a type is a dependency of the reader).
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/**
 * Lowest first. A group is a row of the layer diagram; within a group a folder may import only the folders listed
 * before it, which fixes one total order and so rules out cycles.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'util'],
  ['engine'],
  ['results', 'protocol'],
  ['render', 'data', 'metrics', 'second-order', 'encoders'],
  ['downstream', 'ssl'],
  ['runner', 'qc', 'reports', 'annotate'],
  ['bench', 'cli'],
];

const ORDER = LAYERS.flat();
const rank = (room: string) => ORDER.indexOf(room);

/** The room of a file under `root`: its top-level folder, or the file's stem for a top-level file (errors.ts). */
function roomOf(root: string, file: string): string {
  const parts = relative(root, file).split(/[\\/]/);
  return parts.length === 1 ? parts[0].replace(/\.ts$/, '') : parts[0];
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

interface Violation {
  file: string;
  imports: string;
  why: string;
}

/** Every import under `root` that breaks the layer order, and every folder missing from LAYERS. */
export function layerViolations(root: string): Violation[] {
  const out: Violation[] = [];
  for (const file of walk(root)) {
    const from = roomOf(root, file);
    if (rank(from) < 0) {
      out.push({ file: relative(root, file), imports: '', why: `'${from}' is not in LAYERS: place it in a layer` });
      continue;
    }
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      const to = roomOf(root, target);
      if (to === from) continue;
      if (rank(to) < 0 || rank(to) > rank(from)) {
        out.push({ file: relative(root, file), imports: spec, why: `${from} may not import ${to} (not below it)` });
      }
    }
  }
  return out;
}

test('every import in src/ points into its own folder or to a lower layer', () => {
  const v = layerViolations(SRC);
  assert.deepEqual(
    v.map((x) => `${x.file} → ${x.imports}: ${x.why}`),
    [],
  );
});

test('every folder of src/ has a place in the layer order', () => {
  const rooms = readdirSync(SRC).map((n) => n.replace(/\.ts$/, ''));
  assert.deepEqual(
    rooms.filter((r) => rank(r) < 0),
    [],
  );
});

test('the check fails on a planted upward import (engine → reports)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-arch-'));
  try {
    cpSync(SRC, dir, { recursive: true });
    const victim = join(dir, 'engine', 'ir', 'graph.ts');
    writeFileSync(victim, `import { buildReport } from '../../reports/build.js';\n${readFileSync(victim, 'utf8')}`);
    const v = layerViolations(dir);
    assert.equal(v.length, 1);
    assert.equal(v[0].file, join('engine', 'ir', 'graph.ts'));
    assert.match(v[0].why, /engine may not import reports/);
    // a peer listed later in the same layer is refused too (data may not import encoders)
    const peer = join(dir, 'data', 'types.ts');
    writeFileSync(peer, `export type { Encoder } from '../encoders/types.js';\n${readFileSync(peer, 'utf8')}`);
    assert.equal(layerViolations(dir).length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
