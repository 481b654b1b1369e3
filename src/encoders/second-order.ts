/**
 * `soq-cnn` and `foq-cnn`: the small CNN of Fan et al. 2017 (Fig. 6: conv → pool → fully connected) with quadratic
 * neurons, and its first-order twin of the same shape, as encoders trained from scratch. With the `finetune` task the
 * whole network learns from the annotated crops alone; with kNN / linear / quadratic heads they are untrained controls.
 */
import { GraphBuilder } from '../engine/ir/builder.js';
import type { Order } from '../second-order/analytic.js';
import { buildSecondOrderCnn } from '../second-order/cnn.js';
import { type Encoder, type EncoderGraph, type EncoderLoadOptions, IMAGENET_PREPROCESS } from './types.js';

/** Feature width D of both CNNs (the dense layer's outputs). */
export const SECOND_ORDER_CNN_DIM = 60;

/** The CNN as an encoder graph: input `input` N×3×S×S → output `features` N×60, seeded. */
export async function loadSecondOrderCnn(order: Order, o: EncoderLoadOptions): Promise<EncoderGraph> {
  const b = new GraphBuilder(order === 2 ? 'soq-cnn' : 'foq-cnn');
  const x = b.input('input', 'float32', ['N', 3, o.cropSize, o.cropSize]);
  const r = buildSecondOrderCnn(b, x, {
    order,
    seed: o.seed,
    cropSize: o.cropSize,
    features: SECOND_ORDER_CNN_DIM,
    // ReLU rather than the paper's sigmoid: the features feed heads and a fine-tuning head, where saturating
    // sigmoids train poorly from scratch in a 50-epoch schedule.
    activation: 'relu',
  });
  b.output(r.features, 'features');
  return {
    graph: b.build(),
    dim: r.dim,
    params: r.params,
    bnNodes: [],
    source: { builder: 'second-order-cnn', order, seed: o.seed, paper: 'Fan et al. 2017, Fig. 6' },
  };
}

function entry(name: string, order: Order, label: string, description: string): Encoder {
  return {
    name,
    label,
    kind: 'scratch',
    dim: SECOND_ORDER_CNN_DIM,
    preprocess: IMAGENET_PREPROCESS,
    description,
    load: (o) => loadSecondOrderCnn(order, o),
  };
}

/** The second-order CNN and its first-order twin, trained from scratch on the annotations (fine-tuning only). */
export const SECOND_ORDER_ENCODERS = {
  'soq-cnn': entry(
    'soq-cnn',
    2,
    'Second-order CNN (scratch)',
    'small CNN with quadratic neurons (Fan et al. 2017, Fig. 6) trained from scratch on the annotations',
  ),
  'foq-cnn': entry(
    'foq-cnn',
    1,
    'First-order CNN twin (scratch)',
    'the first-order twin of soq-cnn, same size, trained from scratch',
  ),
};
