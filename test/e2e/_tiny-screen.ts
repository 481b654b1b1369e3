/**
 * The tiny synthetic screen of the end-to-end tests: 1 plate × 4 wells × 2 sites of 320×256 (u2os, BBBC022 layout),
 * 32×32 crops, and a balanced annotation file of 16 + 16 crops (20 train, 12 test) drawn from its ground truth.
 */
import { join } from 'node:path';
import { makeAnnotationsFromGroundTruth, writeAnnotations } from '../../src/data/annotations.js';
import { synthesizeScreen } from '../../src/data/synth/screen.js';

/** The generator settings of the tiny screen as a protocol's `synth:` value (the screen is generated once here). */
export const TINY_SYNTH =
  '{ domain: u2os, wells: 4, sites: 2, width: 320, height: 256, seed: 3, abnormal_fraction: 0.4, crop_size: 32 }';

/** Writes the screen to `<dir>/screen` and its annotations to `<dir>/ann.csv`. */
export async function makeTinyScreen(dir: string): Promise<{ screen: string; annotations: string }> {
  const screen = join(dir, 'screen');
  await synthesizeScreen({
    domain: 'u2os',
    out: screen,
    wells: 4,
    sites: 2,
    width: 320,
    height: 256,
    seed: 3,
    cropSize: 32,
    abnormalFraction: 0.4,
  });
  const ann = makeAnnotationsFromGroundTruth(join(screen, 'ground_truth.csv'), {
    abnormal: 16,
    normal: 16,
    train: 20,
    test: 12,
    seed: 1,
  });
  const annotations = join(dir, 'ann.csv');
  writeAnnotations(annotations, ann);
  return { screen, annotations };
}

/**
 * The `data:` block of a protocol on the tiny screen: data sets `names` (the first is `pretrain_on`), each the tiny
 * screen in `<protocol dir>/screen` with the annotation file `annotations`.
 */
export function tinyDataYaml(names: string[] = ['s'], annotations = 'ann.csv'): string {
  const sets = names.map(
    (n) => `    ${n}:
      format: synthetic
      root: screen
      annotations: ${annotations}
      synth: ${TINY_SYNTH}
`,
  );
  return `data:
  crop_size: 32
  pretrain_on: ${names[0]}
  datasets:
${sets.join('')}`;
}
