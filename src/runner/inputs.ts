/**
 * Checks of a run's inputs that need no computing, made before any work starts: a bad annotation file (a typo in a
 * label, a duplicate crop id, a bad split or source) is reported once, with its file, line and fix, and exits 2 —
 * instead of failing every cell of the run later. `qcbench validate` and `qcbench run` both call it.
 */
import { existsSync } from 'node:fs';
import { readAnnotations } from '../data/annotations.js';
import { QcbError } from '../errors.js';
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
      if (opts.missingFiles === 'skip') continue;
      throw new QcbError('QCB_FILE_NOT_FOUND', `annotation file of data set '${name}' not found: ${file}`, {
        file,
        key: `data.datasets.${name}.annotations`,
        fix: `check data.datasets.${name}.annotations in ${p.source.file} (annotations/README.md for the format)`,
      });
    }
    readAnnotations(file);
  }
}
