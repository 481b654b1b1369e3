import { shortPretrain } from './test/ssl/_pretrain-case.js';
const variants: Record<string, Record<string, number>> = {
  base: { num_prototypes: 8, queue_size: 32 },
  noqueue: { num_prototypes: 8, queue_size: 0 },
  nofreeze: { num_prototypes: 8, queue_size: 0, freeze_prototypes_epochs: 0 },
};
const v = process.argv[2] ?? 'base';
const lr = Number(process.argv[3] ?? 0.05);
const { res, cleanup } = await shortPretrain('swav', { hyper: variants[v], lr, epochs: 5 });
console.log(v, lr, res.record.loss.map((p) => p.loss.toFixed(3)).join(' '));
cleanup();
