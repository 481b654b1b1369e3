/**
 * Named defaults, each with its source. The resolver fills a protocol's missing keys from these; a protocol that sets
 * a key overrides them. Masud et al. 2022 is "the paper"; solo-learn is the library the paper used (da Costa et al.
 * 2022) and supplies what the paper leaves unsaid.
 */

/** Paper §3.1: 128×128 crops around each nucleus centre. */
export const CROP_SIZE = 128;

/**
 * How a data set's crops are cut (`data.datasets.<name>.crops`). `normalise: plate` (one intensity window per plate,
 * so a dim or saturated field stays so) rather than the paper's per-field stretch, which makes such fields look
 * normal before any QC model sees them; `diameter` 30 px is the segmenter's (U2OS / MCF-7 nuclei at 20×); `border:
 * skip` keeps only crops wholly inside their field, as the paper's 128×128 crops are.
 */
export const CROPS = { normalise: 'plate', diameter: 30, border: 'skip' } as const;

/** Paper §3.1: 240 abnormal + 240 normal annotated, 350 train / 130 test. */
export const PAPER_TRAIN_IMAGES = 350;

/** Paper Table 2: label budgets of the ablation. */
export const LABEL_BUDGETS = [350, 100, 50, 25, 10] as const;

/** Three seeds: the least that gives a mean ± sd (the paper reports single runs). */
export const SEEDS = [0, 1, 2] as const;

/**
 * SSL pretraining weight decay. The paper (§3.2) gives none; solo-learn's configs, which the paper used, set 1e-4 for
 * SimCLR-type runs with SGD and LARS alike (scripts/pretrain/cifar/simclr.yaml: LARS, weight_decay 1e-4;
 * mocov2plus.yaml: SGD, weight_decay 1e-4). The one value the protocol default, `pretrain()` and `qcbench pretrain`
 * share.
 */
export const SSL_WEIGHT_DECAY = 1e-4;

/** Paper §3.2: SSL pretraining settings. */
export const PRETRAIN = {
  backbone: 'resnet18', // §3.2 "a ResNet18 as encoder"
  epochs: 5, // §3.2 "trained for 5 epochs"
  batch_size: 128, // §3.2
  optimizer: 'sgd', // §3.2
  lr: 0.001, // §3.2 "initial learning rate of 0.001"
  momentum: 0.9, // §3.2
  weight_decay: SSL_WEIGHT_DECAY, // paper silent: solo-learn's configs (see SSL_WEIGHT_DECAY)
  schedule: 'warmup_cosine', // §3.2 "warm-up cosine scheduler"
  warmup_epochs: 1, // §3.2 "warm-up epochs set to 1"
  /** Width of the projector's hidden layers for every method (`pretrain.methods.<m>.proj_hidden_dim` overrides). */
  projector_dim: 2048, // §3.2 "2048 dimension FC layers"
  /** Which of the paper's augmentations make the two views (src/ssl/augment.ts maps them onto the loader's). */
  augmentations: ['rot90', 'flip', 'transpose', 'shift', 'scale'], // §3.2
  /** Cap on crops seen per epoch (null: all). The paper used all 2.1 M. */
  max_images_per_epoch: null as number | null,
  /** Log the loss every this many steps. */
  log_every: 10,
  /**
   * kNN monitor (k 5) after every epoch, on the annotated crops of `data.pretrain_on` (train split as the bank, test
   * split scored): solo-learn's online kNN, optional. Part of the encoder's hash: its curve is in the pretraining
   * record.
   */
  knn_monitor: false,
} as const;

/**
 * `pretrain.per_seed`: each seed pretrains its SSL encoders and initialises its seeded encoders (the random control,
 * FractalDB, the from-scratch CNNs) itself, so the ± sd over seeds includes pretraining and initialisation variance.
 * The paper pretrained once; a protocol that wants that (the shipped ones, which keep their cell ids) sets
 * `per_seed: false`.
 */
export const PRETRAIN_PER_SEED = true;

/**
 * The paper's "line search" of hyperparameters (§3.2–3.3), on a validation split carved from the training set only:
 * off by default so the defaults above are what runs; when on, each grid value is tried and the best by weighted F1
 * on the validation split is refit on the whole training set.
 */
export const LINE_SEARCH = { enabled: false, val_fraction: 0.2, lr: [0.01, 0.001, 0.0001] } as const;

/** Bootstrap resamples for the 95% intervals of each metric. */
export const BOOTSTRAP_RESAMPLES = 1000;

/** Runtime: 0 threads means one per core. */
export const RUNTIME = { threads: 0, execution_provider: 'cpu', workers: 1, precision: 'fp32' } as const;

/** Where generated data, caches and results go unless a protocol says otherwise (relative to the current directory). */
export const WORKDIR = '.qcbench';
