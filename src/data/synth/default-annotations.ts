/**
 * The annotation files shipped for the synthetic default (`annotations/synthetic-u2os.csv`,
 * `annotations/synthetic-mcf7.csv`): sampled from the ground truth of the quick screens ({@link QUICK_SCREENS}).
 * u2os gets the paper's BBBC022 design (240 abnormal + 240 normal, 350 train / 130 test); mcf7 the domain-shift
 * design (100 + 100, all test). Generation is deterministic, so these files stay valid for the screens that
 * `qcbench data synth` writes with default options; a test regenerates them and compares.
 */
import {
  type Annotation,
  annotationsFromGroundTruthText,
  DOMAIN_SHIFT_SAMPLING,
  formatAnnotations,
  PAPER_SAMPLING,
} from '../annotations.js';
import type { SynthDomain } from './domains.js';
import { QUICK_SCREENS, type ResolvedSynthOptions, SYNTH_VERSION, screenGroundTruth } from './screen.js';

/** Sampling design and seed of each domain's default annotation file. */
export const DEFAULT_ANNOTATION_SAMPLING = {
  u2os: { ...PAPER_SAMPLING, seed: 1 },
  mcf7: { ...DOMAIN_SHIFT_SAMPLING, seed: 1 },
} satisfies Record<SynthDomain, { abnormal: number; normal: number; train: number; test: number; seed: number }>;

/** Annotations sampled from a screen's ground truth with the domain's default design (by default, the quick screen). */
export function defaultSyntheticAnnotations(
  domain: SynthDomain,
  screen: ResolvedSynthOptions = QUICK_SCREENS[domain],
): Annotation[] {
  const text = screenGroundTruth(screen);
  return annotationsFromGroundTruthText(text, `synthetic ${domain} ground truth`, {
    ...DEFAULT_ANNOTATION_SAMPLING[domain],
    cropSize: screen.cropSize,
    field: { width: screen.width, height: screen.height },
  });
}

/** The header comments that say which screen and sampling an annotation file comes from. */
export function annotationComments(
  screen: ResolvedSynthOptions,
  sampling: { abnormal: number; normal: number; train: number; test: number; seed: number },
): string[] {
  return [
    `qcbench synthetic screen v${SYNTH_VERSION}: domain ${screen.domain}, ${screen.plates} plate(s) x ${screen.wells} wells x ${screen.sites} sites, ${screen.width}x${screen.height}, seed ${screen.seed}, abnormal fraction ${screen.abnormalFraction}, crop ${screen.cropSize}`,
    `sampling: ${sampling.abnormal} abnormal + ${sampling.normal} normal, ${sampling.train} train / ${sampling.test} test (50% normal in each), seed ${sampling.seed}; crops whose square lies inside the field`,
    'regenerate: qcbench data synth --domain ' + `${screen.domain} --out DIR --annotations FILE (default options)`,
  ];
}

/** The text of the shipped annotation file for a domain. */
export function defaultSyntheticAnnotationFile(domain: SynthDomain): string {
  const screen = QUICK_SCREENS[domain];
  return formatAnnotations(
    defaultSyntheticAnnotations(domain, screen),
    annotationComments(screen, DEFAULT_ANNOTATION_SAMPLING[domain]),
  );
}
