/**
 * Pretrained ImageNet weights: where they live (`QCBENCH_WEIGHTS`, default `~/.cache/qcbench/weights`), the file
 * names each transfer-learning encoder is looked up under, the feature width its file must give, and the official
 * sources `qcbench weights fetch` downloads from.
 *
 * Looked up per encoder, first found wins:
 *   `<dir>/<name>.onnx`          an ONNX export (torchvision/timm; classifier removed or cut automatically)
 *   `<dir>/<name>.safetensors`   timm/torchvision weights, mapped onto the engine's own builder by state_dict name
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { QcbError } from '../errors.js';
import type { Logger } from '../util/log.js';

/** Transfer-learning encoders that need downloaded weights (paper §2.1). */
export type ImageNetName = 'vgg16' | 'resnet18' | 'convnext_tiny';

export interface WeightsSpec {
  /** Pooled feature width the weights must give (paper: 512 / 512 / 768). */
  dim: number;
  onnx: string;
  safetensors: string;
  /** Official timm hub file (torchvision's own ImageNet weights for vgg16/resnet18 as `tv_in1k`). */
  url: string;
  /** Human-readable origin for reports. */
  source: string;
  /** Lower bound of the file size in bytes (a truncated download is caught before parsing). */
  minBytes: number;
  /** SHA-256 of the official file when pinned (not pinned here: checked by structure — names and shapes). */
  sha256?: string;
  /** Whether the engine has a builder the safetensors can be mapped onto. */
  safetensorsSupported: boolean;
  /** A tensor the safetensors file must contain, with its shape (structure check). */
  probe: { name: string; shape: number[] };
}

export const WEIGHTS = {
  vgg16: {
    dim: 512,
    onnx: 'vgg16.onnx',
    safetensors: 'vgg16.safetensors',
    url: 'https://huggingface.co/timm/vgg16.tv_in1k/resolve/main/model.safetensors',
    source: 'timm vgg16.tv_in1k (torchvision IMAGENET1K_V1 weights)',
    minBytes: 500_000_000,
    safetensorsSupported: true,
    probe: { name: 'features.28.weight', shape: [512, 512, 3, 3] },
  },
  resnet18: {
    dim: 512,
    onnx: 'resnet18.onnx',
    safetensors: 'resnet18.safetensors',
    url: 'https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors',
    source: 'timm resnet18.tv_in1k (torchvision IMAGENET1K_V1 weights)',
    minBytes: 44_000_000,
    safetensorsSupported: true,
    probe: { name: 'layer4.1.conv2.weight', shape: [512, 512, 3, 3] },
  },
  convnext_tiny: {
    dim: 768,
    onnx: 'convnext_tiny.onnx',
    safetensors: 'convnext_tiny.safetensors',
    url: 'https://huggingface.co/timm/convnext_tiny.fb_in1k/resolve/main/model.safetensors',
    source: 'timm convnext_tiny.fb_in1k (Liu et al. 2022 ImageNet-1k weights)',
    minBytes: 100_000_000,
    safetensorsSupported: true,
    probe: { name: 'stages.3.blocks.2.conv_dw.weight', shape: [768, 1, 7, 7] },
  },
} as const satisfies Record<ImageNetName, WeightsSpec>;

/** The weights folder: `QCBENCH_WEIGHTS`, else `~/.cache/qcbench/weights`. */
export function weightsDir(override?: string): string {
  return resolve(override ?? process.env.QCBENCH_WEIGHTS ?? join(homedir(), '.cache', 'qcbench', 'weights'));
}

/** The file found for an encoder, or undefined. */
export function findWeights(
  name: ImageNetName,
  dir = weightsDir(),
): { path: string; format: 'onnx' | 'safetensors' } | undefined {
  const s = WEIGHTS[name];
  const onnx = join(dir, s.onnx);
  if (existsSync(onnx)) return { path: onnx, format: 'onnx' };
  const st = join(dir, s.safetensors);
  if (existsSync(st)) return { path: st, format: 'safetensors' };
  return undefined;
}

/** The command that fixes missing weights (also what skipped cells print). */
export function fetchCommand(name: ImageNetName): string {
  return `qcbench weights fetch ${name}`;
}

/** QCB_WEIGHTS_MISSING for an encoder: the reason, where we looked, and the exact fix command. */
export function weightsMissing(name: ImageNetName, dir = weightsDir()): QcbError {
  const s = WEIGHTS[name];
  return new QcbError(
    'QCB_WEIGHTS_MISSING',
    `ImageNet weights for '${name}' are not present (looked for ${s.onnx} and ${s.safetensors} in ${dir})`,
    {
      file: join(dir, s.onnx),
      key: name,
      fix: `run \`${fetchCommand(name)}\` (needs internet), or put an ONNX export of ${name} (classifier removed or not) at ${join(dir, s.onnx)}; set QCBENCH_WEIGHTS to use another folder`,
    },
  );
}

/**
 * Checks a downloaded safetensors file's structure without loading the tensors: the header parses, the data section
 * is exactly as long as the header says, and the probe tensor is there with its shape.
 * @returns undefined when fine, else what is wrong
 */
export function verifySafetensorsFile(
  path: string,
  probe: { name: string; shape: readonly number[] },
): string | undefined {
  const fd = openSync(path, 'r');
  try {
    const size = statSync(path).size;
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8) return 'shorter than a safetensors header';
    const n = Number(head.readBigUInt64LE(0));
    if (n <= 1 || 8 + n > size || n > 100_000_000) return `header length ${n} does not fit in ${size} bytes`;
    const hb = Buffer.alloc(n);
    readSync(fd, hb, 0, n, 8);
    let header: Record<string, { shape?: number[]; data_offsets?: [number, number] }>;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch {
      return 'header is not JSON (not a safetensors file: an HTML error page?)';
    }
    let end = 0;
    for (const [k, v] of Object.entries(header))
      if (k !== '__metadata__' && v?.data_offsets) end = Math.max(end, v.data_offsets[1]);
    if (8 + n + end !== size)
      return `data section is ${size - 8 - n} bytes, the header describes ${end} (truncated download?)`;
    const p = header[probe.name];
    if (!p) return `tensor '${probe.name}' is missing: weights of another architecture?`;
    if ((p.shape ?? []).join('×') !== probe.shape.join('×'))
      return `tensor '${probe.name}' is [${(p.shape ?? []).join('×')}], expected [${probe.shape.join('×')}]`;
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export interface FetchOptions {
  /** Weights folder (default weightsDir()). */
  dir?: string;
  /** Download from this URL instead of the official one (a mirror). */
  url?: string;
  /** Expected SHA-256 (hex); default the pinned one, if any. */
  sha256?: string;
  /** Download even when the file is present. */
  force?: boolean;
  log?: Logger;
  /** Abort after this many milliseconds without completing (default 30 min). */
  timeoutMs?: number;
}

export interface FetchResult {
  path: string;
  bytes: number;
  sha256: string;
  /** True when the file was already present and nothing was downloaded. */
  present: boolean;
}

/**
 * Downloads an encoder's official safetensors into the weights folder: streamed to a temporary file while hashing,
 * verified (size, structure, SHA-256 when known), fsynced and renamed into place, so a failed or interrupted download
 * never leaves a file under the real name.
 * @throws QCB_DOWNLOAD when offline, on an HTTP error, or when the file does not verify
 */
export async function fetchWeights(name: ImageNetName, o: FetchOptions = {}): Promise<FetchResult> {
  const spec: WeightsSpec = WEIGHTS[name];
  const dir = weightsDir(o.dir);
  const target = join(dir, spec.safetensors);
  if (existsSync(target) && !o.force) {
    const h = createHash('sha256');
    const fd = openSync(target, 'r');
    const buf = Buffer.alloc(1 << 20);
    let k: number;
    while ((k = readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, k));
    closeSync(fd);
    return { path: target, bytes: statSync(target).size, sha256: h.digest('hex'), present: true };
  }
  const url = o.url ?? spec.url;
  const fail = (msg: string, cause?: unknown) =>
    new QcbError('QCB_DOWNLOAD', msg, {
      file: target,
      key: name,
      value: url,
      cause,
      fix: `check the internet connection (Node's fetch does not use HTTP(S)_PROXY), or download ${spec.url} by hand and save it as ${target}; an ONNX export at ${join(dir, spec.onnx)} works too`,
    });
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(o.timeoutMs ?? 30 * 60 * 1000) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw fail(
      `cannot download ${name} weights from ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message} (offline?)`,
      e,
    );
  }
  if (!res.ok || !res.body)
    throw fail(`downloading ${name} weights from ${url} failed: HTTP ${res.status} ${res.statusText}`);
  const expectedLen = Number(res.headers.get('content-length') ?? '0') || undefined;
  mkdirSync(dir, { recursive: true });
  const part = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.part`;
  const fd = openSync(part, 'w');
  const h = createHash('sha256');
  let bytes = 0;
  const prog = o.log?.startProgress(`fetch ${name}`, Math.round((expectedLen ?? spec.minBytes) / 1e6), 'MB');
  let lastMb = 0;
  try {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        h.update(chunk);
        bytes += chunk.length;
        const mb = Math.floor(bytes / 1e6);
        if (mb > lastMb) {
          prog?.tick(mb - lastMb);
          lastMb = mb;
        }
      }
    } catch (e) {
      throw fail(`the download of ${name} weights was interrupted after ${bytes} bytes: ${(e as Error).message}`, e);
    }
    fsyncSync(fd);
    closeSync(fd);
    prog?.finish(`fetch ${name}: ${bytes} bytes`);
    const sha = h.digest('hex');
    if (expectedLen !== undefined && bytes !== expectedLen)
      throw fail(`received ${bytes} bytes of ${expectedLen}: the download is incomplete`);
    if (bytes < spec.minBytes)
      throw fail(`received ${bytes} bytes; ${name} weights are at least ${spec.minBytes} bytes`);
    const want = o.sha256 ?? spec.sha256;
    if (want && want.toLowerCase() !== sha) throw fail(`SHA-256 ${sha} does not match the expected ${want}`);
    const bad = verifySafetensorsFile(part, spec.probe);
    if (bad) throw fail(`the downloaded file does not verify: ${bad}`);
    renameSync(part, target);
    return { path: target, bytes, sha256: sha, present: false };
  } finally {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(part, { force: true });
  }
}
