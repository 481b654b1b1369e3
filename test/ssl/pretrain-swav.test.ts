import { pretrainCase } from './_pretrain-case.js';

// 32 prototypes (and a 64-crop queue) for 320 crops: the paper's 500 need more images than clusters
pretrainCase('swav', { num_prototypes: 32, queue_size: 64 });
