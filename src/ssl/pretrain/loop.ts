/**
 * The pretraining loop (Masud et al. 2022 §3.2): one compiled training step per batch of two augmented views, a
 * warm-up cosine learning rate per step, a checkpoint after every epoch (atomic; a rerun with the same settings
 * resumes from it), the loss curve, the optional kNN monitor, and at the end the backbone exported as an inference
 * encoder plus a PretrainRecord. `pretrain()` reads as the sequence of steps below it.
 *
 * A run that diverged is a failure, not an encoder: every step's loss is watched (non-finite: QCB_NAN_LOSS;
 * exploding: QCB_DIVERGED, src/engine/train/divergence.ts), and before each epoch's checkpoint the parameters are
 * checked for non-finite values and the backbone's features on one batch of the pretraining crops for non-finite
 * values or collapse (QCB_DIVERGED), so a checkpoint on disk is always a good one. The error names the step and the
 * last good checkpoint; nothing (encoder, pretrain.json, loss.csv) is written.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Tensor } from '../../engine/ir/graph.js';
import { loadSession, ortF32 } from '../../engine/runtime/session.js';
import { readCheckpoint, writeCheckpoint } from '../../engine/train/checkpoint.js';
import { LossWatch, nonFiniteTensor } from '../../engine/train/divergence.js';
import type { Trainer } from '../../engine/train/trainer.js';
import { QcbError } from '../../errors.js';
import { PRETRAIN_SCHEMA, type PretrainRecord } from '../../results/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/fs.js';
import { logger as defaultLogger, type Logger, type Progress } from '../../util/log.js';
import type { SslMachinery, SslStepInfo } from '../types.js';
import { backboneProblem, type CheckBatch, exportBackbone } from './export.js';
import { buildPretrainGraph, embeddingGraph, makeSslOptimizer, type PretrainGraph, SslTrainers } from './graph.js';
import { monitorAccuracy } from './monitor.js';
import { type PretrainOptions, type PretrainPlan, type PretrainResult, planPretrain } from './options.js';
import { PretrainData } from './sources.js';

/** What stays fixed during one pretraining. */
interface Run {
  opts: PretrainOptions;
  plan: PretrainPlan;
  pg: PretrainGraph;
  machinery: SslMachinery | undefined;
  trainers: SslTrainers;
  data: PretrainData;
  outDir: string;
  ckptPath: string;
  log: Logger;
  /** One batch of the pretraining crops (first view) for the encoder check; read once, on first use. */
  checkBatch?: Promise<CheckBatch>;
}

/** What the loop accumulates; saved in the checkpoint (with the trainer's tensors) after every epoch. */
interface RunState {
  trainer: Trainer;
  /** First epoch still to train (0, or one past the checkpoint's). */
  startEpoch: number;
  resumedFromEpoch: number | undefined;
  lossCurve: PretrainRecord['loss'];
  knnCurve: { epoch: number; accuracy: number }[];
  trainSeconds: number;
  imagesSeen: number;
  /** The checkpoint written (or resumed from) last, with its epoch; every checkpoint passed the checks. */
  lastGood: string | undefined;
  watch: LossWatch;
}

/** Runs SSL pretraining; see the module doc. */
export async function pretrain(opts: PretrainOptions): Promise<PretrainResult> {
  const run = setUp(opts);
  const { plan, machinery, trainers } = run;
  const st = await resumeOrStart(run);
  if (st.startEpoch === 0 && machinery?.needsInitialMemory) await initialiseMemory(run, st.trainer);
  if (st.startEpoch === 0 && opts.monitor && st.knnCurve.length === 0) await monitor(run, st, -1);

  const prog = run.log.startProgress(
    `pretrain ${plan.method.name}`,
    (plan.epochs - st.startEpoch) * plan.stepsPerEpoch * plan.batchSize,
    'images',
  );
  for (let epoch = st.startEpoch; epoch < plan.epochs; epoch++) {
    st.trainer = await trainers.forEpoch(epoch, st.trainer);
    machinery?.beforeEpoch?.(epoch);
    const meanLoss = await trainEpoch(run, st, epoch, prog);
    run.log.info(`${plan.method.name} epoch ${epoch + 1}/${plan.epochs}: mean loss ${meanLoss.toFixed(4)}`, {
      epoch: epoch + 1,
      images_per_second: st.imagesSeen / st.trainSeconds,
    });
    await monitor(run, st, epoch);
    await verifyEpoch(run, st, epoch);
    saveCheckpoint(run, st, epoch);
    st.lastGood = `${run.ckptPath} (after epoch ${epoch + 1})`;
  }
  prog.finish();
  return finish(run, st);
}

/** Checks the options, creates the output folder and builds the graph, the method's machinery and the data. */
function setUp(opts: PretrainOptions): Run {
  const log = opts.log ?? defaultLogger;
  const plan = planPretrain(opts);
  const outDir = resolve(opts.outDir);
  mkdirSync(outDir, { recursive: true });
  const { method, hp, batchSize: n, size, seed } = plan;
  const pg = buildPretrainGraph(method, hp, { n, size, seed });
  const machinery = method.machinery?.({ hp, n, dim: hp.proj_output_dim, datasetSize: plan.imagesPerEpoch, seed });
  const optimizer = makeSslOptimizer(plan);
  return {
    opts,
    plan,
    pg,
    machinery,
    trainers: new SslTrainers(pg, optimizer, { threads: opts.threads, log }),
    data: new PretrainData(plan.source, plan.imagesPerEpoch, plan),
    outDir,
    ckptPath: join(outDir, 'checkpoint.qcbckpt'),
    log,
  };
}

/**
 * The state after the checkpoint in the output folder when there is one (and resuming is on), else a fresh start.
 * @throws QCB_USAGE when the checkpoint is of other settings (another settings hash)
 */
async function resumeOrStart(run: Run): Promise<RunState> {
  const { plan, trainers, ckptPath } = run;
  if (!((run.opts.resume ?? true) && existsSync(ckptPath))) {
    return {
      trainer: await trainers.get(trainers.frozenAt(0)),
      startEpoch: 0,
      resumedFromEpoch: undefined,
      lossCurve: [],
      knnCurve: [],
      trainSeconds: 0,
      imagesSeen: 0,
      lastGood: undefined,
      watch: new LossWatch(),
    };
  }
  const ck = readCheckpoint(ckptPath);
  if (ck.meta.settings_hash !== plan.settingsHash) {
    throw new QcbError('QCB_USAGE', `${run.outDir} holds a checkpoint of other pretraining settings`, {
      file: ckptPath,
      key: 'settings',
      fix: 'use another --out folder, or delete the checkpoint to start again with the new settings',
    });
  }
  const done = Number(ck.meta.epoch);
  const trainer = await trainers.get(trainers.frozenAt(done + 1));
  const values = new Map<string, Tensor>();
  const mstate: Record<string, Tensor> = {};
  for (const [k, t] of ck.tensors) {
    if (k.startsWith('machinery::')) mstate[k.slice(11)] = t;
    else values.set(k, t);
  }
  trainer.setValues(values);
  run.machinery?.restore?.(mstate);
  run.log.info(`resuming ${plan.method.name} pretraining after epoch ${done + 1} of ${plan.epochs}`, {
    checkpoint: ckptPath,
  });
  const lossCurve = [...((ck.meta.loss as PretrainRecord['loss']) ?? [])];
  return {
    trainer,
    startEpoch: done + 1,
    resumedFromEpoch: done,
    lossCurve,
    knnCurve: [...((ck.meta.knn_monitor as RunState['knnCurve']) ?? [])],
    trainSeconds: Number(ck.meta.seconds ?? 0),
    imagesSeen: Number(ck.meta.images ?? 0),
    lastGood: `${ckptPath} (after epoch ${done + 1})`,
    watch: new LossWatch(lossCurve.map((p) => p.loss)),
  };
}

/** DeepClusterV2: the memory bank's embeddings of every image, before the first epoch (BN in training mode). */
async function initialiseMemory(run: Run, trainer: Trainer): Promise<void> {
  const { plan, pg, data } = run;
  const machinery = run.machinery!;
  const n = plan.batchSize;
  const t0 = performance.now();
  const g = embeddingGraph(pg.graph, trainer.getParams(), pg.loss.outputs);
  const sess = await loadSession(g, { intraOpNumThreads: run.opts.threads, noCache: true });
  const loader = data.loader('ssl-init-memory', 0, false);
  try {
    for (let s = 0; s < plan.stepsPerEpoch; s++) {
      const batch = await loader.next();
      if (!batch) break;
      const positions = data.positions(batch);
      const x = ortF32(PretrainData.stacked(batch), [2 * n, 3, plan.size, plan.size]);
      const out = await sess.run({ [pg.input]: x }, pg.loss.outputs);
      loader.release(batch);
      const o: Record<string, Float32Array> = {};
      for (const k of pg.loss.outputs) o[k] = out[k].data as Float32Array;
      machinery.afterStep?.({ epoch: -1, step: s, positions }, o);
    }
  } finally {
    await loader.close();
  }
  run.log.info(`${plan.method.name}: memory bank initialised`, {
    images: plan.stepsPerEpoch * n,
    seconds: (performance.now() - t0) / 1000,
  });
}

/** The kNN monitor's accuracy on the current backbone, appended to the curve (no-op without a monitor). */
async function monitor(run: Run, st: RunState, epoch: number): Promise<void> {
  const mon = run.opts.monitor;
  if (!mon) return;
  const acc = await monitorAccuracy(mon, st.trainer.getParams(), run.plan.seed, run.opts.threads);
  st.knnCurve.push({ epoch, accuracy: acc });
  run.log.info(`${run.plan.method.name} epoch ${epoch + 1}: kNN accuracy ${acc.toFixed(2)}%`, { epoch: epoch + 1 });
}

/** One epoch of training steps; returns the mean loss. */
async function trainEpoch(run: Run, st: RunState, epoch: number, prog: Progress): Promise<number> {
  const { plan, pg, machinery, data } = run;
  const n = plan.batchSize;
  const logEvery = Math.max(1, run.opts.logEvery ?? 1);
  const loader = data.loader('ssl-epoch', epoch, true);
  let epochLoss = 0;
  try {
    for (let s = 0; s < plan.stepsPerEpoch; s++) {
      const t0 = performance.now(); // includes waiting for the loader: throughput of the whole pretraining
      const batch = await loader.next();
      if (!batch)
        throw new QcbError('QCB_INTERNAL', `the batch loader ended after ${s} of ${plan.stepsPerEpoch} batches`);
      const positions = data.positions(batch);
      const x = PretrainData.stacked(batch);
      loader.release(batch);
      const info: SslStepInfo = { epoch, step: s, positions };
      const feeds: Record<string, Tensor> = {
        [pg.input]: { dtype: 'float32', dims: [2 * n, 3, plan.size, plan.size], data: x },
        ...(machinery?.feeds(info) ?? {}),
      };
      const globalStep = epoch * plan.stepsPerEpoch + s;
      const lr = plan.lrAt(globalStep);
      const r = await step(run, st, feeds, lr, info);
      const why = st.watch.check(r.loss);
      if (why) throw diverged(run, st, info, `${why} (lr ${lr})`, 'QCB_DIVERGED');
      if (machinery?.afterStep) {
        const o: Record<string, Float32Array> = {};
        for (const k of pg.loss.outputs) o[k] = r.outputs[k].data as Float32Array;
        machinery.afterStep(info, o);
      }
      const dt = (performance.now() - t0) / 1000;
      st.trainSeconds += dt;
      st.imagesSeen += n;
      epochLoss += r.loss;
      if (s % logEvery === 0 || s === plan.stepsPerEpoch - 1)
        st.lossCurve.push({ epoch, step: globalStep, loss: r.loss, lr });
      prog.tick(n);
      run.opts.onStep?.({ epoch, step: globalStep, loss: r.loss, lr, imagesPerSecond: n / dt });
    }
  } finally {
    await loader.close();
  }
  return epochLoss / plan.stepsPerEpoch;
}

/** One training step; a non-finite loss (QCB_NAN_LOSS) is reported with the step and the last good checkpoint. */
async function step(
  run: Run,
  st: RunState,
  feeds: Record<string, Tensor>,
  lr: number,
  info: SslStepInfo,
): Promise<Awaited<ReturnType<Trainer['step']>>> {
  try {
    return await st.trainer.step(feeds, lr);
  } catch (e) {
    if (e instanceof QcbError && e.code === 'QCB_NAN_LOSS')
      throw diverged(run, st, info, `the loss became ${e.context.value} (lr ${lr})`, 'QCB_NAN_LOSS', e);
    throw e;
  }
}

/**
 * The error of a diverged pretraining: the method, the step (of the whole run, and within its epoch), why, and the
 * last good checkpoint ("none" before the first); the fix is a lower learning rate.
 */
function diverged(
  run: Run,
  st: RunState,
  at: { epoch: number; step: number },
  why: string,
  code: 'QCB_NAN_LOSS' | 'QCB_DIVERGED',
  cause?: unknown,
): QcbError {
  const { plan } = run;
  const total = plan.epochs * plan.stepsPerEpoch;
  const global = at.epoch * plan.stepsPerEpoch + at.step + 1;
  const good = st.lastGood ?? 'none';
  return new QcbError(
    code,
    `${plan.method.name} pretraining diverged at step ${global} of ${total} (epoch ${at.epoch + 1}, step ${at.step + 1}): ${why}; last good checkpoint: ${good}`,
    {
      key: 'pretrain.lr',
      value: plan.baseLr,
      fix: `lower the learning rate (\`pretrain.lr\` in a protocol, --lr of qcbench pretrain; now ${plan.baseLr}), e.g. tenfold; the last good checkpoint is ${good}`,
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

/** One batch of the pretraining crops (the first view of a fixed loader's first batch), read once. */
function checkBatch(run: Run): Promise<CheckBatch> {
  run.checkBatch ??= (async () => {
    const loader = run.data.loader('ssl-check', 0, false);
    try {
      const b = await loader.next();
      if (!b) throw new QcbError('QCB_INTERNAL', 'the pretraining set gave no batch for the encoder check');
      return { data: Float32Array.from(b.views[0]), n: b.indices.length, size: run.plan.size };
    } finally {
      await loader.close();
    }
  })();
  return run.checkBatch;
}

/**
 * The checks before an epoch's checkpoint: every parameter finite (a sum per tensor), and the backbone's features on
 * one batch of the pretraining crops finite and not collapsed (src/ssl/pretrain/export.ts).
 * @throws QCB_DIVERGED naming the epoch's last step and the last good checkpoint
 */
async function verifyEpoch(run: Run, st: RunState, epoch: number): Promise<void> {
  const params = st.trainer.getParams();
  const at = { epoch, step: run.plan.stepsPerEpoch - 1 };
  const bad = nonFiniteTensor(params);
  if (bad) throw diverged(run, st, at, `parameter ${bad.name} became non-finite (sum ${bad.sum})`, 'QCB_DIVERGED');
  const problem = await backboneProblem(params, run.plan.seed, await checkBatch(run), run.opts.threads);
  if (problem) throw diverged(run, st, at, `the encoder is unusable: ${problem}`, 'QCB_DIVERGED');
}

/** The checkpoint after `epoch`: parameters, optimizer state, the machinery's state (`machinery::*`), the curves. */
function saveCheckpoint(run: Run, st: RunState, epoch: number): void {
  const tensors = new Map<string, Tensor>([...st.trainer.getParams(), ...st.trainer.getState()]);
  for (const [k, t] of Object.entries(run.machinery?.state?.() ?? {})) tensors.set(`machinery::${k}`, t);
  writeCheckpoint(
    run.ckptPath,
    {
      settings_hash: run.plan.settingsHash,
      epoch,
      loss: st.lossCurve,
      knn_monitor: st.knnCurve,
      seconds: st.trainSeconds,
      images: st.imagesSeen,
      method: run.plan.method.name,
    },
    tensors,
  );
}

/** Exports the encoder (refused when its features are non-finite or collapsed) and writes pretrain.json and loss.csv. */
async function finish(run: Run, st: RunState): Promise<PretrainResult> {
  const { plan, outDir } = run;
  const method = plan.method;
  const onnxPath = join(outDir, 'encoder.onnx');
  await exportBackbone(
    onnxPath,
    st.trainer.getParams(),
    plan.seed,
    {
      'qcbench.label': method.label,
      'qcbench.method': method.name,
      'qcbench.settings_hash': plan.settingsHash,
    },
    await checkBatch(run),
    run.opts.threads,
  );
  const record: PretrainRecord = {
    schema: PRETRAIN_SCHEMA,
    id: plan.settingsHash,
    encoder: method.name,
    method: method.name,
    settings: {
      ...plan.settings,
      machinery: run.machinery?.stats?.() ?? {},
      resumed_from_epoch: st.resumedFromEpoch,
    },
    loss: st.lossCurve,
    knn_monitor: run.opts.monitor ? st.knnCurve : undefined,
    images_per_second: st.trainSeconds > 0 ? st.imagesSeen / st.trainSeconds : 0,
    seconds: st.trainSeconds,
    onnx: onnxPath,
    finished_at: new Date().toISOString(),
  };
  const recordFile = join(outDir, 'pretrain.json');
  writeJsonAtomic(recordFile, record);
  writeFileAtomic(
    join(outDir, 'loss.csv'),
    `epoch,step,loss,lr\n${st.lossCurve.map((p) => `${p.epoch},${p.step},${p.loss},${p.lr}`).join('\n')}\n`,
  );
  return { record, onnx: onnxPath, recordFile, resumedFromEpoch: st.resumedFromEpoch };
}
