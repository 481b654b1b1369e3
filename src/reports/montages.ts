/**
 * Montages of misclassified crops as a Vega-Lite figure. The runner writes one PNG per cell
 * (`<results>/montages/<cellId>.png`: up to 32 wrong test crops, missed abnormal crops first); the report shows one
 * per setting (lowest seed), copies those PNGs to `<out>/montages/` and describes them with one Vega-Lite spec of
 * image marks, one panel per setting:
 *
 * - `charts/misclassified-crops.vl.json` references the full-resolution copies by URL relative to the report folder
 *   (`montages/<cellId>.png`, i.e. relative to index.html), so the file stays small;
 * - index.html embeds the same spec with downscaled JPEG previews (at most PREVIEW_WIDTH px wide, quality
 *   PREVIEW_QUALITY) as `data:` URLs, so the page stays one self-contained file that works offline and is small
 *   enough to e-mail (inlining the ~1 MB PNGs made it ~124 MB at full-protocol size). Each panel links (`href`) to its
 *   full-resolution PNG beside index.html.
 *
 * The previews are made by sharp (libvips resize + libjpeg), which gives the same bytes for the same PNG and options,
 * so the report stays byte-identical across rebuilds.
 *
 * The montages are photographs already, so this figure has no SVG/PNG rendering of its own.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import sharp from 'sharp';
import type { CellRecord } from '../results/schema.js';
import type { VlSpec } from '../render/vega.js';
import { CONFIG, type Chart, top } from './charts.js';
import { taskTitle } from './tables/model.js';

/** At most this many montages are shown (one per setting, lowest seed first), to keep the HTML small. */
export const MAX_MONTAGES = 60;

/** Display width of a montage panel in pixels (narrower images keep their size). */
const PANEL_WIDTH = 400;

/** Width of the JPEG previews inlined in index.html (narrower montages keep their size): 1.6 × the panel width. */
export const PREVIEW_WIDTH = 640;

/** JPEG quality of the inlined previews. */
export const PREVIEW_QUALITY = 75;

export interface MontageImage {
  cell: CellRecord;
  /** Path of the copy inside the report folder (`montages/<file>.png`). */
  href: string;
  png: Buffer;
  width: number;
  height: number;
  /** Encoder · task · images · test set · seed. */
  label: string;
}

/** Width and height from a PNG's IHDR chunk; undefined when the bytes are not a PNG. */
export function pngSize(b: Buffer): { width: number; height: number } | undefined {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (b.length < 24 || sig.some((v, i) => b[i] !== v) || b.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

/**
 * One montage per group (lowest seed), in report order, at most MAX_MONTAGES; notes say what is left out or
 * missing. `done` are the finished cells in report order.
 */
export function collectMontages(
  dir: string,
  done: readonly CellRecord[],
): { montages: MontageImage[]; notes: string[] } {
  const withMontage = done.filter((c) => c.montage);
  const notes: string[] = [];
  if (!withMontage.length) {
    notes.push(
      'This results directory has no montages of misclassified crops (montages/*.png): the runner did not write any for these cells.',
    );
    return { montages: [], notes };
  }
  const seen = new Set<string>();
  const firstPerGroup = withMontage.filter((c) => {
    const k = `${c.key.encoder}|${c.key.task}|${c.key.train_set}|${c.key.test_set}|${c.key.budget}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const montages: MontageImage[] = [];
  const missing: string[] = [];
  for (const c of firstPerGroup) {
    if (montages.length >= MAX_MONTAGES) break;
    const file = resolve(dir, c.montage!);
    const png = existsSync(file) ? readFileSync(file) : undefined;
    const size = png && pngSize(png);
    if (!png || !size) {
      missing.push(c.montage!);
      continue;
    }
    const k = c.key;
    const where = k.test_set === k.train_set ? k.test_set : `${k.train_set} → ${k.test_set}`;
    montages.push({
      cell: c,
      href: `montages/${basename(c.montage!)}`,
      png,
      ...size,
      label: `${c.encoder_label} · ${taskTitle(k.task)} · ${k.budget} images · ${where} · seed ${k.seed}`,
    });
  }
  notes.push(
    `Crops of the test set that the classifier got wrong (missed abnormal crops first), one montage per setting (lowest seed shown; ${withMontage.length} montage${withMontage.length === 1 ? '' : 's'} in the results directory's montages/).`,
  );
  if (firstPerGroup.length > MAX_MONTAGES) notes.push(`Only the first ${MAX_MONTAGES} settings are shown here.`);
  if (missing.length)
    notes.push(`Montage files referenced by cells but missing or not PNG: ${missing.sort().join(', ')}.`);
  return { montages, notes };
}

/**
 * The JPEG preview of each montage that index.html inlines: at most PREVIEW_WIDTH px wide (aspect kept, never
 * enlarged), quality PREVIEW_QUALITY, no metadata. Encoded on sharp's thread pool, in the montages' order.
 */
export function montagePreviews(montages: readonly MontageImage[]): Promise<Buffer[]> {
  return Promise.all(
    montages.map((m) =>
      sharp(m.png)
        .flatten({ background: '#ffffff' })
        .resize({ width: PREVIEW_WIDTH, withoutEnlargement: true })
        .jpeg({ quality: PREVIEW_QUALITY })
        .toBuffer(),
    ),
  );
}

/**
 * The Vega-Lite figure of the montages: `spec` references the full-resolution copies in the report folder by
 * relative URL, `embedSpec` (for index.html) carries the JPEG `previews` (montagePreviews, same order) as data URLs.
 * In both, clicking a panel opens the full-resolution PNG (`href`, relative to the report folder).
 */
export function montageChart(montages: readonly MontageImage[], previews: readonly Buffer[]): Chart | undefined {
  if (!montages.length) return undefined;
  if (previews.length !== montages.length)
    throw new Error(`montageChart: ${previews.length} previews for ${montages.length} montages`);
  const build = (url: (m: MontageImage, i: number) => string, description: string): VlSpec =>
    top('Misclassified crops', 'one montage per setting (lowest seed); missed abnormal crops first', {
      description,
      concat: montages.map((m, i) => {
        const w = Math.min(PANEL_WIDTH, m.width);
        const h = Math.max(1, Math.round((m.height * w) / m.width));
        return {
          title: { text: m.label, fontSize: 11, anchor: 'start', offset: 4 },
          width: w,
          height: h,
          data: { values: [{ url: url(m, i), href: m.href, label: m.label }] },
          mark: {
            type: 'image',
            width: w,
            height: h,
            align: 'left',
            baseline: 'top',
            aspect: false,
            cursor: 'pointer',
          },
          encoding: {
            x: { value: 0 },
            y: { value: 0 },
            url: { field: 'url', type: 'nominal' },
            href: { field: 'href', type: 'nominal' },
            description: { field: 'label', type: 'nominal' },
          },
        };
      }),
      columns: 2,
      spacing: 18,
      config: { ...CONFIG, view: { stroke: null } },
    });
  const spec = build(
    (m) => m.href,
    'Montages of misclassified test crops. Image URLs are relative to the report folder (where index.html is); index.html embeds this spec with downscaled JPEG previews inlined.',
  );
  const embedSpec = build(
    (_, i) => `data:image/jpeg;base64,${previews[i].toString('base64')}`,
    `Montages of misclassified test crops as JPEG previews at most ${PREVIEW_WIDTH} px wide; click a montage to open its full-resolution PNG (montages/ beside index.html).`,
  );
  return {
    name: 'misclassified-crops',
    title: 'Misclassified crops',
    caption:
      'Test crops the classifier got wrong, one montage per setting (encoder, task, training images, test set; lowest seed). Missed abnormal crops come first, then false alarms. Shown as reduced previews: click a montage to open its full-resolution PNG.',
    spec,
    embedSpec,
    specOnly: true,
  };
}
