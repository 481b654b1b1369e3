/**
 * `qcbench pretrain`: SSL pretraining of the ResNet18 backbone on a crop store (Masud et al. 2022 §3.2), exported as
 * an inference ONNX encoder for `qcbench eval` / `qcbench run`.
 */
import { parseArgs } from 'node:util';
import { readAnnotations } from '../data/annotations.js';
import { openCropStore } from '../data/store/crop-store.js';
import { QcbError } from '../errors.js';
import { AUGMENTATIONS } from '../protocol/catalog.js';
import { SSL_WEIGHT_DECAY } from '../protocol/defaults.js';
import { sslAugment } from '../ssl/augment.js';
import { getMethod, SSL_METHODS } from '../ssl/registry.js';
import { type KnnMonitor, knnMonitorFor, pretrain, storeCropSource } from '../ssl/pretrain.js';
import { applyProviderOption, type Command, PROVIDER_OPTION } from './types.js';

function num(v: string | undefined, key: string, int = false): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x) || (int && !Number.isInteger(x))) {
    throw new QcbError('QCB_USAGE', `--${key} must be ${int ? 'an integer' : 'a number'}, got '${v}'`, {
      key: `--${key}`,
      value: v,
      fix: `pass a number, e.g. --${key} ${int ? 5 : 0.001}`,
    });
  }
  return x;
}

/** `--set name=value` hyperparameter overrides. */
function parseSets(sets: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of sets) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(s);
    const v = m ? Number(m[2]) : NaN;
    if (!m || !Number.isFinite(v)) {
      throw new QcbError('QCB_USAGE', `--set takes name=number, got '${s}'`, {
        key: '--set',
        value: s,
        fix: 'e.g. --set temperature=0.1 --set num_prototypes=100',
      });
    }
    out[m[1]] = v;
  }
  return out;
}

export const command: Command = {
  name: 'pretrain',
  summary:
    'SSL pretraining of the ResNet18 encoder on a crop store (SimCLR, Barlow Twins, VICReg, DeepClusterV2, SwAV)',
  usage: `qcbench pretrain --method NAME --store STORE --out DIR [options]

Trains a torchvision ResNet18 (engine-built) with an SSL method on the crops of STORE (two augmented views per
crop: rot90, flip, transpose, shift, scale), one compiled ONNX training step per batch. Writes to DIR:
  checkpoint.qcbckpt   after every epoch (a rerun with the same settings resumes from it)
  encoder.onnx         the backbone: input N×3×S×S → features N×512 (BN in inference mode)
  pretrain.json        settings with their sources, loss curve, throughput (PretrainRecord)
  loss.csv             the loss curve

Methods: ${Object.keys(SSL_METHODS).join(', ')}
Defaults follow the paper (§3.2): 5 epochs, batch 128, SGD lr 0.001 momentum 0.9, warm-up cosine with 1 warm-up epoch.

  --method NAME          SSL method (required)
  --store STORE          crop store from \`qcbench data crops\` (required)
  --out DIR              output folder (required)
  --epochs N             (5)
  --batch N              images per step, two views each (128)
  --lr X                 base learning rate (0.001)
  --momentum X           (0.9)
  --weight-decay X       (${SSL_WEIGHT_DECAY}: solo-learn's configs; the paper gives none)
  --optimizer sgd|lars   (sgd)
  --warmup-epochs N      (1)
  --seed N               (1)
  --max-images N         images per epoch: a fixed seeded subset of the store (all)
  --channels A,B,C       store channels to train on, 1 or 3 of them (all; the store must then have 1 or 3)
  --augment A,B,…        augmentations making the two views, any of ${AUGMENTATIONS.join(', ')} (all)
  --set name=value       method hyperparameter override, repeatable (e.g. --set num_prototypes=100)
  --monitor FILE         annotation file of crops of this store: kNN accuracy (k 5) after every epoch
  --threads N            onnxruntime threads (all cores)
  --provider P           onnxruntime execution provider: cpu (default) or cuda (README "GPU")
  --no-resume            ignore an existing checkpoint (it is overwritten)
  --json                 print the PretrainRecord as JSON

Exit codes: 0 done, 1 training failed (e.g. QCB_NAN_LOSS), 2 bad input.`,
  async run(args, ctx) {
    const { values } = parseArgs({
      args,
      options: {
        method: { type: 'string' },
        store: { type: 'string' },
        out: { type: 'string' },
        epochs: { type: 'string' },
        batch: { type: 'string' },
        lr: { type: 'string' },
        momentum: { type: 'string' },
        'weight-decay': { type: 'string' },
        optimizer: { type: 'string' },
        'warmup-epochs': { type: 'string' },
        seed: { type: 'string' },
        'max-images': { type: 'string' },
        channels: { type: 'string' },
        augment: { type: 'string' },
        set: { type: 'string', multiple: true, default: [] },
        monitor: { type: 'string' },
        threads: { type: 'string' },
        ...PROVIDER_OPTION,
        'no-resume': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    });
    await applyProviderOption(values.provider);
    for (const k of ['method', 'store', 'out'] as const) {
      if (!values[k])
        throw new QcbError('QCB_USAGE', `pretrain needs --${k}`, {
          key: `--${k}`,
          fix: 'qcbench pretrain --method simclr --store STORE --out DIR',
        });
    }
    const method = getMethod(values.method!);
    const opt = values.optimizer ?? 'sgd';
    if (opt !== 'sgd' && opt !== 'lars')
      throw new QcbError('QCB_USAGE', `unknown optimizer '${opt}'`, {
        key: '--optimizer',
        value: opt,
        allowed: 'sgd, lars',
        fix: 'use --optimizer sgd or lars',
      });
    const store = await openCropStore(values.store!);
    const channels = values.channels
      ? values.channels
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : undefined;
    const source = storeCropSource(store, channels);
    let monitor: KnnMonitor | undefined;
    if (values.monitor) {
      const byId = new Map(store.meta.map((m, i) => [m.crop_id, i]));
      monitor = await knnMonitorFor(source, byId, readAnnotations(values.monitor), { file: values.monitor });
    }
    const augment = values.augment
      ? sslAugment(
          values.augment
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        )
      : undefined;
    const res = await pretrain({
      method: method.name,
      hyper: parseSets(values.set as string[]),
      source,
      outDir: values.out!,
      epochs: num(values.epochs, 'epochs', true),
      batchSize: num(values.batch, 'batch', true),
      lr: num(values.lr, 'lr'),
      momentum: num(values.momentum, 'momentum'),
      weightDecay: num(values['weight-decay'], 'weight-decay'),
      optimizer: opt,
      warmupEpochs: num(values['warmup-epochs'], 'warmup-epochs', true),
      seed: num(values.seed, 'seed', true),
      maxImagesPerEpoch: num(values['max-images'], 'max-images', true),
      threads: num(values.threads, 'threads', true),
      resume: !values['no-resume'],
      monitor,
      ...(augment ? { augment } : {}),
      log: ctx.log,
    });
    if (values.json) process.stdout.write(`${JSON.stringify(res.record, null, 2)}\n`);
    else {
      const l = res.record.loss;
      ctx.log.info(
        `${method.label}: loss ${l[0]?.loss.toFixed(4)} → ${l[l.length - 1]?.loss.toFixed(4)}, ${res.record.images_per_second.toFixed(1)} images/s`,
        {
          encoder: res.onnx,
          record: res.recordFile,
        },
      );
    }
    return 0;
  },
};
