/**
 * The pretraining loop (Masud et al. 2022 §3.2): one compiled training step per batch of two augmented views, a
 * warm-up cosine learning rate per step, a checkpoint after every epoch (atomic; a rerun with the same settings
 * resumes from it), the loss curve, the optional kNN monitor, and at the end the backbone exported as an inference
 * encoder plus a PretrainRecord. `pretrain()` reads as the sequence of steps below it.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Tensor } from '../../engine/ir/graph.js';
import { loadSession, ortF32 } from '../../engine/runtime/session.js';
import { readCheckpoint, writeCheckpoint } from '../../engine/train/checkpoint.js';
import type { Trainer } from '../../engine/train/trainer.js';
import { QcbError } from '../../errors.js';
import { PRETRAIN_SCHEMA, type PretrainRecord } from '../../results/schema.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/fs.js';
import { logger as defaultLogger, type Logger, type Progress } from '../../util/log.js';
import type { SslMachinery, SslStepInfo } from '../types.js';
import { exportBackbone } from './export.js';
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
    saveCheckpoint(run, st, epoch);
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
  return {
    trainer,
    startEpoch: done + 1,
    resumedFromEpoch: done,
    lossCurve: [...((ck.meta.loss as PretrainRecord['loss']) ?? [])],
    knnCurve: [...((ck.meta.knn_monitor as RunState['knnCurve']) ?? [])],
    trainSeconds: Number(ck.meta.seconds ?? 0),
    imagesSeen: Number(ck.meta.images ?? 0),
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
      const r = await step(run, st.trainer, feeds, lr, info);
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

/** One training step; a diverged loss is reported with the method, the step and the last good checkpoint. */
async function step(
  run: Run,
  trainer: Trainer,
  feeds: Record<string, Tensor>,
  lr: number,
  info: SslStepInfo,
): Promise<Awaited<ReturnType<Trainer['step']>>> {
  try {
    return await trainer.step(feeds, lr);
  } catch (e) {
    if (e instanceof QcbError && e.code === 'QCB_NAN_LOSS') {
      const name = run.plan.method.name;
      throw new QcbError(
        'QCB_NAN_LOSS',
        `${name} pretraining diverged at epoch ${info.epoch + 1}, step ${info.step + 1}: ${e.message}`,
        {
          ...e.context,
          key: `pretrain.methods.${name}`,
          fix: `lower the learning rate (now ${run.plan.baseLr}) or the batch size; the last good checkpoint is ${run.ckptPath}`,
        },
      );
    }
    throw e;
  }
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

/** Exports the encoder and writes pretrain.json and loss.csv. */
function finish(run: Run, st: RunState): PretrainResult {
  const { plan, outDir } = run;
  const method = plan.method;
  const onnxPath = join(outDir, 'encoder.onnx');
  exportBackbone(onnxPath, st.trainer.getParams(), plan.seed, {
    'qcbench.label': method.label,
    'qcbench.method': method.name,
    'qcbench.settings_hash': plan.settingsHash,
  });
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
