/**
 * `qcbench data crops`: fields (BBBC022 / BBBC021 / generic CSV) → nuclei → single-cell crops in a Zarr crop store.
 */
import { FIELD_MEASURES_MODULE } from '../metrics/field-quality.js';
import {
  type BorderPolicy,
  extractCrops,
  mergeShards,
  type Normalisation,
  normalisationOf,
  PLATE_WINDOW_SAMPLE,
} from '../data/crops.js';
import { DATASETS, readDataset } from '../data/datasets/index.js';
import { readCellProfilerCentres } from '../data/nuclei/cellprofiler.js';
import { type Compression, checkStorePath } from '../data/store/crop-store.js';
import { QcbError } from '../errors.js';
import { parseShard } from '../util/shard.js';
import { lookup } from '../util/suggest.js';
import { intArg, parseCommandArgs } from './args.js';
import type { CliContext, Command } from './types.js';

const usage = `qcbench data crops --dataset bbbc022|bbbc021|csv --root DIR --out STORE [options]

Reads the fields of a screen, finds nuclei on the DNA channel (or takes centres from a CellProfiler object table),
cuts SIZE×SIZE crops around them, normalises each channel to uint8 and writes a Zarr crop store:
STORE/crops (uint8 [N, C, SIZE, SIZE], chunks of 64 crops), STORE/crops.csv (one row per crop, crop_id =
<plate>_<well>_s<site>_<x>_<y>), STORE/qcbench.json, STORE/skipped.csv, and STORE/fields.csv: every field with
its outcome (ok, no_nuclei, no_crops, unreadable) and CellProfiler's MeasureImageQuality measures per channel
(ImageQuality_<Measure>_<channel>, on every 8th pixel of the raw field; the spectrum on the DNA channel's central
256×256), which qcbench qc apply judges fields by.

Layouts (--dataset):
  bbbc022  per-plate image tables (Image_FileName_Orig<ch>, Image_PathName_Orig<ch>, Image_Metadata_*);
           channels Hoechst, ER, Syto, Ph_golgi, Mito; default Ph_golgi,Mito,Hoechst (the paper's RGB composite)
  bbbc021  BBBC021_v1_image.csv (+ BBBC021_v1_moa.csv); channels DAPI, Tubulin, Actin; default Actin,Tubulin,DAPI
  csv      fields.csv: field_id, path_<channel>… [, plate, well, site, other metadata]; any channels
Image paths in tables are resolved against --root (also <root>/<plate folder>/<file> and <root>/<file>).

Options:
  --dataset NAME          table layout (required)
  --root DIR              folder of the tables and images (required)
  --out STORE             output store (required)
  --table FILE            image table(s) to read (repeatable; default: found under --root)
  --channels A,B,C        channels in crop order (default: the layout's)
  --dna-channel NAME      nuclear stain to segment (default Hoechst / DAPI; csv: a channel named dna/dapi/hoechst)
  --size N                crop side in pixels (default 128)
  --border P              crops leaving the field: skip (default) | pad (zeros) | reflect
  --normalise SPEC        intensity window per channel, mapped to 0…255 (clipped):
                          plate[:LO,HI]  (default plate:0.1,99.9) one window per plate: the median over
                                         ${PLATE_WINDOW_SAMPLE} fields of the plate (seeded sample) of their LO/HI percentiles,
                                         recorded in qcbench.json; a dim or saturated field stays so
                          field[:LO,HI]  each field's own percentiles (the paper's stretch; every field looks alike;
                                         'percentile' is the same)
                          fixed:CH=MIN:MAX,CH=MIN:MAX,…  the same given window for every field
  --diameter PX           typical nucleus diameter for segmentation (default 30)
  --centres FILE          nucleus centres from a CellProfiler object table (Location_Center_X/Y + field keys)
  --shard i/n             process shard i of n (0-based) into STORE/parts/; the last shard merges into STORE
  --merge N               only merge the N finished shards under STORE/parts into STORE
  --strict                stop at the first bad field (default: skip it and list it in skipped.csv)
  --workers N             worker threads (default 2; 0 = in-process)
  --batch N               fields per checkpoint (default 16)
  --compression C         none (default) | gzip
  --no-resume             refuse to continue an interrupted run (default: continue it)
  --overwrite             replace an existing store
  --json                  print the summary as JSON on stdout

An interrupted run (Ctrl-C, a killed job) continues from its last checkpoint when rerun with the same options.
Exit codes: 0 ok (skipped fields are listed, not fatal), 1 run failure, 2 bad input.`;

/** `--shard i/n`, 0-based as everywhere in qcbench (`qcbench run --shard`), → the extractor's 1-based index. */
function parseShardOption(v: string): { index: number; count: number } {
  const s = parseShard(v, '--shard');
  return { index: s.index + 1, count: s.count };
}

function parseNormalise(v: string, channels: string[] | undefined): Normalisation {
  const pm = /^(plate|field|percentile)(?::([\d.]+),([\d.]+))?$/.exec(v);
  if (pm) {
    const lo = pm[2] === undefined ? 0.1 : Number(pm[2]);
    const hi = pm[3] === undefined ? 99.9 : Number(pm[3]);
    if (!(lo >= 0 && hi <= 100 && lo < hi)) {
      throw new QcbError('QCB_USAGE', `bad percentiles in --normalise '${v}'`, {
        key: '--normalise',
        value: v,
        allowed: '0 ≤ LO < HI ≤ 100',
        fix: 'e.g. --normalise plate:0.1,99.9',
      });
    }
    return normalisationOf(pm[1] === 'plate' ? 'plate' : 'field', lo, hi);
  }
  if (v.startsWith('fixed:')) {
    const ranges: Record<string, { min: number; max: number }> = {};
    for (const part of v.slice(6).split(',')) {
      const m = /^([^=]+)=(-?[\d.]+):(-?[\d.]+)$/.exec(part.trim());
      if (!m || !(Number(m[3]) > Number(m[2]))) {
        throw new QcbError('QCB_USAGE', `bad range '${part}' in --normalise`, {
          key: '--normalise',
          value: v,
          allowed: 'fixed:CH=MIN:MAX,… with MIN < MAX',
          fix: 'e.g. --normalise fixed:Hoechst=100:4000,Mito=100:3000,Ph_golgi=100:3500',
        });
      }
      ranges[m[1]] = { min: Number(m[2]), max: Number(m[3]) };
    }
    for (const c of channels ?? []) {
      if (!ranges[c])
        throw new QcbError('QCB_USAGE', `--normalise fixed: has no range for channel ${c}`, {
          key: '--normalise',
          value: v,
          fix: `add ${c}=MIN:MAX`,
        });
    }
    return { kind: 'fixed', ranges };
  }
  throw new QcbError('QCB_USAGE', `bad --normalise '${v}'`, {
    key: '--normalise',
    value: v,
    allowed: 'plate[:LO,HI] | field[:LO,HI] | fixed:CH=MIN:MAX,…',
    fix: 'e.g. --normalise plate (one window per plate) or --normalise field (per-field percentiles)',
  });
}

function parse(args: string[]) {
  return parseCommandArgs(
    {
      args,
      allowPositionals: false,
      options: {
        dataset: { type: 'string' },
        root: { type: 'string' },
        out: { type: 'string' },
        table: { type: 'string', multiple: true },
        channels: { type: 'string' },
        'dna-channel': { type: 'string' },
        size: { type: 'string' },
        border: { type: 'string' },
        normalise: { type: 'string' },
        diameter: { type: 'string' },
        centres: { type: 'string' },
        shard: { type: 'string' },
        merge: { type: 'string' },
        strict: { type: 'boolean' },
        workers: { type: 'string' },
        batch: { type: 'string' },
        compression: { type: 'string' },
        'no-resume': { type: 'boolean' },
        overwrite: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    },
    'data crops',
  ).values;
}

export const command: Command = {
  name: 'crops',
  summary: 'cut single-cell crops around nuclei into a Zarr crop store (BBBC022 / BBBC021 / CSV)',
  usage,
  async run(args: string[], ctx: CliContext): Promise<number> {
    const values = parse(args);
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    if (!values.out)
      throw new QcbError('QCB_USAGE', 'missing --out STORE', {
        key: '--out',
        fix: 'name the crop store to write, e.g. --out crops/bbbc022.zarr',
      });
    checkStorePath(values.out, '--out'); // before any work: a plain file there is bad input, not a crash at the end
    const mergeN = intArg(values.merge, '--merge', 1);
    if (mergeN !== undefined) {
      await mergeShards(values.out, mergeN, { log: ctx.log });
      if (values.json) process.stdout.write(`${JSON.stringify({ store: values.out, merged: true })}\n`);
      return 0;
    }
    if (!values.dataset)
      throw new QcbError('QCB_USAGE', 'missing --dataset', {
        key: '--dataset',
        allowed: Object.keys(DATASETS).join(', '),
        fix: 'e.g. --dataset bbbc022',
      });
    lookup(DATASETS, values.dataset, 'dataset layout', { key: '--dataset' });
    if (!values.root)
      throw new QcbError('QCB_USAGE', 'missing --root DIR', {
        key: '--root',
        fix: 'point --root at the folder holding the image tables and plate folders',
      });
    const border = (values.border ?? 'skip') as BorderPolicy;
    if (!['skip', 'pad', 'reflect'].includes(border)) {
      throw new QcbError('QCB_USAGE', `bad --border '${values.border}'`, {
        key: '--border',
        value: values.border,
        allowed: 'skip, pad, reflect',
        fix: 'e.g. --border skip',
      });
    }
    const compression = (values.compression ?? 'none') as Compression;
    if (!['none', 'gzip'].includes(compression)) {
      throw new QcbError('QCB_USAGE', `bad --compression '${values.compression}'`, {
        key: '--compression',
        value: values.compression,
        allowed: 'none, gzip',
        fix: 'e.g. --compression gzip',
      });
    }
    const channels = values.channels
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const strict = Boolean(values.strict);
    const fieldSet = readDataset(values.dataset, {
      root: values.root,
      tables: values.table,
      channels,
      dnaChannel: values['dna-channel'],
      strict,
    });
    if (fieldSet.fields.length === 0) {
      throw new QcbError(
        'QCB_CHANNEL_MISSING',
        `no usable field in ${fieldSet.root} (${fieldSet.skipped.length} skipped)`,
        {
          file: fieldSet.skipped[0]?.file ?? fieldSet.root,
          fix: 'check --root and --channels; the first problem is shown above',
        },
      );
    }
    for (const s of fieldSet.skipped.slice(0, 5))
      ctx.log.warn('field left out', { field: s.field_id || undefined, file: s.file, row: s.row, code: s.code });
    if (fieldSet.skipped.length > 5)
      ctx.log.warn(`… ${fieldSet.skipped.length - 5} more fields left out (see skipped.csv)`);
    let centres: Map<string, { x: number; y: number; area: number }[]> | undefined;
    if (values.centres) {
      const c = readCellProfilerCentres(values.centres, fieldSet.fields);
      centres = c.centres;
      ctx.log.info('nucleus centres imported', {
        file: values.centres,
        objects: c.rows - c.unmatched,
        fields: c.centres.size,
        unmatched: c.unmatched,
      });
    }
    const diameter = values.diameter === undefined ? undefined : Number(values.diameter);
    if (diameter !== undefined && !(diameter >= 4)) {
      throw new QcbError('QCB_USAGE', `bad --diameter '${values.diameter}'`, {
        key: '--diameter',
        value: values.diameter,
        allowed: 'a number of pixels ≥ 4',
        fix: 'e.g. --diameter 30',
      });
    }
    const ac = new AbortController();
    const onSigint = () => {
      if (ac.signal.aborted) process.exit(130);
      ctx.log.warn('interrupt: stopping after the current batch (Ctrl-C again to quit now)');
      ac.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      const sum = await extractCrops({
        fieldSet,
        out: values.out,
        size: intArg(values.size, '--size', 8),
        border,
        normalisation: values.normalise ? parseNormalise(values.normalise, fieldSet.channels) : undefined,
        segment: diameter === undefined ? {} : { diameter },
        centres,
        shard: values.shard ? parseShardOption(values.shard) : undefined,
        strict,
        workers: intArg(values.workers, '--workers', 0),
        batchFields: intArg(values.batch, '--batch', 1),
        compression,
        resume: !values['no-resume'],
        overwrite: Boolean(values.overwrite),
        fieldMeasures: FIELD_MEASURES_MODULE,
        log: ctx.log,
        signal: ac.signal,
      });
      if (values.json) process.stdout.write(`${JSON.stringify({ ...sum, skipped: sum.skipped.length }, null, 2)}\n`);
      else {
        process.stdout.write(
          `${sum.interrupted ? 'interrupted' : 'done'}: ${sum.crops} crops from ${sum.fields} fields → ${sum.store}` +
            `${sum.skipped.length ? ` (${sum.skipped.length} fields skipped, see skipped.csv)` : ''}, ${sum.fieldsPerSecond.toFixed(1)} fields/s\n`,
        );
      }
      return sum.interrupted ? 1 : 0;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};
