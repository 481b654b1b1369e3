import { pretrainCase } from './_pretrain-case.js';

pretrainCase('vicreg');
