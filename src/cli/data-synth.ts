/**
 * `qcbench data synth --domain u2os|mcf7 --out DIR [--plates N --wells N --sites N --seed N --width W --height H
 * --abnormal-fraction F --annotations FILE --json]`: writes a synthetic HCS screen (the embedded default data set)
 * in the BBBC022 or BBBC021 layout, with nuclei.csv and ground_truth.csv; optionally samples an annotation file
 * from its ground truth.
 */

import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeAnnotationsFromGroundTruth, writeAnnotations } from '../data/annotations.js';
import { annotationComments, DEFAULT_ANNOTATION_SAMPLING } from '../data/synth/default-annotations.js';
import { DOMAINS, type SynthDomain } from '../data/synth/domains.js';
import { QUICK_SCREENS, synthesizeScreen } from '../data/synth/screen.js';
import { QcbError } from '../errors.js';
import { lookup } from '../util/suggest.js';
import type { Command } from './types.js';

const q = QUICK_SCREENS;
const usage = `qcbench data synth --domain u2os|mcf7 --out DIR [options]

Generates a synthetic high-content screen: 16-bit TIFF fields plus metadata tables in the real layouts, so the
BBBC readers and the crop pipeline run on it unchanged.
  u2os  BBBC022-like: U2OS Cell Painting, 5 channels (Hoechst, ER, Syto, Ph_golgi, Mito), 12-bit values,
        per-plate tables <plate>_image.csv, files <plate>/IXMtest_<well>_s<site>_w<k><UUID>.tif
  mcf7  BBBC021-like: MCF7, DAPI / Tubulin / Actin, 12-bit data shifted into 16 bits, BBBC021_v1_image.csv and
        BBBC021_v1_moa.csv, files <plate>/<well>_s<site>_w<1|2|4><UUID>.tif
Also writes DIR/nuclei.csv (true nucleus centres and empty positions, CellProfiler columns, for --centres),
DIR/ground_truth.csv (crop_id, plate, well, site, x, y, label, artefact_type, kind) and DIR/synth.json (manifest,
written last). Re-running with the same options is a no-op; other options into the same DIR are refused.

Options (defaults: the quick screen):
  --domain D             u2os or mcf7 (required)
  --out DIR              output folder (required)
  --plates N             plates (default ${q.u2os.plates})
  --wells N              wells per plate, at most 96 (default ${q.u2os.wells})
  --sites N              fields per well (default u2os ${q.u2os.sites}, mcf7 ${q.mcf7.sites})
  --seed N               seed (default ${q.u2os.seed}); the same seed gives byte-identical files
  --width W, --height H  field size in pixels (default u2os ${q.u2os.width}×${q.u2os.height}, mcf7 ${q.mcf7.width}×${q.mcf7.height})
  --abnormal-fraction F  mean fraction of abnormal crops (default ${q.u2os.abnormalFraction}; wells vary 0.25×–1.75×)
  --crop-size N          crop side the ground truth is judged for (default ${q.u2os.cropSize})
  --annotations FILE     also sample an annotation file from the ground truth (u2os: 240+240, 350 train / 130
                         test; mcf7: 100+100, all test; see annotations/README.md)
  --annotation-seed N    seed of that sampling (default 1)
  --workers N            worker threads rendering fields (default: cores, at most 4); output does not depend on it
  --json                 print the summary as JSON on stdout

Exit codes: 0 ok, 2 bad arguments or an output folder holding another screen.`;

function parse(args: string[]) {
  return parseArgs({
    args,
    options: {
      domain: { type: 'string' },
      out: { type: 'string' },
      plates: { type: 'string' },
      wells: { type: 'string' },
      sites: { type: 'string' },
      seed: { type: 'string' },
      width: { type: 'string' },
      height: { type: 'string' },
      'abnormal-fraction': { type: 'string' },
      'crop-size': { type: 'string' },
      annotations: { type: 'string' },
      'annotation-seed': { type: 'string' },
      workers: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
}

export const command: Command = {
  name: 'synth',
  summary: 'generate a synthetic HCS screen (BBBC022 / BBBC021 layout) with per-crop ground truth',
  usage,
  async run(args, ctx) {
    let parsed: ReturnType<typeof parse>;
    try {
      parsed = parse(args);
    } catch (e) {
      throw new QcbError('QCB_USAGE', (e as Error).message, { fix: 'see qcbench data synth --help', cause: e });
    }
    const values = parsed.values;
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    if (!values.domain || !values.out) {
      const key = !values.domain ? '--domain' : '--out';
      throw new QcbError('QCB_USAGE', `missing ${key}`, {
        key,
        fix: 'qcbench data synth --domain u2os|mcf7 --out DIR',
      });
    }
    lookup(DOMAINS, values.domain, 'synthetic domain', { key: '--domain' });
    const domain = values.domain as SynthDomain;
    const num = (key: string, v: string | undefined, integer = true): number | undefined => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
        throw new QcbError('QCB_USAGE', `--${key} must be ${integer ? 'an integer' : 'a number'}, got '${v}'`, {
          key: `--${key}`,
          value: v,
          allowed: integer ? 'an integer' : 'a number',
          fix: `pass --${key} with a number, e.g. --${key} ${integer ? 4 : 0.25}`,
        });
      }
      return n;
    };
    const r = await synthesizeScreen({
      domain,
      out: values.out,
      plates: num('plates', values.plates),
      wells: num('wells', values.wells),
      sites: num('sites', values.sites),
      seed: num('seed', values.seed),
      width: num('width', values.width),
      height: num('height', values.height),
      abnormalFraction: num('abnormal-fraction', values['abnormal-fraction'], false),
      cropSize: num('crop-size', values['crop-size']),
      workers: num('workers', values.workers),
    });
    let annotations: string | undefined;
    if (values.annotations) {
      const sampling = {
        ...DEFAULT_ANNOTATION_SAMPLING[domain],
        seed: num('annotation-seed', values['annotation-seed']) ?? 1,
      };
      const rows = makeAnnotationsFromGroundTruth(join(r.out, 'ground_truth.csv'), sampling);
      writeAnnotations(values.annotations, rows, annotationComments(r.options, sampling));
      annotations = values.annotations;
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ...r, annotations }, null, 2)}\n`);
    } else {
      ctx.log.info(`${r.reused ? 'already complete' : 'wrote'} ${r.domain} screen`, {
        out: r.out,
        fields: r.fields,
        cells: r.cells,
        empties: r.empties,
        abnormal: r.abnormal,
        fieldsPerSecond: r.reused ? undefined : r.fieldsPerSecond,
      });
      if (annotations) ctx.log.info('wrote annotations', { file: annotations });
    }
    return 0;
  },
};
