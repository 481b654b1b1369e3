import { pretrainCase } from './_pretrain-case.js';

// 32 prototypes for 320 crops: the paper's 500 need more images than clusters
pretrainCase('deepclusterv2', { num_prototypes: 32 });
