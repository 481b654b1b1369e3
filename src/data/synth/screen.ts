/**
 * `synthesizeScreen`: the embedded default data set. Writes a whole synthetic HCS screen (plates × wells × sites of
 * 16-bit TIFF fields) in the BBBC022 (`u2os`) or BBBC021 (`mcf7`) layout, plus
 * - `nuclei.csv`: a CellProfiler-style object table of the true nucleus centres and the empty positions
 *   (`ImageNumber, ObjectNumber, Metadata_Plate, Metadata_Well, Metadata_Site, Location_Center_X,
 *   Location_Center_Y, AreaShape_Area`), so crops can be cut where CellProfiler would have put them;
 * - `ground_truth.csv`: one row per object (`crop_id, plate, well, site, x, y, label, artefact_type, kind`);
 * - `synth.json`: the manifest, written last and atomically. A re-run with the same options finds it and does
 *   nothing; a run with other options into the same folder is refused.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { QcbError } from '../../errors.js';
import { contentHash, writeFileAtomic, writeJsonAtomic } from '../../util/fs.js';
import { logger } from '../../util/log.js';
import { lookup } from '../../util/suggest.js';
import { encodeTiff16 } from '../io/tiff.js';
import { cropId } from '../types.js';
import { FIELD_ARTEFACTS, type FieldArtefact } from './artefacts.js';
import { DOMAINS, type SynthDomain } from './domains.js';
import { type FieldSpec, type RenderedField, renderField, type SynthObject } from './field.js';
import type { FieldJob } from './field-worker.js';
import {
  BBBC021_HEADER,
  BBBC022_CHANNEL_COLUMNS,
  BBBC022_HEADER,
  plateName,
  TREATMENTS,
  uuid,
  wellNames,
} from './layout.js';
import { WorkerPool } from './pool.js';
import { csvLine } from '../../util/csv.js';
import { deriveSeed, Rng } from '../../util/random.js';

/** Bump when the generator's output changes for the same options (invalidates manifests and annotations). */
export const SYNTH_VERSION = 4;

export interface SynthOptions {
  domain: SynthDomain;
  /** Output folder (created). */
  out: string;
  /** Plates (default: the quick screen's, see {@link QUICK_SCREENS}). */
  plates?: number;
  /** Wells per plate (at most 96). */
  wells?: number;
  /** Sites (fields) per well. */
  sites?: number;
  /** Seed of everything random (default 1). */
  seed?: number;
  /** Field width in pixels (default: the domain's, 696 for u2os and 1280 for mcf7). */
  width?: number;
  /** Field height in pixels (default 520 / 1024). */
  height?: number;
  /** Mean fraction of abnormal crops over the screen (default 0.25); wells vary from 0.25× to 1.75× of it. */
  abnormalFraction?: number;
  /** Crop side the ground truth is judged for (default 128, the paper's). */
  cropSize?: number;
  /** Worker threads rendering fields (default: the available cores, at most 4; 1 renders on the main thread). */
  workers?: number;
}

/** The resolved options, as recorded in the manifest. */
export interface ResolvedSynthOptions {
  domain: SynthDomain;
  plates: number;
  wells: number;
  sites: number;
  seed: number;
  width: number;
  height: number;
  abnormalFraction: number;
  cropSize: number;
}

export interface WellSummary {
  plate: string;
  well: string;
  /** Abnormal fraction the well was generated for. */
  target: number;
  /** Fraction of the well's objects that the ground truth marks abnormal. */
  abnormalFraction: number;
  objects: number;
  densityMultiplier: number;
}

export interface SynthResult {
  domain: SynthDomain;
  /** Absolute output folder. */
  out: string;
  options: ResolvedSynthOptions;
  fields: number;
  /** Nuclei (cells whose centre lies in a field). */
  cells: number;
  /** Empty positions (abnormal, type `empty`). */
  empties: number;
  abnormal: number;
  /** Every file written, relative to `out` (images, tables, nuclei.csv, ground_truth.csv). */
  files: string[];
  /** The image tables (BBBC022 per-plate tables or BBBC021_v1_image.csv), relative to `out`. */
  tables: string[];
  wells: WellSummary[];
  /** Count of abnormal objects per artefact type. */
  artefacts: Record<string, number>;
  fieldArtefacts: Record<string, number>;
  seconds: number;
  fieldsPerSecond: number;
  /** True when an existing manifest made this run a no-op. */
  reused: boolean;
  version: number;
}

/**
 * The quick protocol's screens (what `synthesizeScreen` generates when only domain and out are given, and what the
 * annotation files in `annotations/` were made from): u2os 1 plate × 8 wells × 4 sites of 696×520; mcf7 1 plate
 * × 8 wells × 2 sites of 1280×1024. Seed 1, abnormal fraction 0.25, crops of 128.
 */
export const QUICK_SCREENS = {
  u2os: {
    domain: 'u2os',
    plates: 1,
    wells: 8,
    sites: 4,
    seed: 1,
    width: 696,
    height: 520,
    abnormalFraction: 0.25,
    cropSize: 128,
  },
  mcf7: {
    domain: 'mcf7',
    plates: 1,
    wells: 8,
    sites: 2,
    seed: 1,
    width: 1280,
    height: 1024,
    abnormalFraction: 0.25,
    cropSize: 128,
  },
} satisfies Record<SynthDomain, ResolvedSynthOptions>;

/** Fills defaults and validates (QCB_USAGE with the option name and the allowed range). */
export function resolveSynthOptions(opts: SynthOptions): ResolvedSynthOptions {
  lookup(DOMAINS, opts.domain, 'synthetic domain', { key: 'domain' });
  const q = QUICK_SCREENS[opts.domain];
  const r: ResolvedSynthOptions = {
    domain: opts.domain,
    plates: opts.plates ?? q.plates,
    wells: opts.wells ?? q.wells,
    sites: opts.sites ?? q.sites,
    seed: opts.seed ?? q.seed,
    width: opts.width ?? q.width,
    height: opts.height ?? q.height,
    abnormalFraction: opts.abnormalFraction ?? q.abnormalFraction,
    cropSize: opts.cropSize ?? q.cropSize,
  };
  const int = (key: keyof ResolvedSynthOptions, lo: number, hi: number) => {
    const v = r[key] as number;
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new QcbError('QCB_USAGE', `synthetic screen option ${key} must be an integer in [${lo}, ${hi}]`, {
        key,
        value: v,
        allowed: `an integer from ${lo} to ${hi}`,
        fix: `pass --${key} with a value from ${lo} to ${hi}`,
      });
    }
  };
  int('plates', 1, 1000);
  int('wells', 1, 96);
  int('sites', 1, 100);
  int('seed', 0, 2 ** 32 - 1);
  int('width', 64, 8192);
  int('height', 64, 8192);
  int('cropSize', 8, 1024);
  if (!(r.abnormalFraction >= 0 && r.abnormalFraction <= 0.9)) {
    throw new QcbError('QCB_USAGE', 'synthetic screen option abnormalFraction must be in [0, 0.9]', {
      key: 'abnormalFraction',
      value: r.abnormalFraction,
      allowed: 'a number from 0 to 0.9',
      fix: 'pass a fraction such as 0.25',
    });
  }
  return r;
}

/** One field of a screen, in generation order. */
export interface PlannedField {
  plateIndex: number;
  plate: string;
  wellIndex: number;
  well: string;
  site: number;
  imageNumber: number;
  seed: number;
  target: number;
  densityMultiplier: number;
  /** Whole-field artefact planned for this field ('none' for most). */
  fieldArtefact: FieldArtefact | 'none';
  /** Abnormal fraction asked of the cell-level artefacts (the target less the share of whole-field failures). */
  cellTarget: number;
}

/**
 * The fields of a screen with their seeds, per-well targets and planned whole-field artefacts (shared by the
 * generator and screenGroundTruth; exported so tests and reports can compare per-well QC results with the plan).
 */
export function planScreen(o: ResolvedSynthOptions): {
  fields: PlannedField[];
  wells: Omit<WellSummary, 'abnormalFraction' | 'objects'>[];
} {
  const profile = DOMAINS[o.domain];
  const wells = wellNames(o.wells);
  const fields: PlannedField[] = [];
  const summaries: Omit<WellSummary, 'abnormalFraction' | 'objects'>[] = [];
  let imageNumber = 0;
  for (let pi = 0; pi < o.plates; pi++) {
    const plate = plateName(profile.layout, pi);
    const first = fields.length;
    // Per-well abnormal fraction: multipliers spread evenly over [0.25, 1.75] and shuffled, so some wells are
    // clean and some bad, and per-well QC fractions can be checked against a known truth.
    const wellRng = new Rng(deriveSeed(o.seed, 'wells', plate));
    const mults = wells.map((_, i) => (wells.length === 1 ? 1 : 0.25 + (1.5 * i) / (wells.length - 1)));
    wellRng.shuffle(mults);
    for (let wi = 0; wi < wells.length; wi++) {
      const well = wells[wi];
      const target = Math.min(0.95, o.abnormalFraction * mults[wi]);
      const densityMultiplier = wellRng.uniform(profile.wellDensity[0], profile.wellDensity[1]);
      summaries.push({ plate, well, target: round4(target), densityMultiplier: round4(densityMultiplier) });
      for (let site = 1; site <= o.sites; site++) {
        imageNumber++;
        const seed = deriveSeed(o.seed, 'field', o.domain, plate, well, site);
        fields.push({
          plateIndex: pi,
          plate,
          wellIndex: wi,
          well,
          site,
          imageNumber,
          seed,
          target,
          densityMultiplier,
          fieldArtefact: 'none',
          cellTarget: target,
        });
      }
    }
    planFieldArtefacts(fields.slice(first), o, new Rng(deriveSeed(o.seed, 'field-artefacts', plate)));
  }
  return { fields, wells: summaries };
}

/**
 * Whole-field failures (defocus, heavy noise, over-exposure, haze) are planned per plate rather than drawn per
 * field, so that every type occurs even in a small screen: about half the abnormal fraction of the fields (at most
 * 30%), types in a shuffled cycle, fields picked with probability proportional to their well's target squared
 * (bad wells fail as a whole more often). The other fields of a well then get fewer cell-level artefacts, so the
 * well still meets its target where it can.
 */
function planFieldArtefacts(fields: PlannedField[], o: ResolvedSynthOptions, rng: Rng): void {
  const k = Math.round(fields.length * Math.min(0.3, 0.5 * o.abnormalFraction));
  const types = rng.shuffle([...FIELD_ARTEFACTS]);
  const pool = [...fields];
  const weight = (f: PlannedField) => f.target * f.target;
  for (let i = 0; i < k && pool.length; i++) {
    const total = pool.reduce((sum, f) => sum + weight(f), 0);
    if (total <= 0) break;
    let u = rng.next() * total;
    let j = 0;
    while (j < pool.length - 1 && u >= weight(pool[j])) u -= weight(pool[j++]);
    pool[j].fieldArtefact = types[i % types.length];
    pool.splice(j, 1);
  }
  const byWell = new Map<string, PlannedField[]>();
  for (const f of fields) byWell.set(f.well, [...(byWell.get(f.well) ?? []), f]);
  for (const ws of byWell.values()) {
    const share = ws.filter((f) => f.fieldArtefact !== 'none').length / ws.length;
    for (const f of ws) f.cellTarget = share >= 1 ? f.target : Math.max(0, (f.target - share) / (1 - share));
  }
}

const GT_HEADER = csvLine(['crop_id', 'plate', 'well', 'site', 'x', 'y', 'label', 'artefact_type', 'kind']);

function gtLine(f: PlannedField, obj: SynthObject): string {
  return csvLine([
    cropId(f.plate, f.well, f.site, obj.x, obj.y),
    f.plate,
    f.well,
    f.site,
    obj.x,
    obj.y,
    obj.label,
    obj.artefact,
    obj.kind,
  ]);
}

/**
 * The text of the `ground_truth.csv` that {@link synthesizeScreen} writes for these options, computed without
 * drawing a pixel (the layout and artefacts come from their own random stream): milliseconds instead of seconds.
 */
export function screenGroundTruth(opts: Omit<SynthOptions, 'out'>): string {
  const o = resolveSynthOptions({ ...opts, out: '' });
  const profile = DOMAINS[o.domain];
  const lines = [GT_HEADER];
  for (const f of planScreen(o).fields) {
    const field = renderField({
      profile,
      width: o.width,
      height: o.height,
      seed: f.seed,
      densityMultiplier: f.densityMultiplier,
      abnormalFraction: f.cellTarget,
      cropSize: o.cropSize,
      fieldArtefact: f.fieldArtefact,
      pixels: false,
    });
    for (const obj of field.objects) lines.push(gtLine(f, obj));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Generates a synthetic screen into `opts.out` (see the module comment for the files). Deterministic: the same
 * options give byte-identical files. Returns counts, the files written and per-well abnormal fractions.
 */
export async function synthesizeScreen(opts: SynthOptions): Promise<SynthResult> {
  const o = resolveSynthOptions(opts);
  const out = resolve(opts.out);
  const manifestPath = join(out, 'synth.json');
  const hash = contentHash({ ...o, version: SYNTH_VERSION });
  if (existsSync(manifestPath)) {
    const prev = readManifest(manifestPath);
    if (prev.hash === hash && prev.result.files.every((f) => existsSync(join(out, f)))) {
      logger.info('synthetic screen already complete', { out, fields: prev.result.fields });
      return { ...prev.result, out, reused: true };
    }
    if (prev.hash !== hash) {
      const older = prev.result.version !== SYNTH_VERSION;
      const why = older
        ? `by generator version ${prev.result.version} (this is ${SYNTH_VERSION})`
        : 'with other options';
      throw new QcbError('QCB_USAGE', `${out} already holds a synthetic screen made ${why}`, {
        file: manifestPath,
        key: 'options',
        value: prev.result.options,
        fix: 'choose another --out folder, or delete this one to regenerate it',
      });
    }
  }
  mkdirSync(out, { recursive: true });
  const profile = DOMAINS[o.domain];
  const t0 = Date.now();
  const files: string[] = [];
  const tables: string[] = [];
  const nucleiLines = [
    csvLine([
      'ImageNumber',
      'ObjectNumber',
      'Metadata_Plate',
      'Metadata_Well',
      'Metadata_Site',
      'Location_Center_X',
      'Location_Center_Y',
      'AreaShape_Area',
    ]),
  ];
  const gtLines = [GT_HEADER];
  const bbbc021Lines = [csvLine(BBBC021_HEADER)];
  const plateLines = new Map<string, string[]>();
  const artefacts: Record<string, number> = {};
  const fieldArtefacts: Record<string, number> = {};
  const perWell = new Map<string, { objects: number; abnormal: number }>();
  let cells = 0;
  let empties = 0;
  let abnormal = 0;
  const plan = planScreen(o);
  const pending: Promise<void>[] = [];
  const madeDirs = new Set<string>();
  const progress = logger.startProgress(`synth ${o.domain}`, plan.fields.length, 'fields');

  const specOf = (f: PlannedField): FieldSpec => ({
    profile,
    width: o.width,
    height: o.height,
    seed: f.seed,
    densityMultiplier: f.densityMultiplier,
    abnormalFraction: f.cellTarget,
    cropSize: o.cropSize,
    fieldArtefact: f.fieldArtefact,
  });
  // Fields render in worker threads (a window of 2 per worker in flight) and are written in plan order, so the
  // output does not depend on the number of workers.
  const nWorkers = Math.min(opts.workers ?? defaultWorkers(), plan.fields.length);
  const pool =
    nWorkers > 1
      ? new WorkerPool<FieldJob, RenderedField>(
          new URL('./field-worker.ts', import.meta.url),
          nWorkers,
          (r) => r.field as RenderedField,
        )
      : undefined;
  const inFlight: Promise<RenderedField>[] = [];
  let launched = 0;
  const launch = () => {
    while (pool && launched < plan.fields.length && inFlight.length < 2 * nWorkers) {
      inFlight.push(pool.run({ spec: specOf(plan.fields[launched++]) }));
    }
  };
  try {
    for (const f of plan.fields) {
      const { plate, well, site, wellIndex: wi } = f;
      const treatment = wi === 0 ? TREATMENTS[0] : TREATMENTS[1 + ((wi - 1) % (TREATMENTS.length - 1))];
      launch();
      const field = pool ? await (inFlight.shift() as Promise<RenderedField>) : renderField(specOf(f));
      launch();
      if (field.fieldArtefact) fieldArtefacts[field.fieldArtefact] = (fieldArtefacts[field.fieldArtefact] ?? 0) + 1;
      const nameRng = new Rng(deriveSeed(f.seed, 'names'));
      const names: string[] = [];
      for (let k = 0; k < profile.channels.length; k++) {
        const ch = profile.channels[k];
        const name =
          profile.layout === 'bbbc022'
            ? `IXMtest_${well}_s${site}_w${ch.wavelength}${uuid(nameRng)}.tif`
            : `${well}_s${site}_w${ch.wavelength}${uuid(nameRng)}.tif`;
        const rel = `${plate}/${name}`;
        // Plain asynchronous writes overlap the disk with rendering the next field. No per-file fsync: completeness
        // is vouched for by the manifest, written last and atomically; an interrupted run has none and starts over.
        if (!madeDirs.has(plate)) {
          await mkdir(join(out, plate), { recursive: true });
          madeDirs.add(plate);
        }
        pending.push(writeFile(join(out, rel), encodeTiff16(o.width, o.height, field.channels[k])));
        files.push(rel);
        names.push(name);
      }
      const byName = (n: string) => names[profile.channels.findIndex((c) => c.name === n)];
      if (profile.layout === 'bbbc022') {
        if (!plateLines.has(plate)) plateLines.set(plate, [csvLine(BBBC022_HEADER)]);
        plateLines
          .get(plate)
          ?.push(
            csvLine([
              f.imageNumber,
              ...BBBC022_CHANNEL_COLUMNS.map(byName),
              treatment.role,
              treatment.role === 'mock' ? 'DMSO' : `BRD-SYNTH-${String(wi).padStart(4, '0')}`,
              treatment.concentration,
              `SYNTH-${plate}`,
              treatment.smiles,
              well,
              plate,
              treatment.compound,
              'qcbench synthetic',
              site,
              0,
              ...BBBC022_CHANNEL_COLUMNS.map(() => `${plate}/`),
            ]),
          );
      } else {
        const path = `Week1/${plate}`;
        bbbc021Lines.push(
          csvLine([
            f.plateIndex + 1,
            f.imageNumber,
            byName('DAPI'),
            path,
            byName('Tubulin'),
            path,
            byName('Actin'),
            path,
            plate,
            well,
            1,
            treatment.compound,
            treatment.concentration,
          ]),
        );
      }
      const wkey = `${plate}|${well}`;
      const ws = perWell.get(wkey) ?? { objects: 0, abnormal: 0 };
      perWell.set(wkey, ws);
      let objectNumber = 0;
      for (const obj of field.objects) {
        objectNumber++;
        nucleiLines.push(csvLine([f.imageNumber, objectNumber, plate, well, site, obj.x, obj.y, obj.area]));
        gtLines.push(gtLine(f, obj));
        count(obj, artefacts);
        if (obj.kind === 'cell') cells++;
        else empties++;
        ws.objects++;
        if (obj.label === 'abnormal') {
          abnormal++;
          ws.abnormal++;
        }
      }
      progress.tick(1);
      // Bound the images held in memory while their writes are in flight.
      while (pending.length > 3 * profile.channels.length) await pending.shift();
    }
    await Promise.all(pending);
  } finally {
    await pool?.close();
  }
  for (const [plate, lines] of plateLines) {
    const rel = `${plate}_image.csv`;
    writeFileAtomic(join(out, rel), `${lines.join('\n')}\n`);
    files.push(rel);
    tables.push(rel);
  }
  const wellSummaries: WellSummary[] = plan.wells.map((w) => {
    const ws = perWell.get(`${w.plate}|${w.well}`) ?? { objects: 0, abnormal: 0 };
    return { ...w, abnormalFraction: round4(ws.objects ? ws.abnormal / ws.objects : 0), objects: ws.objects };
  });
  const imageNumber = plan.fields.length;
  if (profile.layout === 'bbbc021') {
    writeFileAtomic(join(out, 'BBBC021_v1_image.csv'), `${bbbc021Lines.join('\n')}\n`);
    const moa = [csvLine(['compound', 'concentration', 'moa'])];
    for (const t of TREATMENTS) moa.push(csvLine([t.compound, t.concentration.toFixed(6), t.moa]));
    writeFileAtomic(join(out, 'BBBC021_v1_moa.csv'), `${moa.join('\n')}\n`);
    files.push('BBBC021_v1_image.csv', 'BBBC021_v1_moa.csv');
    tables.push('BBBC021_v1_image.csv');
  }
  writeFileAtomic(join(out, 'nuclei.csv'), `${nucleiLines.join('\n')}\n`);
  writeFileAtomic(join(out, 'ground_truth.csv'), `${gtLines.join('\n')}\n`);
  files.push('nuclei.csv', 'ground_truth.csv');
  progress.finish(`synth ${o.domain}: ${imageNumber} fields, ${cells} cells, ${abnormal} abnormal crops`);

  const seconds = (Date.now() - t0) / 1000;
  const result: SynthResult = {
    domain: o.domain,
    out,
    options: o,
    fields: imageNumber,
    cells,
    empties,
    abnormal,
    files,
    tables,
    wells: wellSummaries,
    artefacts,
    fieldArtefacts,
    seconds: round4(seconds),
    fieldsPerSecond: round4(imageNumber / Math.max(seconds, 1e-3)),
    reused: false,
    version: SYNTH_VERSION,
  };
  // The manifest stores paths relative to `out` so a screen can be moved; `out` is filled in on reading.
  writeJsonAtomic(manifestPath, { hash, result: { ...result, out: relative(out, out) || '.' } });
  return result;
}

function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

function readManifest(path: string): { hash: string; result: SynthResult } {
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as { hash: string; result: SynthResult };
    if (typeof m.hash !== 'string' || !m.result || !Array.isArray(m.result.files)) throw new Error('missing fields');
    return m;
  } catch (e) {
    throw new QcbError('QCB_FILE_FORMAT', `synthetic screen manifest ${path} is unreadable`, {
      file: path,
      cause: e,
      fix: 'delete the manifest (synth.json) and run qcbench data synth again',
    });
  }
}

function count(o: SynthObject, acc: Record<string, number>): void {
  if (o.label === 'abnormal') acc[o.artefact] = (acc[o.artefact] ?? 0) + 1;
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
