/** SSL augmentations (paper §3.2) and the prefetching batch loader. */

export { ArrayCropSource, type Batch, BatchLoader, type BatchLoaderOptions, type CropSource } from './loader.js';
export {
  type Affine,
  type AugmentOptions,
  augmentBatch,
  DEFAULT_AUGMENT,
  NO_AUGMENT,
  normalisation,
  reflect,
  sampleTransform,
  toAffine,
  twoViews,
  type ViewTransform,
  warpCrop,
} from './transforms.js';
