/**
 * The quadratic head as a downstream task: Fan et al. 2017's one layer of second-order neurons on frozen features
 * (src/second-order/head.ts), full-batch AdamW, started as the linear probe (`init: first-order`). A saved model is
 * the head (standardisation, layer parameters, classes) as JSON.
 */
import { QcbError } from '../errors.js';
import { nonNeg, posInt } from '../protocol/fields.js';
import { type LayerParams, PARAM_KEYS, type ParamKey } from '../second-order/analytic.js';
import { fitQuadraticHead, predictQuadraticHead, type QuadraticHead } from '../second-order/head.js';
import { type DownstreamTask, needFeatures } from './task.js';

/** The JSON form of a saved quadratic head (the layer's six parameter arrays; order 1 leaves four empty). */
export interface QuadraticSaved {
  classes: string[];
  positiveClass: string;
  /** D feature means and standard deviations of the standardisation. */
  mean: number[];
  std: number[];
  layer: { order: 1 | 2; in: number; out: number } & Record<ParamKey, number[]>;
  trainLoss: number;
}

/**
 * Fan et al. 2017 head: one layer of quadratic neurons (Eq. 1) on standardised frozen features, trained full-batch
 * with AdamW (src/second-order/head.ts); `first-order` initialisation starts it as the linear probe (the protocol's
 * `tasks.quadratic` defaults, chosen on the synthetic screen: docs/second-order.md).
 */
export const QUADRATIC = { steps: 300, lr: 0.02, weight_decay: 0.001, init: 'first-order' } as const;

/** Second-order head on frozen features; settings `steps`, `lr`, `weight_decay` and `init` (`first-order` or `random`). */
export const QUADRATIC_TASK = {
  name: 'quadratic',
  label: 'Quadratic head',
  description: 'second-order neuron head (Fan et al. 2017) on a frozen encoder',
  frozen: true,
  settings: {
    steps: posInt(QUADRATIC.steps),
    lr: { kind: 'number', gt: 0, default: QUADRATIC.lr },
    weight_decay: nonNeg(QUADRATIC.weight_decay),
    init: { kind: 'enum', values: ['first-order', 'random'], what: 'initialisation', default: QUADRATIC.init },
  },
  // handed the line search like every trained head (so its cells' identity includes it), though it tunes nothing
  lineSearch: true,
  async train(ctx) {
    const s = ctx.settings ?? {};
    const num = (k: string, d: number) => (typeof s[k] === 'number' ? (s[k] as number) : d);
    const settings = {
      steps: num('steps', QUADRATIC.steps),
      lr: num('lr', QUADRATIC.lr),
      weightDecay: num('weight_decay', QUADRATIC.weight_decay),
      init: s.init === 'random' ? ('random' as const) : ('first-order' as const),
    };
    const head = await fitQuadraticHead(needFeatures(ctx.features, 'quadratic', 'training'), ctx.train.labels, {
      ...settings,
      order: 2,
      seed: ctx.seed,
      positiveClass: 'abnormal',
    });
    return { model: head, settings: { ...settings, order: 2 } };
  },
  async predict(head, input) {
    const p = predictQuadraticHead(head, needFeatures(input.features, 'quadratic', 'test'));
    return { pred: p.pred, score: p.score };
  },
  save(head) {
    const { order, in: inF, out } = head.layer;
    const layer = { order, in: inF, out } as QuadraticSaved['layer'];
    for (const k of PARAM_KEYS) layer[k] = Array.from(head.layer[k] ?? []);
    return {
      classes: [...head.classes],
      positiveClass: head.positiveClass,
      mean: Array.from(head.mean),
      std: Array.from(head.std),
      layer,
      trainLoss: head.trainLoss,
    };
  },
  load(dir, s) {
    const { order, in: inF, out } = s.layer;
    if (s.mean.length !== inF || s.std.length !== inF || s.layer.wr.length !== inF * out)
      throw new QcbError('QCB_FILE_TRUNCATED', `the saved quadratic head does not match its ${out}×${inF} layer`, {
        file: dir,
        fix: 'delete the model folder: it is trained again',
      });
    const layer = { order, in: inF, out } as LayerParams;
    for (const k of PARAM_KEYS) layer[k] = Float64Array.from(s.layer[k]);
    return {
      classes: s.classes,
      positiveClass: s.positiveClass,
      mean: Float64Array.from(s.mean),
      std: Float64Array.from(s.std),
      layer,
      trainLoss: s.trainLoss,
    };
  },
} satisfies DownstreamTask<QuadraticHead, QuadraticSaved>;
