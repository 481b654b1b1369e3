/**
 * A small schema language for protocol files: each key has a kind, bounds and a default. `check` walks a parsed YAML
 * value against a spec, fills defaults and returns every problem with its key path, the bad value, what is allowed
 * and a fix — so the resolver can report them all at once, each naming file and line.
 */
import { closest } from '../util/suggest.js';

export type Spec =
  | { kind: 'int'; min?: number; max?: number; default?: number; doc?: string }
  | { kind: 'number'; min?: number; max?: number; gt?: number; default?: number; doc?: string }
  | { kind: 'string'; default?: string; doc?: string; pattern?: RegExp; patternDoc?: string }
  | { kind: 'path'; default?: string; doc?: string }
  | { kind: 'bool'; default?: boolean; doc?: string }
  | { kind: 'enum'; values: readonly string[]; what: string; default?: string; doc?: string }
  | { kind: 'list'; of: Spec; minLength?: number; unique?: boolean; default?: unknown[]; doc?: string }
  | { kind: 'object'; fields: Record<string, Spec>; required?: readonly string[]; doc?: string; open?: boolean }
  | { kind: 'map'; of: Spec; keys?: MapKeys; default?: object; doc?: string }
  | { kind: 'nullable'; of: Spec; default?: null; doc?: string }
  | { kind: 'any'; default?: unknown; doc?: string }
  | { kind: 'oneOf'; of: readonly Spec[]; doc?: string };

/**
 * What the keys of a `map` may be: names from a list (`values`), or any name matching `pattern` (described by
 * `patternDoc`) — for keys that become ids and path components, such as data-set names.
 */
export type MapKeys =
  | { values: readonly string[]; what: string }
  | { pattern: RegExp; patternDoc: string; what: string };

/** One problem found in a protocol. */
export interface Issue {
  code: 'QCB_PROTOCOL_KEY' | 'QCB_PROTOCOL_TYPE' | 'QCB_PROTOCOL_VALUE' | 'QCB_UNKNOWN_NAME';
  /** Key path as an array (`['tasks', 'linear', 'epochs']`). */
  path: (string | number)[];
  message: string;
  value?: unknown;
  allowed?: string;
  fix: string;
}

/** `tasks.linear.milestones[1]` */
export function formatPath(path: (string | number)[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${p}` : p;
  return s || '(top level)';
}

function describe(spec: Spec): string {
  switch (spec.kind) {
    case 'int':
      return `an integer${range(spec.min, spec.max)}`;
    case 'number':
      return `a number${spec.gt !== undefined ? ` > ${spec.gt}` : ''}${range(spec.min, spec.max)}`;
    case 'string':
      return spec.patternDoc ?? 'a string';
    case 'path':
      return 'a file or directory path (relative to the protocol file; ${VAR} and ${VAR:-default} are expanded)';
    case 'bool':
      return 'true or false';
    case 'enum':
      return `one of: ${spec.values.join(', ')}`;
    case 'list':
      return `a list of ${describe(spec.of)}${spec.minLength ? ` (at least ${spec.minLength})` : ''}`;
    case 'object':
      return `a mapping with keys: ${Object.keys(spec.fields).join(', ')}`;
    case 'map':
      return spec.keys ? `a mapping from ${spec.keys.what} names to settings` : 'a mapping';
    case 'nullable':
      return `null or ${describe(spec.of)}`;
    case 'any':
      return 'any value';
    case 'oneOf':
      return spec.of.map(describe).join(', or ');
  }
}

function range(min?: number, max?: number): string {
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` ≥ ${min}`;
  if (max !== undefined) return ` ≤ ${max}`;
  return '';
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
}

/** True when `value` has the YAML type `spec` takes (a scalar, a list or a mapping), whatever its content. */
function accepts(spec: Spec, value: unknown): boolean {
  const mapping = typeof value === 'object' && value !== null && !Array.isArray(value);
  switch (spec.kind) {
    case 'object':
    case 'map':
      return mapping;
    case 'list':
      return Array.isArray(value);
    case 'nullable':
      return value === null || accepts(spec.of, value);
    case 'oneOf':
      return spec.of.some((s) => accepts(s, value));
    case 'any':
      return true;
    case 'bool':
      return typeof value === 'boolean';
    case 'int':
    case 'number':
      return typeof value === 'number';
    default:
      return typeof value === 'string' || typeof value === 'number';
  }
}

function hasDefault(spec: Spec): boolean {
  return 'default' in spec && spec.default !== undefined;
}

function defaultOf(spec: Spec): unknown {
  if (spec.kind === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(spec.fields)) {
      if (hasDefault(s) || s.kind === 'object') out[k] = defaultOf(s);
    }
    return out;
  }
  if (spec.kind === 'nullable' && !hasDefault(spec)) return null;
  const d = (spec as { default?: unknown }).default;
  return d === undefined ? undefined : structuredClone(d);
}

/**
 * Checks `value` against `spec`, returning the value with defaults filled; problems are pushed to `issues`.
 * `expand` turns path strings into their final form (environment variables, relative to the protocol file).
 */
export function check(
  value: unknown,
  spec: Spec,
  path: (string | number)[],
  issues: Issue[],
  expand: (s: string, path: (string | number)[]) => string = (s) => s,
): unknown {
  if (value === undefined) return defaultOf(spec);
  const bad = (code: Issue['code'], message: string, fix: string) => {
    issues.push({ code, path, message, value, allowed: describe(spec), fix });
    return defaultOf(spec);
  };
  const where = formatPath(path);
  switch (spec.kind) {
    case 'any':
      return value;
    case 'oneOf': {
      // the alternative of the value's YAML type (a name or a mapping); a value of no alternative's type is refused
      const alt = spec.of.find((s) => accepts(s, value));
      if (!alt)
        return bad(
          'QCB_PROTOCOL_TYPE',
          `${where} must be ${describe(spec)}, got ${typeName(value)}`,
          `write ${where} as ${describe(spec)}`,
        );
      return check(value, alt, path, issues, expand);
    }
    case 'nullable':
      return value === null ? null : check(value, spec.of, path, issues, expand);
    case 'bool':
      if (typeof value !== 'boolean')
        return bad('QCB_PROTOCOL_TYPE', `${where} must be true or false`, `write ${where}: true or false`);
      return value;
    case 'int':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value))
        return bad(
          'QCB_PROTOCOL_TYPE',
          `${where} must be ${describe(spec)}, got ${typeName(value)}`,
          `set ${where} to ${describe(spec)}`,
        );
      if (spec.kind === 'int' && !Number.isInteger(value))
        return bad('QCB_PROTOCOL_TYPE', `${where} must be an integer, got ${value}`, `set ${where} to a whole number`);
      const tooLow =
        (spec.min !== undefined && value < spec.min) ||
        (spec.kind === 'number' && spec.gt !== undefined && value <= spec.gt);
      const tooHigh = spec.max !== undefined && value > spec.max;
      if (tooLow || tooHigh)
        return bad('QCB_PROTOCOL_VALUE', `${where} is out of range: ${value}`, `set ${where} to ${describe(spec)}`);
      return value;
    }
    case 'string':
    case 'path': {
      if (typeof value !== 'string' && typeof value !== 'number')
        return bad(
          'QCB_PROTOCOL_TYPE',
          `${where} must be ${describe(spec)}, got ${typeName(value)}`,
          `set ${where} to a string`,
        );
      const s = String(value);
      if (spec.kind === 'string' && spec.pattern && !spec.pattern.test(s))
        return bad(
          'QCB_PROTOCOL_VALUE',
          `${where} is not ${describe(spec)}: '${s}'`,
          `set ${where} to ${describe(spec)}`,
        );
      return spec.kind === 'path' ? expand(s, path) : s;
    }
    case 'enum': {
      if (typeof value !== 'string')
        return bad(
          'QCB_PROTOCOL_TYPE',
          `${where} must be a ${spec.what} name, got ${typeName(value)}`,
          `set ${where} to ${describe(spec)}`,
        );
      if (!spec.values.includes(value)) {
        const near = closest(value, spec.values);
        return bad(
          'QCB_UNKNOWN_NAME',
          `${where}: unknown ${spec.what} '${value}'`,
          near.length ? `did you mean ${near.map((n) => `'${n}'`).join(' or ')}?` : `use ${describe(spec)}`,
        );
      }
      return value;
    }
    case 'list': {
      if (!Array.isArray(value))
        return bad(
          'QCB_PROTOCOL_TYPE',
          `${where} must be a list, got ${typeName(value)}`,
          `write ${where} as a YAML list, e.g. [a, b]`,
        );
      if (spec.minLength !== undefined && value.length < spec.minLength)
        return bad('QCB_PROTOCOL_VALUE', `${where} needs at least ${spec.minLength} item(s)`, `add items to ${where}`);
      const out = value.map((v, i) => check(v, spec.of, [...path, i], issues, expand));
      if (spec.unique) {
        const seen = new Set<string>();
        value.forEach((v, i) => {
          const k = JSON.stringify(v);
          if (seen.has(k))
            issues.push({
              code: 'QCB_PROTOCOL_VALUE',
              path: [...path, i],
              message: `${formatPath([...path, i])} repeats ${k}`,
              value: v,
              fix: 'remove the duplicate',
            });
          seen.add(k);
        });
      }
      return out;
    }
    case 'object':
    case 'map': {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        return bad(
          'QCB_PROTOCOL_TYPE',
          `${where} must be a mapping, got ${typeName(value)}`,
          `write ${where} as key: value lines`,
        );
      const obj = value as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      if (spec.kind === 'map') {
        for (const [k, v] of Object.entries(obj)) {
          if (spec.keys && 'pattern' in spec.keys && !spec.keys.pattern.test(k)) {
            issues.push({
              code: 'QCB_PROTOCOL_VALUE',
              path: [...path, k],
              message: `${formatPath([...path, k])}: ${spec.keys.what} name '${k}' is not ${spec.keys.patternDoc}`,
              value: k,
              allowed: spec.keys.patternDoc,
              fix: `rename it using only ${spec.keys.patternDoc}`,
            });
            continue;
          }
          if (spec.keys && 'values' in spec.keys && !spec.keys.values.includes(k)) {
            const near = closest(k, spec.keys.values);
            issues.push({
              code: 'QCB_UNKNOWN_NAME',
              path: [...path, k],
              message: `${formatPath([...path, k])}: unknown ${spec.keys.what} '${k}'`,
              value: k,
              allowed: spec.keys.values.join(', '),
              fix: near.length
                ? `did you mean ${near.map((n) => `'${n}'`).join(' or ')}?`
                : `use one of: ${spec.keys.values.join(', ')}`,
            });
            continue;
          }
          out[k] = check(v, spec.of, [...path, k], issues, expand);
        }
        return out;
      }
      const known = Object.keys(spec.fields);
      for (const [k, v] of Object.entries(obj)) {
        if (!(k in spec.fields)) {
          if (spec.open) {
            out[k] = v;
            continue;
          }
          const near = closest(k, known);
          issues.push({
            code: 'QCB_PROTOCOL_KEY',
            path: [...path, k],
            message: `unknown key '${formatPath([...path, k])}'`,
            value: k,
            allowed: known.join(', '),
            fix: near.length
              ? `did you mean '${formatPath([...path, near[0]])}'?`
              : `remove it; allowed keys here: ${known.join(', ')}`,
          });
        }
      }
      for (const [k, s] of Object.entries(spec.fields)) {
        if (obj[k] === undefined && spec.required?.includes(k)) {
          issues.push({
            code: 'QCB_PROTOCOL_KEY',
            path: [...path, k],
            message: `missing required key '${formatPath([...path, k])}'`,
            allowed: describe(s),
            fix: `add ${formatPath([...path, k])}: ${describe(s)}`,
          });
          continue;
        }
        const r = check(obj[k], s, [...path, k], issues, expand);
        if (r !== undefined) out[k] = r;
      }
      return out;
    }
  }
}
