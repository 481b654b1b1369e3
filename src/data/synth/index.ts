/** Synthetic HCS screens: the embedded default data set (see screen.ts). */
export { ARTEFACT_TYPES, type ArtefactType } from './artefacts.js';
export { DOMAINS, type DomainProfile, type SynthDomain } from './domains.js';
export { type FieldSpec, type RenderedField, renderField, type SynthObject } from './field.js';
export { deriveSeed, hashString, Rng } from '../../util/random.js';
export {
  type PlannedField,
  planScreen,
  QUICK_SCREENS,
  type ResolvedSynthOptions,
  resolveSynthOptions,
  SYNTH_VERSION,
  type SynthOptions,
  type SynthResult,
  screenGroundTruth,
  synthesizeScreen,
  type WellSummary,
} from './screen.js';
