/** Test helper: a small real crop store of synthetic-screen crops (ground truth kept aside), for the annotate tests. */
import { CropStoreWriter } from '../../src/data/store/crop-store.js';
import { synthCrops } from '../downstream/synth-crops.js';

export interface TestStore {
  path: string;
  crop_ids: string[];
  labels: string[];
  types: string[];
}

/** Writes `n` crops of side `size` (Ph_golgi, Mito, Hoechst) to a new store at `path`, wells B02/B03/C05, site 1. */
export async function makeTestStore(path: string, n: number, size = 32, seed = 3, plate = 'P1'): Promise<TestStore> {
  const d = synthCrops(n, size, seed);
  const w = await CropStoreWriter.create(path, { channels: ['Ph_golgi', 'Mito', 'Hoechst'], size, dataset: 'test' });
  const wells = ['B02', 'B03', 'C05'];
  const metas = d.labels.map((_, i) => {
    const well = wells[i % wells.length];
    const x = 40 + 3 * i;
    const y = 50 + 2 * i;
    return {
      crop_id: `${plate}_${well}_s1_${x}_${y}`,
      plate,
      well,
      site: 1,
      field_id: `${plate}_${well}_s1`,
      x,
      y,
      area: 0,
      source_files: '',
      metadata: {},
    };
  });
  await w.append(d.crops.data, metas);
  await w.finish();
  return { path, crop_ids: metas.map((m) => m.crop_id), labels: d.labels, types: d.types };
}
