import { join } from 'node:path';
import { loadRandomResNet18 } from './src/encoders/random.js';
import { loadOnnxEncoder } from './src/encoders/onnx-file.js';
import { IMAGENET_PREPROCESS } from './src/encoders/types.js';
import { selectCrops } from './src/downstream/features.js';
import { predictFinetune, trainFinetune } from './src/downstream/finetune.js';
import { accuracy } from './src/metrics/classification.js';
import { synthCrops } from './test/downstream/synth-crops.js';
let t = Date.now();
const data = synthCrops(192, 24, 3);
console.log('crops ms', Date.now()-t);
const tr = Array.from({ length: 128 }, (_, i) => i), te = Array.from({ length: 64 }, (_, i) => 128 + i);
for (const kind of ['vgg', 'rn4']) for (const lr of [0.01, 0.05]) {
const eg = kind === 'vgg' ? loadOnnxEncoder(join('../shared/fixtures/onnx', 'vgg_small_tv.onnx'), 24) : await loadRandomResNet18({ cropSize: 24, seed: 2, settings: { width: 4 } });
t = Date.now();
const m = await trainFinetune(eg, IMAGENET_PREPROCESS, selectCrops(data.crops, tr), tr.map(i=>data.labels[i]), { seed: 1, threads: 2, settings: { epochs: 8, batch_size: 16, lr, milestones: [5] } });
const p = await predictFinetune(m, selectCrops(data.crops, te), { threads: 2 });
console.log(kind, lr, Date.now()-t, 'ms', m.lossCurve.map(v=>v.toFixed(2)).join(' '), accuracy(te.map(i=>data.labels[i]), p.pred));
}
