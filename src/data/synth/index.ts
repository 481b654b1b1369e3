/** Synthetic HCS screens: the embedded default data set (see screen.ts). */
export { ARTEFACT_TYPES, type ArtefactType } from './artefacts.js';
export { DOMAINS, type DomainProfile, type SynthDomain } from './domains.js';
export { renderField, type FieldSpec, type RenderedField, type SynthObject } from './field.js';
export { Rng, deriveSeed, hashString } from './prng.js';
export {
  QUICK_SCREENS,
  SYNTH_VERSION,
  planScreen,
  type PlannedField,
  resolveSynthOptions,
  screenGroundTruth,
  synthesizeScreen,
  type ResolvedSynthOptions,
  type SynthOptions,
  type SynthResult,
  type WellSummary,
} from './screen.js';
