import type { Command } from './types.js';

/** A command listed in `qcbench --help`; its module is loaded only when it runs (keeps start-up fast). */
export interface CommandEntry {
  summary: string;
  load: () => Promise<Command>;
}

/** A command group (`qcbench data …`): sub-commands, each a file `src/cli/<group>-<sub>.ts`. */
export interface GroupEntry {
  summary: string;
  subs: Record<string, CommandEntry>;
}

const sub = (summary: string, load: () => Promise<{ command: Command }>): CommandEntry => ({
  summary,
  load: async () => (await load()).command,
});

/** Every top-level command. Adding one is a file plus a line here. */
export const COMMANDS = {
  run: sub('run a protocol: every cell, cached, resumable, shardable', () => import('./run.js')),
  ablation: sub('run one ablation: label-budget | domain-shift', () => import('./ablation.js')),
  report: sub('build tables, charts and the HTML report from a results directory', () => import('./report.js')),
  status: sub('done / pending / failed cells of a run', () => import('./status.js')),
  validate: sub('resolve and check protocol files; runs nothing', () => import('./validate.js')),
  pretrain: sub('self-supervised pretraining of a ResNet18 on a crop store', () => import('./pretrain.js')),
  eval: sub('one downstream task (knn | linear | finetune) for one encoder', () => import('./eval.js')),
  'second-order': sub(
    'quadratic neurons (Fan et al. 2017): two spirals, concentric rings',
    () => import('./second-order.js'),
  ),
  annotate: sub('label crops in the browser; each label saved at once to FILE', () => import('./annotate.js')),
  env: sub('show Node, engine, execution providers, threads and package versions', () => import('./env.js')),
} satisfies Record<string, CommandEntry>;

/** Command groups. */
export const GROUPS = {
  data: {
    summary: 'synthetic screens, crop stores, montages',
    subs: {
      synth: sub('generate a synthetic screen in the BBBC022 / BBBC021 layout', () => import('./data-synth.js')),
      crops: sub('cut single-cell crops around nuclei into a Zarr crop store', () => import('./data-crops.js')),
      show: sub('a montage of crops from a store, optionally by label', () => import('./data-show.js')),
    },
  },
  annotations: {
    summary: 'train/test splits without leakage, counts and warnings of annotation files',
    subs: {
      split: sub('class-balanced train/test split keeping each field (well, plate) on one side', async () => ({
        command: (await import('./annotations.js')).split,
      })),
      stats: sub('counts by split, label, type, plate; leakage and imbalance warnings', async () => ({
        command: (await import('./annotations.js')).stats,
      })),
    },
  },
  encoder: {
    summary: 'check imported encoders',
    subs: {
      verify: sub(
        'features and gradients of an ONNX encoder against a torch reference',
        () => import('./encoder-verify.js'),
      ),
    },
  },
  qc: {
    summary: 'quality control of a whole screen with the chosen encoder',
    subs: {
      train: sub(
        'train encoder + head on annotations; export one self-contained ONNX classifier',
        () => import('./qc-train.js'),
      ),
      apply: sub(
        'score every crop of a store; per-field/per-well fractions, plate map, montages',
        () => import('./qc-apply.js'),
      ),
      quantize: sub('int8 copy of a QC classifier, calibrated on crops of a store', () => import('./qc-quantize.js')),
    },
  },
  weights: {
    summary: 'ImageNet weights of the transfer-learning encoders',
    subs: {
      check: sub('are the weights present, loadable, of the right output size?', () => import('./weights-check.js')),
      fetch: sub('download weights (needs network; never done at run time)', () => import('./weights-fetch.js')),
    },
  },
  bench: {
    summary: 'measure throughput and memory on this machine',
    subs: {
      engine: sub(
        'ResNet18 training and feature-extraction images/s, RSS, ratio to PyTorch',
        () => import('./bench-engine.js'),
      ),
      data: sub(
        'crop extraction fields/s, peak RSS, store reads, augmentation crops/s, synthetic data s',
        () => import('./bench-data.js'),
      ),
      ssl: sub('SSL pretraining images/s per method and the loss overhead', () => import('./bench-ssl.js')),
      annotate: sub(
        'crops looked at to collect 240 + 240 labels and reach a kNN F1, with and without proposals',
        () => import('./bench-annotate.js'),
      ),
      qc: sub('crops scored per second through an exported QC classifier', () => import('./bench-qc.js')),
      report: sub(
        'seconds and HTML size of qcbench report on full-protocol-sized results (targets < 10 s, ≤ 25 MB)',
        () => import('./bench-report.js'),
      ),
    },
  },
} satisfies Record<string, GroupEntry>;
