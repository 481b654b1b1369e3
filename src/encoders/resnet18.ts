/**
 * ResNet18 built by the engine: exactly torchvision's `resnet18` (He et al. 2016; torchvision/models/resnet.py) without
 * the classifier, the SSL backbone of Masud et al. 2022 §3.2 ("a ResNet18 as encoder … outputs a 512 dimensional
 * vector").
 *
 * Architecture: conv1 7×7/2 pad 3 (no bias) → bn1 → ReLU → maxpool 3×3/2 pad 1 → layer1…layer4, each two BasicBlocks
 * (conv3×3(stride) → bn → ReLU → conv3×3 → bn, plus the identity or a 1×1/stride conv + BN downsample when the shape
 * changes, then ReLU) with widths w, 2w, 4w, 8w (w = 64) and strides 1, 2, 2, 2 → global average pool → flatten.
 *
 * Initialisation as torchvision: convolutions `kaiming_normal_(mode='fan_out', nonlinearity='relu')`, i.e.
 * N(0, 2 / (out_channels·kh·kw)); BatchNorm weight 1, bias 0, running mean 0, running var 1; momentum 0.1 (PyTorch)
 * ≙ 0.9 (ONNX), ε 1e-5. Seeded: the same seed gives the same weights on every machine.
 *
 * Parameter names are torchvision's `state_dict` keys (`conv1.weight`, `layer1.0.bn1.running_mean`,
 * `layer2.0.downsample.0.weight`, `layer2.0.downsample.1.bias`, …), optionally prefixed, so that torchvision/timm
 * weights map onto the graph by name.
 */
import { full, GraphBuilder, randn, zeros } from '../engine/ir/builder.js';
import { attr, type Graph, type Tensor } from '../engine/ir/graph.js';
import { hashString } from '../util/random.js';

export interface ResNet18Options {
  /** Seed of the weight initialisation. */
  seed: number;
  /** Prefix of every parameter name (e.g. `backbone.`); default none (torchvision's keys). */
  prefix?: string;
  /** Input channels (default 3). */
  inChannels?: number;
  /** Base width w (default 64: torchvision's resnet18); features are 8·w wide. */
  width?: number;
  /**
   * Values for convolution weights by (prefixed) name, taken instead of drawing them: a trained backbone's graph
   * without the cost of an initialisation it would overwrite (11 M normal draws).
   */
  weights?: ReadonlyMap<string, Tensor>;
}

export interface ResNet18Result {
  /** Pooled features, N×(8·width) (N×512 for the default width). */
  features: string;
  /** Trainable parameters (conv weights, BN weights and biases), in torchvision's `state_dict` order. */
  params: string[];
  /** Names of the BatchNormalization nodes (20 of them). */
  bnNodes: string[];
  /** BN running statistics (`…running_mean`, `…running_var`), in `state_dict` order: buffers, not trained. */
  buffers: string[];
}

/** Feature width of the default ResNet18. */
export const RESNET18_FEATURES = 512;
/** torchvision resnet18's parameter count without the fc layer (11,689,512 − 512·1000 − 1000). */
export const RESNET18_PARAM_COUNT = 11_176_512;

/**
 * Appends a torchvision ResNet18 (no fc) to `b`.
 * @param input name of an N×C×H×W float32 value (C = `inChannels`)
 * @returns the N×512 feature value, parameter names, BN node names and running-statistic buffers
 */
export function buildResNet18(b: GraphBuilder, input: string, opts: ResNet18Options): ResNet18Result {
  const prefix = opts.prefix ?? '';
  const inC = opts.inChannels ?? 3;
  const w = opts.width ?? 64;
  const params: string[] = [];
  const buffers: string[] = [];
  const bnNodes: string[] = [];
  const seedOf = (name: string) => hashString(`${opts.seed}:${name}`);

  const conv = (
    x: string,
    module: string,
    cin: number,
    cout: number,
    k: number,
    stride: number,
    pad: number,
  ): string => {
    const name = `${prefix}${module}.weight`;
    // kaiming_normal_(mode='fan_out', nonlinearity='relu'): gain √2, fan_out = cout·k·k
    const std = Math.sqrt(2 / (cout * k * k));
    params.push(b.param(name, opts.weights?.get(name) ?? randn([cout, cin, k, k], std, seedOf(name))));
    return b.op1(
      'Conv',
      [x, name],
      { kernel_shape: [k, k], strides: [stride, stride], pads: [pad, pad, pad, pad] },
      `${prefix}${module}`,
    );
  };
  const bn = (x: string, module: string, c: number): string => {
    const p = `${prefix}${module}`;
    const scale = b.param(`${p}.weight`, full([c], 1));
    const bias = b.param(`${p}.bias`, zeros([c]));
    const mean = b.param(`${p}.running_mean`, zeros([c]));
    const variance = b.param(`${p}.running_var`, full([c], 1));
    params.push(scale, bias);
    buffers.push(mean, variance);
    const y = b.op1(
      'BatchNormalization',
      [x, scale, bias, mean, variance],
      { epsilon: attr.float(1e-5), momentum: attr.float(0.9) },
      p,
    );
    bnNodes.push(b.graph.nodes[b.graph.nodes.length - 1].name);
    return y;
  };
  const relu = (x: string, hint: string) => b.op1('Relu', [x], {}, `${prefix}${hint}`);

  // stem
  let x = conv(input, 'conv1', inC, w, 7, 2, 3);
  x = bn(x, 'bn1', w);
  x = relu(x, 'relu');
  x = b.op1('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, `${prefix}maxpool`);

  // 4 stages × 2 BasicBlocks (expansion 1)
  let cin = w;
  for (let stage = 0; stage < 4; stage++) {
    const cout = w * 2 ** stage;
    for (let blk = 0; blk < 2; blk++) {
      const m = `layer${stage + 1}.${blk}`;
      const stride = stage > 0 && blk === 0 ? 2 : 1;
      const identity = x;
      let y = conv(x, `${m}.conv1`, cin, cout, 3, stride, 1);
      y = bn(y, `${m}.bn1`, cout);
      y = relu(y, `${m}.relu`);
      y = conv(y, `${m}.conv2`, cout, cout, 3, 1, 1);
      y = bn(y, `${m}.bn2`, cout);
      let shortcut = identity;
      if (stride !== 1 || cin !== cout) {
        shortcut = conv(identity, `${m}.downsample.0`, cin, cout, 1, stride, 0);
        shortcut = bn(shortcut, `${m}.downsample.1`, cout);
      }
      x = relu(b.op1('Add', [y, shortcut], {}, `${prefix}${m}.add`), `${m}.relu_out`);
      cin = cout;
    }
  }
  const pooled = b.op1('GlobalAveragePool', [x], {}, `${prefix}avgpool`);
  const features = b.op1('Flatten', [pooled], { axis: 1 }, `${prefix}features`);
  return { features, params, bnNodes, buffers };
}

/**
 * A standalone ResNet18 encoder graph: input `input` N×C×S×S float32 → output `features` N×512, BN in inference mode
 * (running statistics), torchvision initialisation. The random-init control and the starting point of SSL.
 */
export function resnet18Graph(opts: ResNet18Options & { cropSize?: number | string }): {
  graph: Graph;
  result: ResNet18Result;
} {
  const b = new GraphBuilder('resnet18');
  const s = opts.cropSize ?? 'S';
  const input = b.input('input', 'float32', ['N', opts.inChannels ?? 3, s, s]);
  const result = buildResNet18(b, input, opts);
  b.output(result.features, 'features');
  return { graph: b.build(), result: { ...result, features: 'features' } };
}
