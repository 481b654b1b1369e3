import { makeCrops } from './test/ssl/_crops.js';
import { memoryCropSource, pretrain } from './src/ssl/pretrain.js';
import { Logger } from './src/util/log.js';
const c = makeCrops(4);
const src = memoryCropSource(c.data, c.n, 3, 32, 'test');
const method = process.argv[2] ?? 'simclr';
const t0 = performance.now();
const r = await pretrain({ method, source: src, outDir: `/tmp/ssl_dbg_${method}`, epochs: 2, batchSize: 16, lr: 0.05, resume: false, hyper: method === 'swav' || method === 'deepclusterv2' ? { num_prototypes: 10, ...(method === 'swav' ? { queue_size: 64 } : {}) } : {},
  onStep: (p) => console.log(p.epoch, p.step, p.loss.toFixed(4), p.lr.toExponential(2), p.imagesPerSecond.toFixed(1)) });
console.log('total', ((performance.now() - t0) / 1000).toFixed(1), 's', r.record.images_per_second, r.onnx);
