import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildConvNext, CONVNEXT_TINY, torchvisionToTimm } from '../../src/encoders/convnext.js';
import { loadImageNetEncoder } from '../../src/encoders/imagenet.js';
import { applyStateDict } from '../../src/encoders/safetensors.js';
import { writeSafetensors } from '../../src/encoders/safetensors.js';
import { buildVgg16 } from '../../src/encoders/vgg16.js';
import { GraphBuilder } from '../../src/engine/ir/builder.js';
import { numel, type Tensor } from '../../src/engine/ir/graph.js';
import { importOnnx } from '../../src/engine/onnx/import.js';
import { maxRelError, readReference } from '../../src/engine/onnx/reference.js';
import { loadSession, ortF32 } from '../../src/engine/runtime/session.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));

function count(g: GraphBuilder['graph'], names: string[]): number {
  return names.reduce((s, n) => s + numel(g.initializers.get(n)!.dims), 0);
}

test('vgg16 / convnext_tiny builders: torchvision parameter counts without the classifier, 512 / 768 features', () => {
  const b = new GraphBuilder('vgg');
  const v = buildVgg16(b, b.input('input', 'float32', ['N', 3, 32, 32]), { seed: 1 });
  b.output(v.features, 'features');
  const g = b.build();
  assert.equal(count(g, v.params), 14_714_688); // torchvision vgg16 `features`
  assert.deepEqual(g.values.get('features')!.shape, ['N', 512]);
  assert.ok(v.params.includes('features.28.weight') && !v.params.includes('features.29.weight'));
  const c = new GraphBuilder('cnx');
  const r = buildConvNext(c, c.input('input', 'float32', ['N', 3, 32, 32]), { seed: 1, config: CONVNEXT_TINY });
  c.output(r.features, 'features');
  const cg = c.build();
  assert.equal(count(cg, r.params), 28_589_128 - (768 * 1000 + 1000)); // torchvision convnext_tiny minus classifier.2
  assert.deepEqual(cg.values.get('features')!.shape, ['N', 768]);
});

/** The fixture's torchvision state dict: named initializers, plus the Linear weights torch exported transposed. */
function fixtureStateDict(): Map<string, Tensor> {
  const g = importOnnx(join(FIX, 'convnext_small_tv.onnx'));
  const sd = new Map<string, Tensor>();
  for (const [k, t] of g.initializers) if (!k.startsWith('onnx::') && t.dims.length) sd.set(k, t);
  for (const n of g.nodes) {
    const m = n.outputs[0].match(/^\/features\/features\.(\d+)\/features\.\d+\.(\d+)\/block\/block\.(3|5)\/MatMul/);
    if (n.opType !== 'MatMul' || !m) continue;
    const wt = g.initializers.get(n.inputs[1])!; // in×out
    const [i, o] = wt.dims;
    const d = new Float32Array(i * o);
    for (let r = 0; r < i; r++) for (let c = 0; c < o; c++) d[c * i + r] = (wt.data as Float32Array)[r * o + c];
    sd.set(`features.${m[1]}.${m[2]}.block.${m[3]}.weight`, { dtype: 'float32', dims: [o, i], data: d });
  }
  return sd;
}

test('convnext builder: the torchvision fixture weights, renamed to timm names, give the features torch computed', async () => {
  const cfg = { depths: [1, 1, 2, 1], dims: [24, 48, 96, 192] };
  const b = new GraphBuilder('cnx_small');
  const r = buildConvNext(b, b.input('input', 'float32', ['N', 3, 64, 64]), { seed: 0, config: cfg });
  b.output(r.features, 'features');
  const sd = torchvisionToTimm(fixtureStateDict());
  const unused = applyStateDict(b.graph, { tensors: sd, metadata: {} }, r.params, 'fixture');
  assert.deepEqual(unused, []);
  const ref = readReference(join(FIX, 'convnext_small_tv.ref.json'));
  const s = await loadSession(b.build(), { intraOpNumThreads: 1 });
  const got = (await s.run({ input: ortF32(ref.input.data, ref.input.shape) }, ['features'])).features
    .data as Float32Array;
  const err = maxRelError(got, ref.features.data);
  assert.ok(err < 1e-4, `relative error ${err}`);
});

test('imagenet: convnext_tiny safetensors with torchvision names load onto the builder', async () => {
  const b = new GraphBuilder('cnx');
  const r = buildConvNext(b, b.input('input', 'float32', ['N', 3, 32, 32]), { seed: 9, config: CONVNEXT_TINY });
  // write it back under torchvision's names (the inverse of torchvisionToTimm, built by matching)
  const timmNames = new Map<string, string>();
  const tv = new Map<string, Tensor>();
  const rename = (k: string): string =>
    k
      .replace(/^stem\.(\d)/, 'features.0.$1')
      .replace(/^stages\.(\d+)\.downsample\.(\d)/, (_m, s, j) => `features.${2 * Number(s)}.${j}`)
      .replace(
        /^stages\.(\d+)\.blocks\.(\d+)\.(conv_dw|norm|mlp\.fc1|mlp\.fc2)/,
        (_m, s, k2, sub) =>
          `features.${2 * Number(s) + 1}.${k2}.block.${{ conv_dw: 0, norm: 2, 'mlp.fc1': 3, 'mlp.fc2': 5 }[sub as 'norm']}`,
      )
      .replace(
        /^stages\.(\d+)\.blocks\.(\d+)\.gamma$/,
        (_m, s, k2) => `features.${2 * Number(s) + 1}.${k2}.layer_scale`,
      )
      .replace(/^head\.norm/, 'classifier.0');
  for (const n of r.params) {
    const t = b.graph.initializers.get(n)!;
    const k = rename(n);
    timmNames.set(k, n);
    tv.set(k, k.endsWith('layer_scale') ? { ...t, dims: [t.dims[0], 1, 1] } : t);
  }
  const dir = mkdtempSync(join(tmpdir(), 'qcb-cnx-'));
  writeSafetensors(join(dir, 'convnext_tiny.safetensors'), tv);
  const eg = await loadImageNetEncoder('convnext_tiny', { cropSize: 32, seed: 0, weightsDir: dir });
  assert.equal(eg.dim, 768);
  assert.equal(eg.source.format, 'safetensors');
  assert.deepEqual(
    eg.graph.initializers.get('stages.2.blocks.8.mlp.fc1.weight')!.data,
    b.graph.initializers.get('stages.2.blocks.8.mlp.fc1.weight')!.data,
  );
  assert.deepEqual(eg.graph.initializers.get('stages.3.blocks.2.gamma')!.dims, [768]);
});

test('vgg builder: the torchvision VGG fixture weights give the features torch computed', async () => {
  const g = importOnnx(join(FIX, 'vgg_small_tv.onnx'));
  const conv = [...g.initializers].filter(([k]) => /^0\.\d+\.weight$/.test(k));
  // rebuild the fixture's layer list from its conv indices: a gap of 3 between convs means a max pool in between
  const idx = conv.map(([k]) => Number(k.split('.')[1]));
  const cfg: (number | 'M')[] = [];
  idx.forEach((i, j) => {
    cfg.push(conv[j][1].dims[0]);
    if ((idx[j + 1] ?? i + 3) - i === 3) cfg.push('M');
  });
  const b = new GraphBuilder('vgg_small');
  const r = buildVgg16(b, b.input('input', 'float32', ['N', 3, 64, 64]), { seed: 0, cfg });
  b.output(r.features, 'features');
  const sd = new Map<string, Tensor>();
  for (const [k, t] of g.initializers) if (/^0\.\d+\.(weight|bias)$/.test(k)) sd.set(`features.${k.slice(2)}`, t);
  assert.deepEqual(applyStateDict(b.graph, { tensors: sd, metadata: {} }, r.params, 'fixture'), []);
  const ref = readReference(join(FIX, 'vgg_small_tv.ref.json'));
  const s = await loadSession(b.build(), { intraOpNumThreads: 1 });
  const got = (await s.run({ input: ortF32(ref.input.data, ref.input.shape) }, ['features'])).features
    .data as Float32Array;
  assert.ok(maxRelError(got, ref.features.data) < 1e-4);
});
