/**
 * The training graph of one SSL method and the trainers that run it: ResNet18 backbone + the method's projector +
 * its loss on both views (paper §3.2), compiled into one onnxruntime training step (forward, the engine's backward,
 * SGD-momentum or LARS update).
 *
 * Both views go through the backbone as one 2N batch (one convolution call per layer instead of two); the backbone's
 * BatchNorm statistics are therefore taken over 2N images where solo-learn, forwarding each view separately, takes
 * them over N. The projector's BatchNorm and the losses use per-view statistics as solo-learn does.
 */
import { buildResNet18, RESNET18_FEATURES } from '../../encoders/resnet18.js';
import { GraphBuilder } from '../../engine/ir/builder.js';
import type { Graph, Tensor } from '../../engine/ir/graph.js';
import { inferShapes } from '../../engine/ir/shapes.js';
import { lowerBatchNormTraining } from '../../engine/train/batchnorm.js';
import { cloneGraph, pruneDead } from '../../engine/train/compile.js';
import { Lars } from '../../engine/train/optim/lars.js';
import { Sgd } from '../../engine/train/optim/sgd.js';
import type { Optimizer } from '../../engine/train/optim/types.js';
import { Trainer } from '../../engine/train/trainer.js';
import type { Logger } from '../../util/log.js';
import { buildProjector } from '../projector.js';
import type { SslHyper, SslLoss, SslMethod } from '../types.js';

/** The training graph of one method: input `views` 2N×3×S×S (view 1 rows, then view 2) → scalar loss. */
export interface PretrainGraph {
  graph: Graph;
  input: string;
  features: string;
  loss: SslLoss;
  backboneParams: string[];
  projectorParams: string[];
  hp: SslHyper;
  method: SslMethod;
}

/**
 * Builds backbone + projector + loss for `n` images per view of `size`×`size` (3 channels).
 * @param lossKind `method` (default) or `baseline`: the projector followed by a trivial loss (mean of z²), the
 *   "encoder's own training step" against which `qcbench bench ssl` measures the cost of each method's loss
 */
export function buildPretrainGraph(
  method: SslMethod,
  hp: SslHyper,
  o: { n: number; size: number; seed: number; lossKind?: 'method' | 'baseline' },
): PretrainGraph {
  const b = new GraphBuilder(`ssl_${method.name}`);
  const input = b.input('views', 'float32', [2 * o.n, 3, o.size, o.size]);
  const bb = buildResNet18(b, input, { seed: o.seed });
  const proj = buildProjector(b, bb.features, method.projector, {
    inDim: RESNET18_FEATURES,
    hiddenDim: hp.proj_hidden_dim,
    outDim: hp.proj_output_dim,
    n: o.n,
    views: 2,
    seed: o.seed,
  });
  const z1 = b.op1('Slice', [proj.z, b.ints([0]), b.ints([o.n]), b.ints([0])], {}, 'z1');
  const z2 = b.op1('Slice', [proj.z, b.ints([o.n]), b.ints([2 * o.n]), b.ints([0])], {}, 'z2');
  let loss: SslLoss;
  if (o.lossKind === 'baseline') {
    loss = { loss: b.reduceMean(b.mul(proj.z, proj.z), undefined, false), feeds: [], params: [], outputs: [] };
  } else {
    loss = method.buildLoss({ b, z1, z2, n: o.n, dim: hp.proj_output_dim, hp, seed: o.seed });
  }
  b.output(loss.loss, 'loss');
  b.output(bb.features, 'features');
  for (const v of loss.outputs) b.output(v);
  return {
    graph: b.build(),
    input,
    features: bb.features,
    loss: { ...loss, loss: 'loss' },
    backboneParams: bb.params,
    projectorParams: proj.params,
    hp,
    method,
  };
}

/** The optimizer of the options (SGD with momentum by default). */
export function makeSslOptimizer(o: { optimizer?: 'sgd' | 'lars'; momentum: number; weightDecay: number }): Optimizer {
  if (o.optimizer === 'lars')
    return new Lars({ momentum: o.momentum, weightDecay: o.weightDecay, eta: 0.02, excludeBiasAndNorm: true });
  return new Sgd({ momentum: o.momentum, weightDecay: o.weightDecay });
}

/** Compiles a trainer for the graph; `frozen` parameters stay out of the update (SwAV's first epoch). */
export async function createSslTrainer(
  pg: PretrainGraph,
  optimizer: Optimizer,
  frozen: string[],
  threads?: number,
): Promise<Trainer> {
  const skip = new Set(frozen);
  const trainable = [...pg.backboneParams, ...pg.projectorParams, ...pg.loss.params].filter((p) => !skip.has(p));
  return Trainer.create(
    { graph: pg.graph, loss: pg.loss.loss, trainable, optimizer, extraOutputs: pg.loss.outputs, bnTraining: true },
    { intraOpNumThreads: threads, noCache: true },
  );
}

/**
 * The trainers of one pretraining, compiled on first use: the full step, and for a loss with `frozenFirstEpochs`
 * (SwAV's prototypes) a step that leaves those parameters out of the update during the first epochs.
 */
export class SslTrainers {
  private readonly trainers = new Map<boolean, Trainer>();
  /** The parameters frozen during the first `epochs`, when the loss freezes any. */
  readonly frozenSpec: { params: string[]; epochs: number } | undefined;

  constructor(
    private readonly pg: PretrainGraph,
    private readonly optimizer: Optimizer,
    private readonly o: { threads?: number; log: Logger },
  ) {
    const f = pg.loss.frozenFirstEpochs;
    this.frozenSpec = f && f.epochs > 0 ? f : undefined;
  }

  /** Whether `epoch` (from 0) trains with the frozen parameters left out. */
  frozenAt(epoch: number): boolean {
    return !!this.frozenSpec && epoch < this.frozenSpec.epochs;
  }

  /** The trainer of the frozen or full step; `carry`'s parameters and optimizer state are copied into it. */
  async get(frozen: boolean, carry?: Trainer): Promise<Trainer> {
    let t = this.trainers.get(frozen);
    if (!t) {
      const t0 = performance.now();
      t = await createSslTrainer(
        this.pg,
        this.optimizer,
        frozen && this.frozenSpec ? this.frozenSpec.params : [],
        this.o.threads,
      );
      this.o.log.debug(`compiled the ${this.pg.method.name} training step${frozen ? ' (prototypes frozen)' : ''}`, {
        seconds: (performance.now() - t0) / 1000,
        nodes: t.compiled.graph.nodes.length,
      });
      this.trainers.set(frozen, t);
    }
    if (carry && carry !== t) {
      t.setValues(carry.getParams());
      t.setValues(carry.getState());
    }
    return t;
  }

  /**
   * At the epoch where the frozen parameters start to train, the full step carrying `current`'s values; the
   * frozen step is never needed again, so its session and buffers are freed. Otherwise `current`.
   */
  async forEpoch(epoch: number, current: Trainer): Promise<Trainer> {
    if (!(this.frozenSpec && epoch === this.frozenSpec.epochs && epoch > 0)) return current;
    const next = await this.get(false, current);
    this.trainers.delete(true);
    await current.session.session.release();
    return next;
  }
}

/** Forward graph with BN in training mode returning `outputs` (DeepClusterV2's initial memory pass). */
export function embeddingGraph(forward: Graph, params: Map<string, Tensor>, outputs: string[]): Graph {
  const g = cloneGraph(forward);
  for (const [k, t] of params) if (g.initializers.has(k)) g.initializers.set(k, t);
  inferShapes(g);
  lowerBatchNormTraining(g, () => true);
  g.outputs = outputs.map((o) => ({ name: o, dtype: 'float32' }));
  pruneDead(g);
  const used = new Set(g.nodes.flatMap((n) => n.inputs));
  g.inputs = g.inputs.filter((i) => used.has(i.name));
  g.values.clear();
  inferShapes(g);
  return g;
}
