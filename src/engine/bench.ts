/**
 * Engine benchmark: torchvision ResNet18 (the exported fixture, BatchNorm folded into conv biases) at S×S, batch B:
 * a full fine-tuning step (features → linear head → softmax cross-entropy, SGD momentum 0.9, weight decay 1e-4) in
 * images/s, feature extraction in images/s, peak RSS; and, where `python3 -c 'import torch'` works, the same step
 * and forward pass in PyTorch (same architecture: conv+bias, no BN) in a child process, for the ratio.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QcbError } from '../errors.js';
import { fromArray, GraphBuilder, randn, randu, zeros } from './ir/builder.js';
import type { Graph } from './ir/graph.js';
import { inferShapes } from './ir/shapes.js';
import { importOnnx } from './onnx/import.js';
import { loadSession, toOrt } from './runtime/session.js';
import { Sgd } from './train/optim/sgd.js';
import { Trainer } from './train/trainer.js';

export interface BenchOptions {
  model: string;
  batch?: number;
  size?: number;
  /** Timed training steps after one warm-up step. */
  steps?: number;
  threads?: number;
  /** Run the PyTorch comparison when torch is importable (default true). */
  torch?: boolean;
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
  model: string;
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
  const y = b.input('labels_onehot', 'float32', [inp.shape[0], classes]);
  const logits = b.gemm(
    feat,
    b.param('head.weight', randn([classes, dim], 0.01, 7)),
    b.param('head.bias', zeros([classes])),
    { transB: true },
  );
  const ce = b.neg(b.reduceMean(b.reduceSum(b.mul(b.logSoftmax(logits), y), [1], false), undefined, false));
  b.output(ce, 'loss');
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
  const x = randu([B, 3, S, S], 0, 1, 1);
  const y = fromArray(
    Array.from({ length: B * 10 }, (_, i) => (i % 10 === Math.floor(i / 10) % 10 ? 1 : 0)),
    [B, 10],
  );

  const fg = importOnnx(o.model);
  fg.inputs[0].shape = [fg.inputs[0].shape?.[0] ?? 'N', 3, S, S];
  fg.values.clear();
  inferShapes(fg);
  const fs = await loadSession(fg, { intraOpNumThreads: threads, noCache: true });
  const xin = toOrt(x);
  const t0 = performance.now();
  const graph = classifierGraph(o.model, S);
  const spec = { graph, loss: 'loss', optimizer: new Sgd({ momentum: 0.9, weightDecay: 1e-4 }) };
  const tr = await Trainer.create(spec, { intraOpNumThreads: threads, noCache: true });
  const compileSeconds = (performance.now() - t0) / 1000;
  const feeds = { [graph.inputs[0].name]: x, labels_onehot: y };

  // PyTorch runs in a child process that waits for commands, so that its steps interleave with ours: on a shared
  // machine both sides then see the same load and the ratio stays meaningful even when absolute figures do not.
  const peer = (o.torch ?? true) ? await TorchPeer.start(B, S, threads) : undefined;
  // both runtimes' thread pools spin-wait for a while after work; a short idle gap before each timed call keeps one
  // side's spinning threads from slowing the other
  const settle = () => new Promise((r) => setTimeout(r, 100));
  const torchOk = peer instanceof TorchPeer ? peer : undefined;
  try {
    const ft: number[] = [];
    const tft: number[] = [];
    await fs.run({ [fg.inputs[0].name]: xin });
    await torchOk?.time('features');
    for (let i = 0; i < Math.max(3, steps); i++) {
      await settle();
      const t = performance.now();
      await fs.run({ [fg.inputs[0].name]: xin });
      ft.push((performance.now() - t) / 1000);
      await settle();
      if (torchOk) tft.push(await torchOk.time('features'));
    }
    await fs.session.release();
    log(`features: ${(B / median(ft)).toFixed(1)} img/s${torchOk ? ` (PyTorch ${(B / median(tft)).toFixed(1)})` : ''}`);

    await tr.step(feeds, 0.01);
    await torchOk?.time('train');
    const st: number[] = [];
    const tst: number[] = [];
    for (let i = 0; i < steps; i++) {
      await settle();
      const t = performance.now();
      await tr.step(feeds, 0.01);
      st.push((performance.now() - t) / 1000);
      await settle();
      if (torchOk) tst.push(await torchOk.time('train'));
      log(
        `train step ${i + 1}/${steps}: ${(B / st[i]).toFixed(1)} img/s${torchOk ? ` (PyTorch ${(B / tst[i]).toFixed(1)})` : ''}`,
      );
    }
    await tr.session.session.release();
    const res: BenchResult = {
      model: o.model,
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
      // ratio of paired medians: each engine step is compared with the PyTorch step run right after it
      res.ratio_train = median(st.map((v, i) => tst[i] / v));
      res.ratio_features = median(ft.map((v, i) => tft[i] / v));
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
function readProfile(prefix: string): OpShare[] {
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

/** The PyTorch side: ResNet18 (torchvision BasicBlock layout, conv with bias, no BN) + linear head, same step. */
const TORCH_SCRIPT = `
import sys, time, json, resource
import torch, torch.nn as nn, torch.nn.functional as F
B, S, threads = map(int, sys.argv[1:4])
torch.set_num_threads(threads); torch.manual_seed(0)
class Block(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.c1 = nn.Conv2d(cin, cout, 3, stride, 1); s.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        s.down = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None
    def forward(s, x):
        y = s.c2(F.relu(s.c1(x)))
        return F.relu(y + (s.down(x) if s.down is not None else x))
class ResNet18(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv1 = nn.Conv2d(3, 64, 7, 2, 3)
        L = []; cin = 64
        for cout, stride in [(64,1),(64,1),(128,2),(128,1),(256,2),(256,1),(512,2),(512,1)]:
            L.append(Block(cin, cout, stride)); cin = cout
        s.layers = nn.Sequential(*L); s.head = nn.Linear(512, 10)
    def features(s, x):
        x = F.max_pool2d(F.relu(s.conv1(x)), 3, 2, 1)
        return torch.flatten(F.adaptive_avg_pool2d(s.layers(x), 1), 1)
    def forward(s, x): return s.head(s.features(x))
m = ResNet18()
x = torch.rand(B, 3, S, S); y = torch.arange(B) % 10
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
def train():
    opt.zero_grad(set_to_none=True); loss = F.cross_entropy(m(x), y); loss.backward(); opt.step()
def features():
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
  static async start(B: number, S: number, threads: number): Promise<TorchPeer | { error: string }> {
    for (const py of ['python3', '/usr/bin/python3']) {
      if (py.startsWith('/') && !existsSync(py)) continue;
      if (spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status !== 0) continue;
      const child = spawn(py, ['-c', TORCH_SCRIPT, String(B), String(S), String(threads)], {
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
