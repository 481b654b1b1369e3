/**
 * Engine benchmark: torchvision ResNet18 (the exported fixture, BatchNorm folded into conv biases) at S×S, batch B:
 * a full fine-tuning step (features → linear head → softmax cross-entropy, SGD momentum 0.9, weight decay 1e-4) in
 * images/s, feature extraction in images/s, peak RSS; and, where `python3 -c 'import torch'` works, the same step
 * and forward pass in PyTorch (same architecture: conv+bias, no BN) in a child process, for the ratio.
 */
import { spawnSync } from 'node:child_process';
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
  torch?: { python: string; version: string; train_img_s: number; features_img_s: number; peak_rss_gb: number } | { error: string };
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
  if (typeof dim !== 'number') throw new QcbError('QCB_ONNX_GRAPH', `features of ${model} have no static width`, { file: model });
  const b = new GraphBuilder(g);
  const y = b.input('labels_onehot', 'float32', [inp.shape[0], classes]);
  const logits = b.gemm(feat, b.param('head.weight', randn([classes, dim], 0.01, 7)), b.param('head.bias', zeros([classes])), { transB: true });
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
  const y = fromArray(Array.from({ length: B * 10 }, (_, i) => (i % 10 === Math.floor(i / 10) % 10 ? 1 : 0)), [B, 10]);

  // feature extraction
  const fg = importOnnx(o.model);
  fg.inputs[0].shape = [fg.inputs[0].shape?.[0] ?? 'N', 3, S, S];
  fg.values.clear();
  inferShapes(fg);
  const fs = await loadSession(fg, { intraOpNumThreads: threads, noCache: true });
  const xin = toOrt(x);
  await fs.run({ [fg.inputs[0].name]: xin });
  const ft: number[] = [];
  for (let i = 0; i < Math.max(3, steps); i++) {
    const t = performance.now();
    await fs.run({ [fg.inputs[0].name]: xin });
    ft.push((performance.now() - t) / 1000);
  }
  await fs.session.release();
  const featuresImgS = B / median(ft);
  log(`features: ${featuresImgS.toFixed(1)} img/s`);

  // training
  const t0 = performance.now();
  const graph = classifierGraph(o.model, S);
  const spec = { graph, loss: 'loss', optimizer: new Sgd({ momentum: 0.9, weightDecay: 1e-4 }) };
  const tr = await Trainer.create(spec, { intraOpNumThreads: threads, noCache: true });
  const compileSeconds = (performance.now() - t0) / 1000;
  const feeds = { [graph.inputs[0].name]: x, labels_onehot: y };
  await tr.step(feeds, 0.01);
  const st: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    await tr.step(feeds, 0.01);
    st.push((performance.now() - t) / 1000);
    log(`train step ${i + 1}/${steps}: ${(B / st[i]).toFixed(1)} img/s`);
  }
  await tr.session.session.release();
  const res: BenchResult = {
    model: o.model,
    batch: B,
    size: S,
    threads,
    train_img_s: B / median(st),
    features_img_s: featuresImgS,
    peak_rss_gb: peakRssGb(),
    step_seconds: st,
    compile_seconds: compileSeconds,
  };

  if (o.profile) {
    const prefix = join(tmpdir(), `qcbench-prof-${process.pid}`);
    const ptr = await Trainer.create(spec, { intraOpNumThreads: threads, noCache: true, profileFilePrefix: prefix });
    await ptr.step(feeds, 0.01);
    ptr.session.endProfiling();
    await ptr.session.session.release();
    res.profile = readProfile(prefix);
  }

  if (o.torch ?? true) {
    const t = runTorch(B, S, steps, threads);
    res.torch = t;
    if ('train_img_s' in t) {
      res.ratio_train = res.train_img_s / t.train_img_s;
      res.ratio_features = res.features_img_s / t.features_img_s;
    }
  }
  return res;
}

/** Sums onnxruntime profile kernel times per operator type (the newest profile file with the prefix). */
function readProfile(prefix: string): OpShare[] {
  const dir = tmpdir();
  const base = prefix.slice(dir.length + 1);
  const files = readdirSync(dir).filter((f: string) => f.startsWith(base) && f.endsWith('.json'));
  if (files.length === 0) return [];
  const file = join(dir, files.sort().at(-1) as string);
  const events = JSON.parse(readFileSync(file, 'utf8')) as { cat?: string; name: string; dur: number; args?: { op_name?: string } }[];
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
  return [...by]
    .map(([op, r]) => ({ op, ms: r.ms, count: r.count, share: r.ms / total }))
    .sort((a, b) => b.ms - a.ms);
}

/** The PyTorch side: ResNet18 (torchvision BasicBlock layout, conv with bias, no BN) + linear head, same step. */
const TORCH_SCRIPT = String.raw`
import sys, time, json, resource
import torch, torch.nn as nn, torch.nn.functional as F
B, S, steps, threads = map(int, sys.argv[1:5])
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
def step():
    opt.zero_grad(set_to_none=True); loss = F.cross_entropy(m(x), y); loss.backward(); opt.step()
step()
ts = []
for _ in range(steps):
    t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
fs = []
with torch.no_grad():
    m.features(x)
    for _ in range(max(3, steps)):
        t = time.perf_counter(); m.features(x); fs.append(time.perf_counter() - t)
med = lambda a: sorted(a)[len(a)//2] if len(a) % 2 else (sorted(a)[len(a)//2-1] + sorted(a)[len(a)//2]) / 2
print(json.dumps({"version": torch.__version__, "train_img_s": B/med(ts), "features_img_s": B/med(fs),
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}))
`;

/** Runs the PyTorch comparison with the first python that imports torch; an error object when none does. */
export function runTorch(B: number, S: number, steps: number, threads: number): { python: string; version: string; train_img_s: number; features_img_s: number; peak_rss_gb: number } | { error: string } {
  const candidates = ['python3', '/usr/bin/python3'].filter((p, i) => i === 0 || existsSync(p));
  for (const py of candidates) {
    const probe = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (probe.status !== 0) continue;
    const r = spawnSync(py, ['-c', TORCH_SCRIPT, String(B), String(S), String(steps), String(threads)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) return { error: `PyTorch run failed: ${(r.stderr || '').trim().split('\n').at(-1)}` };
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
    return { python: py, ...j };
  }
  return { error: "no python3 with torch found (tried python3, /usr/bin/python3); install PyTorch to compare (e.g. Debian's python3-torch)" };
}
