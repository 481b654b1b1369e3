/**
 * onnxruntime-node sessions: creation options (threads = cores by default, execution providers), a cache keyed by
 * the model's content hash and the options, feeds validated against the graph's declared inputs before native code
 * runs, and conversion between engine tensors and `ort.Tensor`.
 *
 * Execution providers: `cpu` always works. `cuda` works only where the user installed onnxruntime-node's CUDA
 * provider files (README "GPU": `ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js`
 * on a Linux machine with CUDA 12). The process-wide default provider (`setDefaultExecutionProvider`, set from a
 * protocol's `runtime.execution_provider` or a command's `--provider`) applies to every session whose options name
 * none; asking for `cuda` where its provider library is absent is QCB_PROVIDER up front, and a session that fails to
 * load on CUDA (no GPU, wrong CUDA version) is QCB_RUNTIME with the same fix.
 *
 * Determinism: CPU kernels are deterministic for a fixed thread count; random operators (Dropout, RandomNormal, …)
 * get the session's `seed` as their `seed` attribute when they have none (see `seedRandomOps`).
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { QcbError } from '../../errors.js';
import { didYouMean } from '../../util/suggest.js';
import { contentHash } from '../../util/fs.js';
import type { Dim, DType, Graph, Tensor, ValueInfo } from '../ir/graph.js';
import { attr } from '../ir/graph.js';
import { DTYPE_BYTES, dataFromBytes, ORT_TYPE } from '../onnx/dtypes.js';
import { NCHWC_MAX_PLANE, nchwcBlockSize, rewriteNchwc } from './nchwc.js';
import { exportOnnx } from '../onnx/export.js';
import { importOnnx } from '../onnx/import.js';

export type ExecutionProvider = 'cpu' | 'cuda';

/** The execution providers qcbench accepts (`--provider`, `runtime.execution_provider`). */
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'cuda'];

/** The command that fetches onnxruntime-node's CUDA provider files (README "GPU"), run once in the project. */
export const CUDA_INSTALL_COMMAND =
  'ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js';

const CUDA_FIX = `on a Linux machine with an NVIDIA GPU and CUDA 12, fetch onnxruntime-node's CUDA provider files once (needs network): ${CUDA_INSTALL_COMMAND}; or use --provider cpu (runtime: { execution_provider: cpu } in a protocol)`;

/** Whether onnxruntime-node can use `p` here: cpu always; cuda when its provider library is installed. */
export function executionProviderInstalled(p: ExecutionProvider): boolean {
  if (p === 'cpu') return true;
  let dir: string;
  try {
    dir = join(
      dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')),
      'bin',
      'napi-v6',
      process.platform,
      process.arch,
    );
  } catch {
    return false;
  }
  if (!existsSync(dir)) return false;
  return readdirSync(dir).some((f) => f.includes(`onnxruntime_providers_${p}`));
}

/**
 * Checks a provider name (from `--provider` or a protocol) and that it is installed.
 * @param where the flag or protocol key and file, named in errors
 * @throws QCB_USAGE for an unknown name (with did-you-mean), QCB_PROVIDER when the provider is not installed
 */
export function checkExecutionProvider(
  name: string,
  where: { key?: string; file?: string } = { key: '--provider' },
): ExecutionProvider {
  if (!(EXECUTION_PROVIDERS as readonly string[]).includes(name)) {
    throw new QcbError('QCB_USAGE', `unknown execution provider '${name}'`, {
      ...where,
      value: name,
      allowed: EXECUTION_PROVIDERS.join(', '),
      fix: didYouMean(name, EXECUTION_PROVIDERS),
    });
  }
  const p = name as ExecutionProvider;
  if (!executionProviderInstalled(p)) {
    throw new QcbError(
      'QCB_PROVIDER',
      `execution provider '${p}' is not installed: onnxruntime-node's ${p.toUpperCase()} provider library is not in node_modules/onnxruntime-node/bin`,
      { ...where, value: p, allowed: EXECUTION_PROVIDERS.filter(executionProviderInstalled).join(', '), fix: CUDA_FIX },
    );
  }
  return p;
}

let defaultProvider: ExecutionProvider = 'cpu';

/**
 * Sets the execution provider of every session created afterwards whose options name none (process-wide; default
 * cpu). Checks it first: see {@link checkExecutionProvider}.
 */
export function setDefaultExecutionProvider(
  name: string,
  where: { key?: string; file?: string } = { key: '--provider' },
): ExecutionProvider {
  defaultProvider = checkExecutionProvider(name, where);
  return defaultProvider;
}

/** The process-wide default execution provider. */
export function defaultExecutionProvider(): ExecutionProvider {
  return defaultProvider;
}

/** onnxruntime's provider list for a provider: cuda falls back to cpu for nodes CUDA has no kernel for. */
function providerList(p: ExecutionProvider): ExecutionProvider[] {
  return p === 'cpu' ? ['cpu'] : [p, 'cpu'];
}

export interface RuntimeOptions {
  /** Execution providers in order of preference (default: the process-wide default, `setDefaultExecutionProvider`). */
  executionProviders?: ExecutionProvider[];
  /** Intra-op threads (default: the number of cores, `os.availableParallelism()`). */
  intraOpNumThreads?: number;
  /** Seed for random operators without one (default 0). */
  seed?: number;
  /** Write an onnxruntime JSON profile (per-node timings) with this file prefix. */
  profileFilePrefix?: string;
  /** Graph optimisation level (default 'all'). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Skip the session cache (the session is still returned; the caller releases it). */
  noCache?: boolean;
  /**
   * Run convs with computed weights (training steps) through onnxruntime's blocked NCHWc kernels on the CPU
   * (nchwc.ts): a plane-size limit, or 0 for off. Default NCHWC_MAX_PLANE.
   */
  nchwcMaxPlane?: number;
}

/** A loaded model: the ort session plus its declared interface. */
export class EngineSession {
  constructor(
    readonly session: ort.InferenceSession,
    readonly inputs: ValueInfo[],
    readonly outputs: ValueInfo[],
    readonly key: string,
    readonly file?: string,
  ) {}

  /**
   * Runs the model. Feeds are checked first (QCB_FEED); onnxruntime failures become QCB_RUNTIME.
   * @param fetches output names to compute (default all), or pre-allocated output tensors by name
   */
  async run(
    feeds: Record<string, ort.Tensor>,
    fetches?: string[] | Record<string, ort.Tensor>,
  ): Promise<Record<string, ort.Tensor>> {
    validateFeeds(this.inputs, feeds, this.file);
    try {
      const out = fetches
        ? await this.session.run(feeds, fetches as ort.InferenceSession.FetchesType)
        : await this.session.run(feeds);
      return out as Record<string, ort.Tensor>;
    } catch (e) {
      throw new QcbError('QCB_RUNTIME', `onnxruntime failed: ${(e as Error).message}`, {
        file: this.file,
        cause: e,
        fix: 'check the model with `qcbench encoder verify`; if it persists, report it with the model file',
      });
    }
  }

  /** Ends profiling (when enabled) and returns the profile file path. */
  endProfiling(): string | undefined {
    return (this.session as unknown as { endProfiling(): string | undefined }).endProfiling() ?? undefined;
  }
}

const cache = new Map<string, Promise<EngineSession>>();

/** Number of cores onnxruntime uses by default. */
export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

/** onnxruntime session options for our runs (sequential, mem arena, full graph optimisation). */
export function sessionOptions(o: RuntimeOptions = {}): ort.InferenceSession.SessionOptions {
  const eps = o.executionProviders ?? providerList(defaultProvider);
  const so: ort.InferenceSession.SessionOptions = {
    executionProviders: eps,
    intraOpNumThreads: o.intraOpNumThreads ?? defaultThreads(),
    interOpNumThreads: 1,
    graphOptimizationLevel: o.graphOptimizationLevel ?? 'all',
    enableCpuMemArena: true,
    enableMemPattern: true,
    executionMode: 'sequential',
    logSeverityLevel: 3,
  };
  if (o.profileFilePrefix) {
    so.enableProfiling = true;
    so.profileFilePrefix = o.profileFilePrefix;
  }
  return so;
}

const RANDOM_OPS = new Set([
  'Dropout',
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
  'Bernoulli',
]);

/** Gives random operators without a `seed` attribute the given seed, so runs are reproducible. */
export function seedRandomOps(graph: Graph, seed: number): void {
  for (const n of graph.nodes) {
    // ONNX types the attribute as int for Dropout and float for the Random* ops
    if (RANDOM_OPS.has(n.opType) && n.domain === '' && !n.attrs.seed)
      n.attrs.seed = n.opType === 'Dropout' ? attr.int(seed) : attr.float(seed);
  }
}

/**
 * Loads (or returns from the cache) a session for a graph, model bytes or a file path.
 * The cache key is the SHA-256 of the model bytes plus the options.
 */
export async function loadSession(
  model: Graph | Uint8Array,
  opts: RuntimeOptions = {},
  file?: string,
): Promise<EngineSession> {
  let bytes: Uint8Array;
  let inputs: ValueInfo[];
  let outputs: ValueInfo[];
  if (model instanceof Uint8Array) {
    bytes = model;
    const g = importOnnx(model, { file, inferShapes: false });
    inputs = g.inputs;
    outputs = g.outputs;
  } else {
    if (opts.seed !== undefined) seedRandomOps(model, opts.seed);
    const eps = opts.executionProviders ?? providerList(defaultProvider);
    const maxPlane = opts.nchwcMaxPlane ?? NCHWC_MAX_PLANE;
    const block = maxPlane > 0 && eps[0] === 'cpu' ? await nchwcBlockSize() : 0;
    bytes = exportOnnx(block ? rewriteNchwc(model, block, maxPlane).graph : model);
    inputs = model.inputs;
    outputs = model.outputs;
  }
  const so = sessionOptions(opts);
  const key = `${contentHash(bytes)}|${JSON.stringify(so)}`;
  if (!opts.noCache) {
    const hit = cache.get(key);
    if (hit) return hit;
  }
  const p = (async () => {
    try {
      const s = await ort.InferenceSession.create(bytes, so);
      return new EngineSession(s, inputs, outputs, key, file);
    } catch (e) {
      if (!opts.noCache) cache.delete(key);
      const msg = (e as Error).message;
      const ep = (so.executionProviders as string[]).join(', ');
      throw new QcbError('QCB_RUNTIME', `onnxruntime could not load the model: ${msg}`, {
        file,
        cause: e,
        value: { executionProviders: ep },
        fix: ep.includes('cuda') ? CUDA_FIX : 'check the model with `qcbench encoder verify`',
      });
    }
  })();
  if (!opts.noCache) cache.set(key, p);
  return p;
}

/** Releases and forgets all cached sessions. */
export async function clearSessionCache(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  for (const p of all) {
    try {
      await (await p).session.release();
    } catch {
      // a failed creation has nothing to release
    }
  }
}

/** Number of cached sessions (for tests and diagnostics). */
export function sessionCacheSize(): number {
  return cache.size;
}

// ---------------------------------------------------------------------------------------------------------------
// tensors and feeds

/** An ort.Tensor viewing an engine tensor's data (no copy). */
export function toOrt(t: Tensor): ort.Tensor {
  if (t.dtype === 'bool') return new ort.Tensor('bool', t.data as Uint8Array, t.dims);
  return new ort.Tensor(ORT_TYPE[t.dtype] as 'float32', t.data as Float32Array, t.dims);
}

/** An engine tensor viewing an ort.Tensor's data (no copy). */
export function fromOrt(t: ort.Tensor): Tensor {
  const dtype = t.type as DType;
  if (!(dtype in DTYPE_BYTES)) throw new QcbError('QCB_RUNTIME', `unsupported output tensor type ${t.type}`);
  const raw = t.data as unknown as ArrayBufferView;
  // onnxruntime-node hands bool tensors back as Uint8Array already; other views are reinterpreted by bytes
  const data =
    dtype === 'bool' && !(raw instanceof Uint8Array)
      ? dataFromBytes('bool', new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength))
      : (raw as Tensor['data']);
  return { dtype, dims: [...t.dims], data };
}

/** A float32 ort.Tensor from data and dims. */
export function ortF32(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

/**
 * Checks feeds against declared inputs: every input present, dtype equal, rank equal, numeric dims equal and each
 * symbolic dim bound to one size across all inputs. Throws QCB_FEED naming the input, expected and got.
 */
export function validateFeeds(inputs: readonly ValueInfo[], feeds: Record<string, ort.Tensor>, file?: string): void {
  const bound = new Map<string, { size: number; by: string }>();
  for (const v of inputs) {
    const t = feeds[v.name];
    if (!t) {
      throw new QcbError('QCB_FEED', `input '${v.name}' is not fed`, {
        file,
        key: v.name,
        allowed: inputs.map((i) => i.name).join(', '),
        fix: `feed every model input (${describe(v)})`,
      });
    }
    const fail = (why: string) =>
      new QcbError(
        'QCB_FEED',
        `input '${v.name}': ${why}: expected ${describe(v)}, got ${t.type} [${t.dims.join(', ')}]`,
        {
          file,
          key: v.name,
          value: { dtype: t.type, shape: [...t.dims] },
          allowed: describe(v),
          fix: 'feed a tensor of the declared element type and shape',
        },
      );
    if (t.type !== ORT_TYPE[v.dtype]) throw fail('wrong element type');
    if (!v.shape) continue;
    if (t.dims.length !== v.shape.length) throw fail('wrong rank');
    v.shape.forEach((d: Dim, i) => {
      const got = t.dims[i];
      if (typeof d === 'number') {
        if (d !== got) throw fail(`wrong size of axis ${i}`);
      } else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(d)) {
        const b = bound.get(d);
        if (b && b.size !== got) throw fail(`axis ${i} ('${d}') is ${got} but '${b.by}' bound '${d}' to ${b.size}`);
        if (!b) bound.set(d, { size: got, by: v.name });
      }
    });
    const n = t.dims.reduce((a, b) => a * b, 1);
    if ((t.data as ArrayLike<unknown>).length !== n)
      throw fail(`data holds ${(t.data as ArrayLike<unknown>).length} elements, dims say ${n}`);
  }
}

function describe(v: ValueInfo): string {
  return `${v.dtype} [${v.shape ? v.shape.join(', ') : '?'}]`;
}
