/**
 * The paper's SSL augmentations by name (§3.2: "90 degree rotation, flip, transpose, shift and scale"; protocol key
 * `pretrain.augmentations`, `qcbench pretrain --augment`) mapped onto the batch loader's options
 * (src/data/augment/transforms.ts). A name left out turns its step off; all five give DEFAULT_AUGMENT's geometry
 * exactly, so the default pretraining settings (and their checkpoints) are unchanged.
 */
import { AUGMENTATIONS } from '../protocol/catalog.js';
import { DEFAULT_AUGMENT, type AugmentOptions } from '../data/augment/transforms.js';
import { QcbError } from '../errors.js';

export type AugmentationName = (typeof AUGMENTATIONS)[number];

/** The geometric loader options of a list of augmentation names (normalisation is left to the caller). */
export function sslAugment(
  names: readonly string[],
): Pick<AugmentOptions, 'rot90' | 'flip' | 'transpose' | 'shiftScaleP' | 'shift' | 'scale'> {
  for (const n of names) {
    if (!(AUGMENTATIONS as readonly string[]).includes(n))
      throw new QcbError('QCB_USAGE', `unknown augmentation '${n}'`, {
        key: 'augmentations',
        value: n,
        allowed: AUGMENTATIONS.join(', '),
        fix: `choose among ${AUGMENTATIONS.join(', ')}`,
      });
  }
  const on = (n: AugmentationName) => names.includes(n);
  const shift = on('shift');
  const scale = on('scale');
  return {
    rot90: on('rot90') && DEFAULT_AUGMENT.rot90,
    flip: on('flip') ? DEFAULT_AUGMENT.flip : 0,
    transpose: on('transpose') ? DEFAULT_AUGMENT.transpose : 0,
    // shift and scale are one step (albumentations ShiftScaleRotate without rotation); either keeps it on
    shiftScaleP: shift || scale ? DEFAULT_AUGMENT.shiftScaleP : 0,
    shift: shift ? DEFAULT_AUGMENT.shift : 0,
    scale: scale ? [...DEFAULT_AUGMENT.scale] : [1, 1],
  };
}
