/**
 * Checks of a run's inputs that need no computing, made before any work starts: a bad annotation file (a typo in a
 * label, a duplicate crop id, a bad split or source) is reported once, with its file, line and fix, and exits 2 —
 * instead of failing every cell of the run later. `qcbench validate` and `qcbench run` both call it.
 */
import { existsSync } from 'node:fs';
import { type Annotation, readAnnotations } from '../data/annotations.js';
import { readCropStoreTable } from '../data/store/crop-store.js';
import { asQcbError, QcbError } from '../errors.js';
import type { Protocol } from '../protocol/schema.js';
import { isSslMethod } from './catalog.js';

/** The data sets whose annotations a run of `p` reads: every evaluation's train and test set, and the SSL data set. */
export function datasetsInUse(p: Protocol): string[] {
  const names = new Set<string>();
  for (const ev of p.evaluations) {
    names.add(ev.train_set);
    names.add(ev.test_set);
  }
  const encoders = new Set([...p.encoders, ...p.evaluations.flatMap((ev) => ev.encoders ?? [])]);
  if ([...encoders].some((e) => isSslMethod(e))) names.add(p.data.pretrain_on);
  return [...names].filter((n) => Object.hasOwn(p.data.datasets, n));
}

/**
 * The annotation file of data set `name`.
 * @throws QcbError QCB_ANNOTATIONS when the protocol names none (every cell needs one)
 */
export function annotationsFileOf(p: Protocol, name: string): string {
  const file = p.data.datasets[name].annotations;
  if (!file)
    throw new QcbError('QCB_ANNOTATIONS', `data set '${name}' has no annotations file`, {
      file: p.source.file,
      key: `data.datasets.${name}.annotations`,
      fix: 'annotate crops in the format of annotations/README.md and name the file here',
    });
  return file;
}

/**
 * Reads and checks the annotation file of every data set a run of `p` uses (`readAnnotations`: header, labels,
 * artefact types, splits, sources, duplicate crop ids). With `missingFiles: 'skip'` (validate: data may live
 * elsewhere until the run) a file that does not exist is left to the caller's warning; with `'error'` (run) it is an
 * error too.
 * @throws QcbError QCB_ANNOTATIONS naming the file, line, column and fix; QCB_FILE_NOT_FOUND for a missing file
 */
export function checkAnnotations(p: Protocol, opts: { missingFiles: 'error' | 'skip' }): void {
  for (const name of datasetsInUse(p)) {
    const file = annotationsFileOf(p, name);
    if (!existsSync(file)) {
      if (p.data.datasets[name].format === 'store') checkStoreDataset(p, name);
      if (opts.missingFiles === 'skip') continue;
      throw new QcbError('QCB_FILE_NOT_FOUND', `annotation file of data set '${name}' not found: ${file}`, {
        file,
        key: `data.datasets.${name}.annotations`,
        fix: `check data.datasets.${name}.annotations in ${p.source.file} (annotations/README.md for the format)`,
      });
    }
    const annotations = readAnnotations(file);
    if (p.data.datasets[name].format === 'store') checkStoreDataset(p, name, file, annotations);
  }
}

/**
 * Checks a `format: store` data set: its path is a complete crop store of the protocol's crop size, and every crop
 * its annotation file names is in it (exactly, as the runner looks crops up by id).
 * @throws QcbError QCB_STORE naming the store and the protocol key (not a store, another crop size);
 *   QCB_ANNOTATIONS naming the annotation file (crop ids the store lacks)
 */
export function checkStoreDataset(p: Protocol, name: string, file?: string, annotations: Annotation[] = []): void {
  const path = p.data.datasets[name].path!;
  const key = `data.datasets.${name}.path`;
  let table: ReturnType<typeof readCropStoreTable>;
  try {
    table = readCropStoreTable(path);
  } catch (e) {
    const q = asQcbError(e);
    throw new QcbError('QCB_STORE', `data set '${name}': ${q.message}`, {
      file: path,
      key,
      value: path,
      fix: `point ${key} in ${p.source.file} at a folder made by \`qcbench data crops --out DIR\` (${q.context.fix ?? 'recreate it'})`,
    });
  }
  if (table.info.size !== p.data.crop_size)
    throw new QcbError(
      'QCB_STORE',
      `data set '${name}': the store's crops are ${table.info.size}×${table.info.size} but data.crop_size is ${p.data.crop_size}`,
      {
        file: path,
        key: 'data.crop_size',
        value: p.data.crop_size,
        allowed: String(table.info.size),
        fix: `set data.crop_size: ${table.info.size} in ${p.source.file}, or recut the store with --size ${p.data.crop_size}`,
      },
    );
  const have = new Set(table.meta.map((m) => m.crop_id));
  const missing = annotations.map((a) => a.crop_id).filter((id) => !have.has(id));
  if (missing.length)
    throw new QcbError(
      'QCB_ANNOTATIONS',
      `${missing.length} annotated crop(s) are not in the crop store of '${name}'`,
      {
        file,
        key: 'crop_id',
        value: missing.slice(0, 3),
        fix: `annotate crops of ${path} (ids as in its crops.csv), or point ${key} at the store the annotations were made on`,
      },
    );
}
