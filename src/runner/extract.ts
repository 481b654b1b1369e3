import { FIELD_MEASURES_MODULE } from '../metrics/field-quality.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { extractCrops, normalisationOf } from '../data/crops.js';
import { readDataset } from '../data/datasets/index.js';
import { readCellProfilerCentres } from '../data/nuclei/cellprofiler.js';
import { QcbError } from '../errors.js';
import type { DatasetConfig } from '../protocol/schema.js';
import type { StageContext } from './stage-types.js';

/** The on-disk layout a protocol data set is read with (a synthetic screen is written in a BBBC layout). */
export function layoutOf(ds: DatasetConfig): 'bbbc022' | 'bbbc021' | 'csv' {
  if (ds.format === 'synthetic') return ds.synth.domain === 'u2os' ? 'bbbc022' : 'bbbc021';
  if (ds.format === 'store')
    throw new QcbError('QCB_INTERNAL', 'a crop store data set has no field layout: it is used as it is', {
      fix: 'please report this',
    });
  return ds.format;
}

/**
 * The crop stage of one data set: its fields (BBBC022 / BBBC021 tables, a generic CSV, or a generated screen in a
 * BBBC layout), nuclei centres (a CellProfiler table when given — a synthetic screen writes its true centres as one —
 * else segmentation of the DNA channel), and the Zarr crop store written to `out`.
 */
export async function extractDatasetCrops(
  ctx: StageContext,
  name: string,
  ds: DatasetConfig,
  out: string,
): Promise<void> {
  if (!ds.root || !existsSync(ds.root))
    throw new QcbError('QCB_FILE_NOT_FOUND', `data set '${name}': root folder not found: ${ds.root}`, {
      file: ctx.p.source.file,
      key: `data.datasets.${name}.root`,
      value: ds.root,
      fix: 'set QCBENCH_DATA or the root to where the data set is unpacked (README: Data and weights)',
    });
  const fieldSet = readDataset(layoutOf(ds), {
    root: ds.root,
    ...(ds.image_table ? { tables: [join(ds.root, ds.image_table)] } : {}),
    ...(ds.channels ? { channels: ds.channels } : {}),
    ...((ds.crops?.dna_channel ?? ds.dna_channel) ? { dnaChannel: ds.crops?.dna_channel ?? ds.dna_channel } : {}),
  });
  for (const s of fieldSet.skipped)
    ctx.log.warn(`field left out: ${s.field_id}: ${s.message}`, { file: s.file, code: s.code });
  const centresFile = ds.centres ?? (ds.format === 'synthetic' ? join(ds.root, 'nuclei.csv') : undefined);
  const centres = centresFile ? readCellProfilerCentres(centresFile, fieldSet.fields).centres : undefined;
  const summary = await extractCrops({
    fieldSet,
    out,
    size: ctx.p.data.crop_size,
    border: ds.crops.border,
    normalisation: normalisationOf(ds.crops.normalise),
    segment: { diameter: ds.crops.diameter },
    centres,
    workers: Math.min(2, Math.max(0, ctx.threads)),
    fieldMeasures: FIELD_MEASURES_MODULE,
    log: ctx.log,
  });
  ctx.log.info(`crop store of ${name}: ${summary.crops} crops from ${summary.fields} fields`, {
    fields_per_second: Number(summary.fieldsPerSecond.toFixed(1)),
    skipped: summary.skipped.length,
  });
}
