import { makeCrops } from './test/ssl/_crops.js';
import { memoryCropSource, pretrain } from './src/ssl/pretrain.js';
import { Logger } from './src/util/log.js';
const method = process.argv[2] ?? 'simclr';
const lr = Number(process.argv[3] ?? 0.05);
const epochs = Number(process.argv[4] ?? 5);
const c = makeCrops(12, 7);
const idx = Array.from({ length: c.n }, (_, i) => i);
const train = idx.filter((i) => i % 2 === 0);
const test = idx.filter((i) => i % 2 === 1);
const hyper = method === 'deepclusterv2' || method === 'swav' ? { num_prototypes: 30, ...(method === 'swav' ? { queue_size: 128 } : {}) } : {};
const r = await pretrain({
  method, source: memoryCropSource(c.data, c.n, 3, 32, 'knn-crops'), outDir: `/tmp/ssl_knn_${method}`, epochs, batchSize: 32, lr, resume: false, hyper,
  monitor: { crops: { data: c.data, n: c.n, channels: 3, size: 32 }, labels: c.labels, train, test },
  log: new Logger({ level: 'warn' }),
});
const l = r.record.loss;
console.log(JSON.stringify({ method, lr, epochs, n: c.n, abnormal: c.labels.filter((x) => x === 'abnormal').length, knn: r.record.knn_monitor, loss_first: l[0].loss, loss_last: l[l.length - 1].loss, ips: r.record.images_per_second }));
