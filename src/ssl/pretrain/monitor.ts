/**
 * The optional kNN monitor of pretraining (paper §3.3 task 1, kNN classification, on the current backbone before
 * training and after each epoch): annotated crops of the pretraining source, their train split as the neighbour
 * bank and their test split scored.
 */
import { knnClassify } from '../../downstream/knn.js';
import { extractFeatures } from '../../encoders/features.js';
import { RESNET18_FEATURES } from '../../encoders/resnet18.js';
import type { Tensor } from '../../engine/ir/graph.js';
import { QcbError } from '../../errors.js';
import { backboneGraph } from './export.js';
import { SSL_PREPROCESS } from './options.js';
import type { CropSource } from './sources.js';

/** Annotated crops for the optional kNN monitor (paper §3.3 task 1 on the current backbone after each epoch). */
export interface KnnMonitor {
  crops: { data: Uint8Array; n: number; channels: number; size: number };
  labels: string[];
  train: number[];
  test: number[];
  k?: number;
}

/**
 * The kNN monitor of annotated crops of `source` (`qcbench pretrain --monitor`, protocol `pretrain.knn_monitor`): the
 * annotations' train split is the neighbour bank, their test split is scored; rows whose crop is not in the source
 * are left out.
 * @param cropIndex crop_id → index in the source
 * @throws QCB_ANNOTATIONS when no train or no test crop of the annotations is in the source
 */
export async function knnMonitorFor(
  source: CropSource,
  cropIndex: ReadonlyMap<string, number>,
  annotations: readonly { crop_id: string; label: string; split: string }[],
  o: { file?: string; k?: number } = {},
): Promise<KnnMonitor> {
  const rows: number[] = [];
  const labels: string[] = [];
  const train: number[] = [];
  const test: number[] = [];
  for (const a of annotations) {
    const i = cropIndex.get(a.crop_id);
    if (i === undefined) continue;
    (a.split === 'train' ? train : test).push(rows.length);
    rows.push(i);
    labels.push(a.label);
  }
  if (train.length === 0 || test.length === 0) {
    throw new QcbError(
      'QCB_ANNOTATIONS',
      `${o.file ?? 'the annotations'} has no train or no test crops of ${source.id} for the kNN monitor`,
      { file: o.file, fix: 'use annotations made for this store (crop ids of its crops.csv), with both splits' },
    );
  }
  const data = await source.read(rows);
  return {
    crops: { data, n: rows.length, channels: source.channels, size: source.size },
    labels,
    train,
    test,
    ...(o.k !== undefined ? { k: o.k } : {}),
  };
}

/**
 * kNN accuracy (%, of the monitor's test rows) of the backbone with `params`: features N×512 of the monitor's crops
 * (SSL_PREPROCESS), classified by their k nearest train rows (k default 5).
 */
export async function monitorAccuracy(
  mon: KnnMonitor,
  params: Map<string, Tensor>,
  seed: number,
  threads?: number,
): Promise<number> {
  const graph = backboneGraph(params, seed);
  const feats = await extractFeatures({ graph, dim: RESNET18_FEATURES, source: {} }, SSL_PREPROCESS, mon.crops, {
    threads,
  });
  const pick = (rows: number[]) =>
    rows.map((r) => Array.from(feats.data.subarray(r * feats.cols, (r + 1) * feats.cols)));
  const res = knnClassify(
    pick(mon.train),
    mon.train.map((r) => mon.labels[r]),
    pick(mon.test),
    { k: mon.k ?? 5 },
  );
  return (100 * res.pred.filter((p, i) => p === mon.labels[mon.test[i]]).length) / mon.test.length;
}
