import { pretrainCase } from './_pretrain-case.js';

pretrainCase('barlow_twins');
