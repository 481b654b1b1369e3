/**
 * `qcbench data show STORE --n 64 --out montage.png`: a montage of crops from a crop store, for people to look at.
 */
import { writeFileSync } from 'node:fs';
import { readAnnotations } from '../data/annotations.js';
import { type CropStore, findCrops, openCropStore } from '../data/store/crop-store.js';
import { QcbError } from '../errors.js';
import { montagePng } from '../render/montage.js';
import { parseCommandArgs } from './args.js';
import type { CliContext, Command } from './types.js';

const usage = `qcbench data show STORE [--n 64] [--out montage.png] [--label normal|abnormal --annotations FILE] [--seed N] [--cols N]

Writes a PNG montage of N crops of a crop store (default 64, chosen evenly across the store, or at random with
--seed), and beside it <out>.csv with each tile's row, column and crop_id. With 3+ channels the first three are shown
as red, green, blue (the store's channel order, e.g. Ph_golgi, Mito, Hoechst); with 2, as magenta and green; with 1,
as grey. --label picks crops of that label in an annotation file (matched by crop_id, or the nearest crop of the
same field within 6 px).`;

/** Picks crop indices: by label from annotations, else evenly spaced or seeded-random. */
export function pickCrops(
  store: CropStore,
  n: number,
  o: { seed?: number; label?: string; annotations?: string },
): number[] {
  let pool: number[];
  if (o.label) {
    if (!o.annotations)
      throw new QcbError('QCB_USAGE', '--label needs --annotations FILE', {
        key: '--annotations',
        fix: 'pass the annotation CSV that labels the crops',
      });
    const ann = readAnnotations(o.annotations).filter((a) => a.label === o.label);
    pool = findCrops(
      store.meta,
      ann.map((a) => a.crop_id),
    ).filter((i) => i >= 0);
    if (pool.length === 0) {
      throw new QcbError('QCB_ANNOTATIONS', `no ${o.label} crop of the annotations is in the store`, {
        file: o.annotations,
        fix: 'check that the annotations were made for this screen (crop ids <plate>_<well>_s<site>_<x>_<y>)',
      });
    }
  } else pool = Array.from({ length: store.count }, (_, i) => i);
  if (o.seed !== undefined) {
    let s = o.seed >>> 0 || 1;
    for (let i = pool.length - 1; i > 0; i--) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const j = (s >>> 0) % (i + 1);
      [pool[i], pool[j]] = [pool[j], pool[i]];
    }
    return pool.slice(0, n);
  }
  if (pool.length <= n) return pool;
  return Array.from({ length: n }, (_, k) => pool[Math.floor((k * pool.length) / n)]);
}

function parse(args: string[]) {
  return parseCommandArgs(
    {
      args,
      allowPositionals: true,
      options: {
        n: { type: 'string' },
        out: { type: 'string' },
        label: { type: 'string' },
        annotations: { type: 'string' },
        seed: { type: 'string' },
        cols: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    },
    'data show',
  );
}

export const command: Command = {
  name: 'show',
  summary: 'write a PNG montage of crops from a crop store (optionally one label)',
  usage,
  async run(args: string[], ctx: CliContext): Promise<number> {
    const { values, positionals } = parse(args);
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    if (positionals.length !== 1)
      throw new QcbError('QCB_USAGE', 'give exactly one crop store', {
        value: positionals,
        fix: 'qcbench data show STORE --out montage.png',
      });
    const n = Number(values.n ?? 64);
    if (!Number.isInteger(n) || n < 1 || n > 4096)
      throw new QcbError('QCB_USAGE', `bad --n '${values.n}'`, {
        key: '--n',
        value: values.n,
        allowed: '1 … 4096',
        fix: 'e.g. --n 64',
      });
    if (values.label && !['normal', 'abnormal'].includes(values.label)) {
      throw new QcbError('QCB_USAGE', `bad --label '${values.label}'`, {
        key: '--label',
        value: values.label,
        allowed: 'normal, abnormal',
        fix: 'e.g. --label abnormal',
      });
    }
    const seed = values.seed === undefined ? undefined : Number(values.seed);
    const store = await openCropStore(positionals[0]);
    if (store.count === 0)
      throw new QcbError('QCB_STORE', 'the crop store is empty', {
        file: store.path,
        fix: 'check the extraction log and skipped.csv',
      });
    const idx = pickCrops(store, n, { seed, label: values.label, annotations: values.annotations });
    const cols = values.cols ? Number(values.cols) : Math.ceil(Math.sqrt(idx.length));
    if (!Number.isInteger(cols) || cols < 1)
      throw new QcbError('QCB_USAGE', `bad --cols '${values.cols}'`, {
        key: '--cols',
        value: values.cols,
        fix: 'e.g. --cols 8',
      });
    const crops = await store.readIndices(idx);
    const out = values.out ?? 'montage.png';
    writeFileSync(out, await montagePng(crops, idx.length, store.channels.length, store.size, cols));
    const csv = `${out.replace(/\.png$/i, '')}.csv`;
    writeFileSync(
      csv,
      `row,col,index,crop_id\n${idx.map((i, k) => `${Math.floor(k / cols)},${k % cols},${i},${store.meta[i].crop_id}`).join('\n')}\n`,
    );
    ctx.log.info('montage written', {
      file: out,
      crops: idx.length,
      channels: store.channels.slice(0, 3).join('/'),
      tiles: csv,
    });
    return 0;
  },
};
