import { lookup } from '../../util/suggest.js';
import type { FieldSet } from '../types.js';
import { readBbbc021 } from './bbbc021.js';
import { readBbbc022 } from './bbbc022.js';
import type { DatasetReader, ReaderOptions } from './common.js';
import { readCsvDataset } from './csv.js';

export type { DatasetReader, ReaderOptions } from './common.js';

/** Dataset layouts by name (`--dataset`). */
export const DATASETS = {
  bbbc022: readBbbc022,
  bbbc021: readBbbc021,
  csv: readCsvDataset,
} satisfies Record<string, DatasetReader>;

export type DatasetName = keyof typeof DATASETS;

/** Reads fields with the named layout (unknown name → QCB_UNKNOWN_NAME with a suggestion). */
export function readDataset(name: string, opts: ReaderOptions): FieldSet {
  return lookup(DATASETS, name, 'dataset layout', { key: '--dataset' })(opts);
}
