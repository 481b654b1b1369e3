import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { buildResNet18, RESNET18_PARAM_COUNT, resnet18Graph } from '../../src/encoders/resnet18.js';
import { GraphBuilder } from '../../src/engine/ir/builder.js';
import { numel, type Tensor } from '../../src/engine/ir/graph.js';
import { importOnnx } from '../../src/engine/onnx/import.js';
import { maxRelError, readReference } from '../../src/engine/onnx/reference.js';
import { loadSession, ortF32 } from '../../src/engine/runtime/session.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));

test('resnet18: torchvision parameter count, names and N×512 features', () => {
  const { graph, result } = resnet18Graph({ seed: 1, cropSize: 64 });
  let count = 0;
  for (const p of result.params) count += numel(graph.initializers.get(p)!.dims);
  assert.equal(count, RESNET18_PARAM_COUNT);
  assert.equal(result.params.length, 60); // 20 conv weights + 20 BN × (weight, bias)
  assert.equal(result.bnNodes.length, 20);
  assert.equal(result.buffers.length, 40);
  assert.ok(result.params.includes('conv1.weight'));
  assert.ok(result.params.includes('layer4.1.bn2.bias'));
  assert.ok(result.params.includes('layer2.0.downsample.0.weight'));
  assert.ok(result.params.includes('layer3.0.downsample.1.weight'));
  assert.ok(result.buffers.includes('layer1.0.bn1.running_mean'));
  assert.deepEqual(graph.values.get('features')!.shape, ['N', 512]);
  assert.deepEqual(graph.initializers.get('conv1.weight')!.dims, [64, 3, 7, 7]);
});

test('resnet18: torchvision initialisation (kaiming fan_out, BN 1/0, running 0/1), seeded', () => {
  const a = resnet18Graph({ seed: 7 }).graph;
  const b = resnet18Graph({ seed: 7 }).graph;
  const c = resnet18Graph({ seed: 8 }).graph;
  const w = a.initializers.get('layer3.1.conv2.weight')!.data as Float32Array;
  assert.deepEqual(w, b.initializers.get('layer3.1.conv2.weight')!.data);
  assert.notDeepEqual(w, c.initializers.get('layer3.1.conv2.weight')!.data);
  let s = 0;
  let m = 0;
  for (const v of w) {
    s += v * v;
    m += v;
  }
  const std = Math.sqrt(s / w.length - (m / w.length) ** 2);
  const expected = Math.sqrt(2 / (256 * 9));
  assert.ok(Math.abs(std / expected - 1) < 0.02, `std ${std} vs ${expected}`);
  assert.ok(Math.abs(m / w.length) < ((3 * expected) / Math.sqrt(w.length)) * 2);
  // different parameters draw different streams
  assert.notDeepEqual(w.slice(0, 16), (a.initializers.get('layer3.1.conv1.weight')!.data as Float32Array).slice(0, 16));
  assert.ok((a.initializers.get('layer1.0.bn1.weight')!.data as Float32Array).every((v) => v === 1));
  assert.ok((a.initializers.get('layer1.0.bn1.bias')!.data as Float32Array).every((v) => v === 0));
  assert.ok((a.initializers.get('layer1.0.bn1.running_mean')!.data as Float32Array).every((v) => v === 0));
  assert.ok((a.initializers.get('layer1.0.bn1.running_var')!.data as Float32Array).every((v) => v === 1));
});

test('resnet18: prefix and inChannels', () => {
  const b = new GraphBuilder('p');
  const x = b.input('x', 'float32', [2, 1, 32, 32]);
  const r = buildResNet18(b, x, { seed: 1, prefix: 'backbone.', inChannels: 1 });
  b.output(r.features, 'f');
  const g = b.build();
  assert.ok(r.params.every((p) => p.startsWith('backbone.')));
  assert.deepEqual(g.initializers.get('backbone.conv1.weight')!.dims, [64, 1, 7, 7]);
  assert.deepEqual(g.values.get('f')!.shape, [2, 512]);
});

/**
 * The fixture is torchvision's resnet18 exported with BN folded into the convolutions. Its Conv outputs carry the
 * torchvision module path (`/layer2/layer2.0/downsample/downsample.0/Conv_output_0`): load each folded conv weight
 * into our conv of the same module name, its bias into the following BN's bias (BN set to identity), and the
 * features must equal torch's — same modules, same wiring, same strides/pads, same pooling.
 */
test('resnet18: same features as torchvision resnet18 (fixture weights, BN folded into identity)', async () => {
  const tv = importOnnx(`${FIX}resnet18_tv.onnx`);
  const ref = readReference(`${FIX}resnet18_tv.ref.json`);
  const [n, c, h, w] = ref.input.shape;
  const { graph, result } = resnet18Graph({ seed: 3, cropSize: h });
  const bnOf = (conv: string) =>
    conv === 'conv1'
      ? 'bn1'
      : conv.endsWith('downsample.0')
        ? conv.replace(/0$/, '1')
        : conv.replace(/conv(\d)$/, 'bn$1');
  const mapped = new Set<string>();
  for (const node of tv.nodes.filter((x) => x.opType === 'Conv')) {
    const path = node.outputs[0].split('/').filter(Boolean);
    const leaf = path[path.length - 2]; // 'conv1', 'conv2', 'downsample.0'
    const block = path.find((s) => /^layer\d\.\d$/.test(s)); // 'layer2.0' (absent for the stem)
    const full = block ? `${block}.${leaf}` : leaf;
    const wName = `${full}.weight`;
    const ours = graph.initializers.get(wName);
    assert.ok(ours, `torchvision conv '${full}' has a parameter '${wName}' here`);
    const wt = tv.initializers.get(node.inputs[1])!;
    assert.deepEqual(ours.dims, wt.dims, wName);
    graph.initializers.set(wName, wt);
    const bn = bnOf(full);
    const bias = tv.initializers.get(node.inputs[2])!;
    const set = (k: string, t: Tensor) => {
      assert.deepEqual(graph.initializers.get(k)!.dims, t.dims, k);
      graph.initializers.set(k, t);
    };
    set(`${bn}.bias`, bias);
    // running_var = 1 − ε so that the BN is exactly y = x·1 + bias
    set(`${bn}.running_var`, {
      dtype: 'float32',
      dims: bias.dims,
      data: new Float32Array(bias.dims[0]).fill(1 - 1e-5),
    });
    mapped.add(wName);
  }
  assert.equal(mapped.size, 20);
  assert.equal(result.params.filter((p) => /conv\d?\.weight$|downsample\.0\.weight$/.test(p)).length, 20);
  const sess = await loadSession(graph, { noCache: true });
  const out = await sess.run({ input: ortF32(ref.input.data, [n, c, h, w]) });
  const f = out.features;
  assert.deepEqual(f.dims, ref.features.shape);
  const err = maxRelError(f.data as Float32Array, ref.features.data);
  console.log(`resnet18 vs torchvision: max relative error ${err.toExponential(2)}`);
  assert.ok(err < 1e-5, `max relative error ${err}`);
});
