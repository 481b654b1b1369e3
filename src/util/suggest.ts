import { QcbError } from '../errors.js';

/** Levenshtein edit distance (insertions, deletions, substitutions), case-insensitive. */
export function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** The closest candidates to `name` (distance ≤ max(2, ⌊len/3⌋), or a prefix/substring match), best first. */
export function closest(name: string, candidates: readonly string[], max = 3): string[] {
  const norm = (s: string) => s.toLowerCase().replace(/[-_ ]/g, '');
  const n = norm(name);
  const limit = Math.max(2, Math.floor(name.length / 3));
  return candidates
    .map((c) => {
      const d = editDistance(n, norm(c));
      const sub = n.length >= 3 && (norm(c).includes(n) || n.includes(norm(c)));
      return { c, d: sub ? Math.min(d, 1) : d };
    })
    .filter((x) => x.d <= limit)
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, max)
    .map((x) => x.c);
}

/** "did you mean …? available: …" for an unknown name. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const best = closest(name, candidates);
  const avail = `available: ${[...candidates].sort().join(', ')}`;
  return best.length ? `did you mean ${best.map((b) => `'${b}'`).join(' or ')}? ${avail}` : avail;
}

/**
 * Looks a name up in a typed registry; an unknown name throws QCB_UNKNOWN_NAME with "did you mean …, available: …".
 * @param kind what the registry holds, e.g. "SSL method"
 */
export function lookup<R extends Record<string, unknown>>(
  registry: R,
  name: string,
  kind: string,
  where: { file?: string; key?: string } = {},
): R[keyof R] {
  if (Object.hasOwn(registry, name)) return registry[name as keyof R];
  const names = Object.keys(registry);
  throw new QcbError('QCB_UNKNOWN_NAME', `unknown ${kind} '${name}'`, {
    ...where,
    value: name,
    allowed: names.sort().join(', '),
    fix: didYouMean(name, names),
  });
}
