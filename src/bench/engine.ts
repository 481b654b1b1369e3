/**
 * Engine benchmark, comparable with the PyTorch baseline (torchvision ResNet18, 128×128, batch 64, 2 threads):
 * by default the engine's own torchvision ResNet18 (`buildResNet18`: convolutions without bias, BatchNorm) + a
 * 10-class linear head + softmax cross-entropy, one full fine-tuning step with BatchNorm in training mode (batch
 * statistics, running-statistic updates) and SGD (momentum 0.9, weight decay 1e-4), in images/s; feature extraction
 * in images/s through the exported inference model (BatchNorm in inference mode); peak RSS. Where
 * `python3 -c 'import torch'` works, the same model (torchvision's resnet18 layout with BatchNorm, defined with
 * torch.nn so torchvision need not be installed) runs the same step in `train()` mode and the forward pass in
 * `eval()` mode in a child process, for the ratio.
 *
 * With `model`, an imported ONNX encoder is benchmarked instead (as exported: the torchvision fixture has BatchNorm
 * folded into conv biases) and PyTorch runs the same ResNet18 layout with conv biases and no BatchNorm.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildResNet18 } from '../encoders/resnet18.js';
import { QcbError } from '../errors.js';
import { fromArray, GraphBuilder, randn, randu, zeros } from '../engine/ir/builder.js';
import type { Graph } from '../engine/ir/graph.js';
import { inferShapes } from '../engine/ir/shapes.js';
import { importOnnx } from '../engine/onnx/import.js';
import { loadSession, toOrt } from '../engine/runtime/session.js';
import { inferenceGraph } from '../engine/train/export-inference.js';
import { Sgd } from '../engine/train/optim/sgd.js';
import { Trainer } from '../engine/train/trainer.js';

export interface BenchOptions {
  /**
   * An encoder ONNX file to benchmark as imported; default the engine's own torchvision ResNet18 with BatchNorm in
   * training mode (the baseline's model).
   */
  model?: string;
  batch?: number;
  size?: number;
  /** Timed training steps after one warm-up step. */
  steps?: number;
  threads?: number;
  /** Run the PyTorch comparison when torch is importable (default true). */
  torch?: boolean;
  /**
   * Interleave single engine and PyTorch calls and report the median of the per-pair ratios (steadier under a
   * varying machine load); default false: each side's timed calls run as a block while the other is idle.
   */
  paired?: boolean;
  /** Profile one extra training step and report time per operator type. */
  profile?: boolean;
  onProgress?: (msg: string) => void;
}

export interface OpShare {
  op: string;
  ms: number;
  share: number;
  count: number;
}

export interface BenchResult {
  /** The ONNX file benchmarked, or `resnet18` for the engine's own torchvision ResNet18. */
  model: string;
  /** BatchNorm nodes trained with batch statistics in the training step (20 for the default ResNet18). */
  bn_training_nodes: number;
  batch: number;
  size: number;
  threads: number;
  train_img_s: number;
  features_img_s: number;
  peak_rss_gb: number;
  step_seconds: number[];
  compile_seconds: number;
  torch?:
    | { python: string; version: string; train_img_s: number; features_img_s: number; peak_rss_gb: number }
    | { error: string };
  ratio_train?: number;
  ratio_features?: number;
  profile?: OpShare[];
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Name of the built-in benchmark model in {@link BenchResult.model}. */
export const BUILTIN_MODEL = 'resnet18';

const CLASSES = 10;

/** A 10-class linear head and mean softmax cross-entropy against one-hot `labels_onehot`, output `loss`. */
function appendHeadAndLoss(b: GraphBuilder, feat: string, batch: string | number, dim: number, classes: number): void {
  const y = b.input('labels_onehot', 'float32', [batch, classes]);
  const logits = b.gemm(
    feat,
    b.param('head.weight', randn([classes, dim], 0.01, 7)),
    b.param('head.bias', zeros([classes])),
    { transB: true },
  );
  const ce = b.neg(b.reduceMean(b.reduceSum(b.mul(b.logSoftmax(logits), y), [1], false), undefined, false));
  b.output(ce, 'loss');
}

/**
 * The engine's torchvision ResNet18 (BatchNorm, torchvision initialisation) with a 10-class linear head and softmax
 * cross-entropy: input `input` N×3×S×S and `labels_onehot` N×10, outputs `features` N×512 and the scalar `loss`.
 * Compiled as a training step, its BatchNorm nodes train (their scale and bias are trainable parameters).
 */
export function resnet18ClassifierGraph(size: number, classes = CLASSES, seed = 0): Graph {
  const b = new GraphBuilder('resnet18_bench');
  const x = b.input('input', 'float32', ['N', 3, size, size]);
  const r = buildResNet18(b, x, { seed });
  b.output(r.features, 'features');
  appendHeadAndLoss(b, 'features', 'N', 512, classes);
  const g = b.build();
  inferShapes(g);
  return g;
}

/** The fixture encoder with a 10-class linear head and softmax cross-entropy loss, input resized to S×S. */
export function classifierGraph(model: string, size: number, classes = 10): Graph {
  const g = importOnnx(model);
  const inp = g.inputs[0];
  inp.shape = [inp.shape?.[0] ?? 'N', inp.shape?.[1] ?? 3, size, size];
  g.values.clear();
  inferShapes(g, { file: model });
  const feat = g.outputs[0].name;
  const dim = g.values.get(feat)?.shape?.[1];
  if (typeof dim !== 'number')
    throw new QcbError('QCB_ONNX_GRAPH', `features of ${model} have no static width`, { file: model });
  const b = new GraphBuilder(g);
  appendHeadAndLoss(b, feat, inp.shape[0], dim, classes);
  return b.build();
}

/** Peak resident set size of this process in GB. */
function peakRssGb(): number {
  return (process.resourceUsage().maxRSS * 1024) / 1e9;
}

export async function benchEngine(o: BenchOptions): Promise<BenchResult> {
  const B = o.batch ?? 64;
  const S = o.size ?? 128;
  const steps = o.steps ?? 5;
  const threads = o.threads ?? 2;
  const log = o.onProgress ?? (() => {});
  const builtin = o.model === undefined;
  if (builtin && B < 2) {
    throw new QcbError('QCB_USAGE', `BatchNorm in training mode needs at least 2 images per batch, got --batch ${B}`, {
      key: '--batch',
      value: B,
      allowed: 'an integer ≥ 2',
      fix: 'use --batch 2 or more (PyTorch refuses a batch of one in train mode too)',
    });
  }
  const x = randu([B, 3, S, S], 0, 1, 1);
  const y = fromArray(
    Array.from({ length: B * CLASSES }, (_, i) => (i % CLASSES === Math.floor(i / CLASSES) % CLASSES ? 1 : 0)),
    [B, CLASSES],
  );

  const t0 = performance.now();
  const graph = builtin ? resnet18ClassifierGraph(S) : classifierGraph(o.model as string, S);
  const spec = { graph, loss: 'loss', optimizer: new Sgd({ momentum: 0.9, weightDecay: 1e-4 }) };
  const tr = await Trainer.create(spec, { intraOpNumThreads: threads, noCache: true });
  const compileSeconds = (performance.now() - t0) / 1000;
  const bnTraining = tr.compiled.state.filter((c) => c.name.endsWith('running_mean')).length;
  const feeds = { [graph.inputs[0].name]: x, labels_onehot: y };

  // features: the built-in model's exported inference graph (BatchNorm in inference mode), or the file as imported
  let fg: Graph;
  if (builtin) fg = inferenceGraph(tr, { outputs: ['features'] });
  else {
    fg = importOnnx(o.model as string);
    fg.inputs[0].shape = [fg.inputs[0].shape?.[0] ?? 'N', 3, S, S];
    fg.values.clear();
    inferShapes(fg);
  }
  const fs = await loadSession(fg, { intraOpNumThreads: threads, noCache: true });
  const xin = toOrt(x);

  // PyTorch runs in a child process that waits for commands. By default each side runs its timed calls as a block
  // while the other is idle: interleaving single steps (--paired) slowed PyTorch's steps by 15–20% on the 2-core
  // machine (ResNet18 training 35–37 img/s interleaved vs 44–46 alone) and far less ours, which flatters the ratio.
  // --paired stays for machines with a varying load, where a ratio of paired steps is the steadier figure.
  const peer = (o.torch ?? true) ? await TorchPeer.start(B, S, threads, builtin) : undefined;
  // both runtimes' thread pools spin-wait for a while after work; a short idle gap before each timed call keeps one
  // side's spinning threads from slowing the other
  const settle = () => new Promise((r) => setTimeout(r, 100));
  const torchOk = peer instanceof TorchPeer ? peer : undefined;
  const paired = o.paired ?? false;
  try {
    const ft: number[] = [];
    const tft: number[] = [];
    const nf = Math.max(3, steps);
    const timeFeatures = async () => {
      await settle();
      const t = performance.now();
      await fs.run({ [fg.inputs[0].name]: xin });
      ft.push((performance.now() - t) / 1000);
    };
    const torchTime = async (what: 'features' | 'train', into: number[]) => {
      await settle();
      if (torchOk) into.push(await torchOk.time(what));
    };
    await fs.run({ [fg.inputs[0].name]: xin });
    await torchOk?.time('features');
    for (let i = 0; i < nf; i++) {
      await timeFeatures();
      if (paired) await torchTime('features', tft);
    }
    if (!paired) for (let i = 0; i < nf; i++) await torchTime('features', tft);
    await fs.session.release();
    log(`features: ${(B / median(ft)).toFixed(1)} img/s${torchOk ? ` (PyTorch ${(B / median(tft)).toFixed(1)})` : ''}`);

    const st: number[] = [];
    const tst: number[] = [];
    await tr.step(feeds, 0.01);
    for (let i = 0; i < steps; i++) {
      await settle();
      const t = performance.now();
      await tr.step(feeds, 0.01);
      st.push((performance.now() - t) / 1000);
      if (paired) {
        if (i === 0) await torchOk?.time('train');
        await torchTime('train', tst);
      }
      log(
        `train step ${i + 1}/${steps}: ${(B / st[i]).toFixed(1)} img/s${paired && torchOk ? ` (PyTorch ${(B / tst[i]).toFixed(1)})` : ''}`,
      );
    }
    if (!paired && torchOk) {
      // two warm-up steps: PyTorch's first steps after our block run 5–10% slower
      for (let i = 0; i < 2; i++) await torchOk.time('train');
      for (let i = 0; i < steps; i++) {
        await torchTime('train', tst);
        log(`PyTorch train step ${i + 1}/${steps}: ${(B / tst[i]).toFixed(1)} img/s`);
      }
    }
    await tr.session.session.release();
    const res: BenchResult = {
      model: o.model ?? BUILTIN_MODEL,
      bn_training_nodes: bnTraining,
      batch: B,
      size: S,
      threads,
      train_img_s: B / median(st),
      features_img_s: B / median(ft),
      peak_rss_gb: peakRssGb(),
      step_seconds: st,
      compile_seconds: compileSeconds,
    };
    if (torchOk) {
      const fin = await torchOk.close();
      res.torch = {
        python: torchOk.python,
        version: fin.version,
        train_img_s: B / median(tst),
        features_img_s: B / median(tft),
        peak_rss_gb: fin.peak_rss_gb,
      };
      // paired: median of the per-pair ratios (each engine step against the PyTorch step right after it);
      // blocks: ratio of the medians
      res.ratio_train = paired ? median(st.map((v, i) => tst[i] / v)) : median(tst) / median(st);
      res.ratio_features = paired ? median(ft.map((v, i) => tft[i] / v)) : median(tft) / median(ft);
    } else if (peer && !(peer instanceof TorchPeer)) res.torch = peer;

    if (o.profile) {
      const prefix = join(tmpdir(), `qcbench-prof-${process.pid}`);
      const ptr = await Trainer.create(spec, { intraOpNumThreads: threads, noCache: true, profileFilePrefix: prefix });
      await ptr.step(feeds, 0.01);
      ptr.session.endProfiling();
      await ptr.session.session.release();
      res.profile = readProfile(prefix);
    }
    return res;
  } finally {
    torchOk?.kill();
  }
}

/** Sums onnxruntime profile kernel times per operator type (the newest profile file with the prefix). */
export function readProfile(prefix: string): OpShare[] {
  const dir = tmpdir();
  const base = prefix.slice(dir.length + 1);
  const files = readdirSync(dir).filter((f: string) => f.startsWith(base) && f.endsWith('.json'));
  if (files.length === 0) return [];
  const file = join(dir, files.sort().at(-1) as string);
  const events = JSON.parse(readFileSync(file, 'utf8')) as {
    cat?: string;
    name: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  for (const f of files) rmSync(join(dir, f), { force: true });
  const by = new Map<string, { ms: number; count: number }>();
  let total = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? '?';
    const r = by.get(op) ?? { ms: 0, count: 0 };
    r.ms += e.dur / 1000;
    r.count++;
    by.set(op, r);
    total += e.dur / 1000;
  }
  return [...by].map(([op, r]) => ({ op, ms: r.ms, count: r.count, share: r.ms / total })).sort((a, b) => b.ms - a.ms);
}

/**
 * The PyTorch side: torchvision's resnet18 layout (BasicBlock; conv without bias + BatchNorm, or with `bn` 0 conv with
 * bias and no BatchNorm, as the BN-folded fixture), torchvision's initialisation, + a 10-class linear head. The
 * training step runs in `train()` mode (batch statistics), feature extraction in `eval()` mode under `no_grad`.
 */
const TORCH_SCRIPT = `
import sys, time, json, resource
import torch, torch.nn as nn, torch.nn.functional as F
B, S, threads, bn = map(int, sys.argv[1:5])
torch.set_num_threads(threads); torch.manual_seed(0)
def conv(cin, cout, k, stride, pad): return nn.Conv2d(cin, cout, k, stride, pad, bias=not bn)
def norm(c): return nn.BatchNorm2d(c) if bn else nn.Identity()
class BasicBlock(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.conv1 = conv(cin, cout, 3, stride, 1); s.bn1 = norm(cout)
        s.conv2 = conv(cout, cout, 3, 1, 1); s.bn2 = norm(cout)
        s.downsample = nn.Sequential(conv(cin, cout, 1, stride, 0), norm(cout)) if stride != 1 or cin != cout else None
    def forward(s, x):
        y = s.bn2(s.conv2(F.relu(s.bn1(s.conv1(x)))))
        return F.relu(y + (s.downsample(x) if s.downsample is not None else x))
class ResNet18(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv1 = conv(3, 64, 7, 2, 3); s.bn1 = norm(64)
        L = []; cin = 64
        for cout, stride in [(64,1),(64,1),(128,2),(128,1),(256,2),(256,1),(512,2),(512,1)]:
            L.append(BasicBlock(cin, cout, stride)); cin = cout
        s.layers = nn.Sequential(*L); s.fc = nn.Linear(512, 10)
        for m in s.modules():
            if isinstance(m, nn.Conv2d): nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d): nn.init.constant_(m.weight, 1); nn.init.constant_(m.bias, 0)
    def features(s, x):
        x = F.max_pool2d(F.relu(s.bn1(s.conv1(x))), 3, 2, 1)
        return torch.flatten(F.adaptive_avg_pool2d(s.layers(x), 1), 1)
    def forward(s, x): return s.fc(s.features(x))
m = ResNet18()
x = torch.rand(B, 3, S, S); y = torch.arange(B) % 10
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
def train():
    m.train(); opt.zero_grad(set_to_none=True); loss = F.cross_entropy(m(x), y); loss.backward(); opt.step()
def features():
    m.eval()
    with torch.no_grad(): m.features(x)
print(json.dumps({"ready": True, "version": torch.__version__}), flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "quit": break
    t = time.perf_counter(); (train if cmd == "train" else features)(); dt = time.perf_counter() - t
    print(json.dumps({"t": dt}), flush=True)
print(json.dumps({"version": torch.__version__, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}), flush=True)
`;

/** A PyTorch child process that times one training step or forward pass per command (stdin/stdout JSON lines). */
export class TorchPeer {
  private buf = '';
  private waiters: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  private exited?: Error;
  private lines: string[] = [];

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly python: string,
  ) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      this.buf += d;
      let k = this.buf.indexOf('\n');
      while (k >= 0) {
        const line = this.buf.slice(0, k);
        this.buf = this.buf.slice(k + 1);
        const w = this.waiters.shift();
        if (w) w.resolve(line);
        else this.lines.push(line);
        k = this.buf.indexOf('\n');
      }
    });
    child.on('exit', (code) => {
      this.exited = new Error(`PyTorch process exited (${code})`);
      for (const w of this.waiters.splice(0)) w.reject(this.exited);
    });
  }

  private next(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
    });
  }

  /**
   * Starts the first python (python3, then /usr/bin/python3) that imports torch; returns an `{ error }` object when
   * none does or the model cannot be built.
   */
  static async start(B: number, S: number, threads: number, bn = true): Promise<TorchPeer | { error: string }> {
    for (const py of ['python3', '/usr/bin/python3']) {
      if (py.startsWith('/') && !existsSync(py)) continue;
      if (spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status !== 0) continue;
      const child = spawn(py, ['-c', TORCH_SCRIPT, String(B), String(S), String(threads), bn ? '1' : '0'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => {
        err += d;
      });
      const peer = new TorchPeer(child, py);
      try {
        JSON.parse(await peer.next());
        return peer;
      } catch {
        child.kill();
        return { error: `PyTorch failed to start: ${err.trim().split('\n').at(-1) ?? ''}` };
      }
    }
    return {
      error:
        "no python3 with torch found (tried python3, /usr/bin/python3); install PyTorch to compare (e.g. Debian's python3-torch)",
    };
  }

  /** Runs one 'train' step or one 'features' pass in PyTorch and returns its seconds. */
  async time(kind: 'train' | 'features'): Promise<number> {
    this.child.stdin.write(`${kind}\n`);
    return (JSON.parse(await this.next()) as { t: number }).t;
  }

  /** Ends the process and returns its version and peak RSS. */
  async close(): Promise<{ version: string; peak_rss_gb: number }> {
    this.child.stdin.write('quit\n');
    return JSON.parse(await this.next()) as { version: string; peak_rss_gb: number };
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill();
  }
}
