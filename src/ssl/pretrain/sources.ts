/**
 * Where pretraining reads its crops (in memory or a crop store) and how it turns them into batches: a fixed seeded
 * subset of the source, reshuffled every epoch, two augmented views per crop from the prefetching BatchLoader
 * (src/data/augment/loader.ts), grey crops replicated to 3 channels.
 */
import { BatchLoader, type Batch, type CropSource as LoaderSource } from '../../data/augment/loader.js';
import type { AugmentOptions } from '../../data/augment/transforms.js';
import type { CropStore } from '../../data/store/crop-store.js';
import { QcbError } from '../../errors.js';
import { deriveSeed, Rng } from '../../util/random.js';

/** Where pretraining reads crops: uint8 N×C×S×S (C = 1 or 3; grey crops are replicated to 3 channels). */
export interface CropSource {
  count: number;
  channels: number;
  size: number;
  /** Crops at the given indices, concatenated (indices.length × C × S × S). */
  read(indices: readonly number[]): Promise<Uint8Array>;
  /** Identifies the crops (store path and hash) in records and checkpoints. */
  id: string;
}

/** A CropSource over crops in memory. */
export function memoryCropSource(
  data: Uint8Array,
  count: number,
  channels: number,
  size: number,
  id: string,
): CropSource {
  const per = channels * size * size;
  if (data.length < count * per) {
    throw new QcbError(
      'QCB_STORE',
      `${count} crops of ${channels}×${size}×${size} need ${count * per} bytes, got ${data.length}`,
      { fix: 'pass the crops and their shape' },
    );
  }
  return {
    count,
    channels,
    size,
    id,
    async read(indices) {
      const out = new Uint8Array(indices.length * per);
      indices.forEach((r, i) => {
        out.set(data.subarray(r * per, (r + 1) * per), i * per);
      });
      return out;
    },
  };
}

/** A CropSource over a crop store (src/data/store), optionally restricted to some of its channels (by name). */
export function storeCropSource(store: CropStore, channels?: string[]): CropSource {
  const all = store.channels;
  const pick = (channels ?? all).map((c) => {
    const i = all.indexOf(c);
    if (i < 0) {
      throw new QcbError('QCB_STORE', `the crop store has no channel '${c}'`, {
        file: store.path,
        key: 'channels',
        value: c,
        allowed: all.join(', '),
        fix: `choose among ${all.join(', ')}`,
      });
    }
    return i;
  });
  const C = all.length;
  const per = store.size * store.size;
  const identity = pick.length === C && pick.every((c, i) => c === i);
  return {
    count: store.count,
    channels: pick.length,
    size: store.size,
    id: `${store.path}#${store.hash}${identity ? '' : `:${pick.join(',')}`}`,
    async read(indices) {
      const raw = await store.readIndices([...indices]);
      if (identity) return raw;
      const out = new Uint8Array(indices.length * pick.length * per);
      for (let i = 0; i < indices.length; i++) {
        for (let k = 0; k < pick.length; k++) {
          const c = pick[k];
          out.set(raw.subarray((i * C + c) * per, (i * C + c + 1) * per), (i * pick.length + k) * per);
        }
      }
      return out;
    },
  };
}

/** Grey crops → 3 channels (as the downstream feature extraction does); 3-channel crops unchanged. */
function toRgb(crops: Uint8Array, n: number, c: number, s: number): Uint8Array {
  if (c === 3) return crops;
  const per = s * s;
  const out = new Uint8Array(n * 3 * per);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < 3; k++) out.set(crops.subarray(i * per, (i + 1) * per), (i * 3 + k) * per);
  return out;
}

/**
 * The pretraining set: the first `imagesPerEpoch` of a seeded permutation of the source (fixed for the whole run;
 * epochs reshuffle it), and loaders of its batches.
 */
export class PretrainData {
  /** Source indices of the pretraining set (M). */
  readonly subset: Int32Array;
  private readonly positionOf = new Map<number, number>();
  private readonly rgb: LoaderSource;

  constructor(
    src: CropSource,
    imagesPerEpoch: number,
    private readonly o: { batchSize: number; seed: number; augment: AugmentOptions },
  ) {
    const subsetRng = new Rng(deriveSeed(o.seed, 'ssl-subset'));
    const order = Int32Array.from({ length: src.count }, (_, i) => i);
    for (let i = 0; i < imagesPerEpoch; i++) {
      const j = i + Math.floor(subsetRng.next() * (src.count - i));
      [order[i], order[j]] = [order[j], order[i]];
    }
    this.subset = order.subarray(0, imagesPerEpoch);
    this.subset.forEach((idx, pos) => {
      this.positionOf.set(idx, pos);
    });
    // grey crops are replicated to 3 channels before augmentation, as the downstream feature extraction does
    this.rgb = {
      count: src.count,
      channels: 3,
      size: src.size,
      readIndices: async (idx) => toRgb(await src.read(idx), idx.length, src.channels, src.size),
    };
  }

  /** A one-epoch loader of two augmented views per crop; its seed derives from `label` and `epoch`. */
  loader(label: string, epoch: number, shuffle: boolean): BatchLoader {
    return new BatchLoader(this.rgb, {
      batchSize: this.o.batchSize,
      seed: deriveSeed(this.o.seed, label, epoch),
      views: 2,
      prefetch: 2,
      augment: this.o.augment,
      epochs: 1,
      shuffle,
      indices: Array.from(this.subset),
    });
  }

  /** Positions in the pretraining set (0..M−1) of a batch's crops: the rows of a method's memory bank. */
  positions(b: Batch): number[] {
    return b.indices.map((i) => this.positionOf.get(i)!);
  }

  /** The batch's two views as one 2N×3×S×S input (view 1 rows, then view 2). */
  static stacked(b: Batch): Float32Array {
    const x = new Float32Array(2 * b.views[0].length);
    x.set(b.views[0], 0);
    x.set(b.views[1], b.views[0].length);
    return x;
  }
}
