/** SSL augmentations (paper §3.2) and the prefetching batch loader. */
export {
  type Affine,
  type AugmentOptions,
  DEFAULT_AUGMENT,
  NO_AUGMENT,
  type ViewTransform,
  augmentBatch,
  normalisation,
  reflect,
  sampleTransform,
  toAffine,
  twoViews,
  warpCrop,
} from './transforms.js';
export { ArrayCropSource, type Batch, BatchLoader, type BatchLoaderOptions, type CropSource } from './loader.js';
