import type { EncoderKind, TaskName } from '../results/schema.js';

/**
 * The names a protocol may use, with what the reports call them. The implementations live in their own registries
 * (src/encoders, src/ssl, src/downstream); a test checks that every name here has an implementation there, so
 * validation (which must stay light: `qcbench validate` runs nothing) never accepts a name that cannot run.
 */
export interface EncoderEntry {
  /** Label in the paper's tables, or ours for rows the paper lacks. */
  label: string;
  kind: EncoderKind;
  /** SSL method trained on the screen's crops (the encoder is the SSL backbone), if any. */
  ssl?: boolean;
  /** Feature dimension of the pooled output. */
  dim: number;
  /** Weights needed from the weights directory (transfer learning only). */
  weights?: string;
  description: string;
}

/** Every encoder a protocol can list under `encoders:` (Masud et al. 2022 §2–3.2, plus controls). */
export const ENCODERS = {
  vgg16: {
    label: 'VGG16',
    kind: 'tl',
    dim: 512,
    weights: 'vgg16',
    description: 'ImageNet-pretrained VGG16 (Simonyan & Zisserman 2014), pooled conv features',
  },
  resnet18: {
    label: 'ResNet18',
    kind: 'tl',
    dim: 512,
    weights: 'resnet18',
    description: 'ImageNet-pretrained ResNet18 (He et al. 2016)',
  },
  convnext_tiny: {
    label: 'ConvNext',
    kind: 'tl',
    dim: 768,
    weights: 'convnext_tiny',
    description: 'ImageNet-pretrained ConvNeXt-Tiny (Liu et al. 2022)',
  },
  simclr: {
    label: 'SimCLR',
    kind: 'ssl',
    ssl: true,
    dim: 512,
    description: 'ResNet18 pretrained with SimCLR (Chen et al. 2020) on the screen',
  },
  barlow_twins: {
    label: 'Barlow Twins',
    kind: 'ssl',
    ssl: true,
    dim: 512,
    description: 'ResNet18 pretrained with Barlow Twins (Zbontar et al. 2021)',
  },
  vicreg: {
    label: 'VICReg',
    kind: 'ssl',
    ssl: true,
    dim: 512,
    description: 'ResNet18 pretrained with VICReg (Bardes et al. 2022)',
  },
  deepclusterv2: {
    label: 'DeepClusterV2',
    kind: 'ssl',
    ssl: true,
    dim: 512,
    description: 'ResNet18 pretrained with DeepClusterV2 (Caron et al. 2018/2020)',
  },
  swav: {
    label: 'SwAV',
    kind: 'ssl',
    ssl: true,
    dim: 512,
    description: 'ResNet18 pretrained with SwAV (Caron et al. 2020)',
  },
  'random-resnet18': {
    label: 'Random ResNet18 (control)',
    kind: 'control',
    dim: 512,
    description: 'untrained ResNet18 with torchvision initialisation: the floor every pretrained encoder must beat',
  },
  'resnet18-fractaldb': {
    label: 'ResNet18 FractalDB (supervised, synthetic)',
    kind: 'supervised-synthetic',
    dim: 512,
    description:
      'ResNet18 pretrained supervised on locally generated fractal images (Kataoka et al., ACCV 2020): transfer learning that needs no download; not ImageNet',
  },
  'soq-cnn': {
    label: 'Second-order CNN (scratch)',
    kind: 'scratch',
    dim: 60,
    description: 'small CNN with quadratic neurons (Fan et al. 2017, Fig. 6) trained from scratch on the annotations',
  },
  'foq-cnn': {
    label: 'First-order CNN twin (scratch)',
    kind: 'scratch',
    dim: 60,
    description: 'the first-order twin of soq-cnn, same size, trained from scratch',
  },
} as const satisfies Record<string, EncoderEntry>;

export type EncoderName = keyof typeof ENCODERS;

/** SSL method names (one file each in src/ssl/). */
export const SSL_METHODS = ['simclr', 'barlow_twins', 'vicreg', 'deepclusterv2', 'swav'] as const;
export type SslMethodName = (typeof SSL_METHODS)[number];

/** Downstream tasks (paper §3.3; `quadratic` is Fan et al.'s second-order head). */
export const TASKS: Record<TaskName, { label: string; description: string }> = {
  knn: { label: 'KNN', description: 'k-nearest neighbours (k = 5) on frozen encoder features' },
  linear: { label: 'Linear Layer', description: 'one dense layer trained on a frozen encoder' },
  finetune: { label: 'Fine-tuned', description: 'dense layer with the whole encoder trained' },
  quadratic: { label: 'Quadratic head', description: 'second-order neuron head (Fan et al. 2017) on a frozen encoder' },
};

/** Dataset formats a protocol's `data.datasets.*.format` may name. */
export const DATASET_FORMATS = ['bbbc022', 'bbbc021', 'csv', 'synthetic'] as const;

/** Optimizers the engine provides. */
export const OPTIMIZERS = ['sgd', 'lars', 'adamw'] as const;

/** SSL augmentations (paper §3.2). */
export const AUGMENTATIONS = ['rot90', 'flip', 'transpose', 'shift', 'scale'] as const;

/**
 * Per-method hyperparameters a protocol may override under `pretrain.methods.<name>`, with their defaults and source.
 * The method files (src/ssl/*.ts) take their defaults from here so the protocol schema and the code agree.
 */
export const SSL_METHOD_DEFAULTS = {
  // Paper §3.2: "a temperature of 0.07 for the unsupervised loss"; projector 2048-2048 (solo-learn simclr.yaml).
  simclr: { temperature: 0.07, proj_hidden_dim: 2048, proj_output_dim: 2048 },
  // Zbontar et al. 2021; solo-learn barlow.yaml: lamb 0.0051, scale_loss 0.024 (CIFAR/ImageNet-100 settings).
  barlow_twins: { lamb: 0.0051, scale_loss: 0.024, proj_hidden_dim: 2048, proj_output_dim: 2048 },
  // Bardes et al. 2022: invariance 25, variance 25, covariance 1.
  vicreg: {
    sim_loss_weight: 25,
    var_loss_weight: 25,
    cov_loss_weight: 1,
    proj_hidden_dim: 2048,
    proj_output_dim: 2048,
  },
  // Paper §3.2: 500 prototypes, 10 k-means iterations; solo-learn deepclusterv2.yaml: temperature 0.1, 128-d output.
  deepclusterv2: {
    num_prototypes: 500,
    kmeans_iters: 10,
    temperature: 0.1,
    proj_hidden_dim: 2048,
    proj_output_dim: 128,
  },
  // Paper §3.2: 500 prototypes, queue 2560; solo-learn swav.yaml: epsilon 0.05, 3 Sinkhorn iterations, temperature
  // 0.1, prototypes frozen for the first epoch, queue used from epoch 0 here (paper's short schedule).
  swav: {
    num_prototypes: 500,
    queue_size: 2560,
    epsilon: 0.05,
    sinkhorn_iters: 3,
    temperature: 0.1,
    freeze_prototypes_epochs: 1,
    start_queue_at_epoch: 0,
    proj_hidden_dim: 2048,
    proj_output_dim: 128,
  },
} as const satisfies Record<SslMethodName, Record<string, number>>;
