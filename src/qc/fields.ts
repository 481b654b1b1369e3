/**
 * Field and well verdicts of `qcbench qc apply`: every field of the screen (the store's field table,
 * data/store/field-table.ts), with its crops' abnormal fraction and its whole-field image-quality measures, gets a
 * verdict and the reasons for it:
 *
 * - `unreadable`      an image of the field could not be read (the crop pipeline's error is in `details`)
 * - `no_nuclei`       no nucleus was found (an empty well, a field far out of focus, the lamp off)
 * - `no_crops`        nuclei were found but every crop left the field (border policy `skip`)
 * - `abnormal_crops`  more than `maxFraction` (default 0.5) of its crops are abnormal
 * - measure outside the screen's robust range, per channel (any channel counts):
 *   - `focus_low`     PowerLogLogSlope below range: a blurred field's spectrum falls faster (Bray et al. 2012).
 *                     FocusScore is reported but not judged: it is var/mean, so it scales with brightness and a dim
 *                     sharp field would read as out of focus.
 *   - `saturated`     PercentMaximal above range: many pixels at the image's maximum (clipped)
 *   - `dark`          MeanIntensity below range, or PercentMinimal above range (pixels clipped at the floor)
 *   - `bright`        MeanIntensity above range
 *
 * The robust range of a measure is median ± k·σ̂ over the screen's measured fields, σ̂ = 1.4826·MAD (the normal
 * consistency constant, so k = 3 is "3 σ" for normally spread fields), widened to at least a floor per measure
 * (the mean intensity below half or above twice the median — a field's brightness follows its cell count —,
 * 0.5 percentage points of PercentMaximal / PercentMinimal, 0.3 of the slope) so that a very uniform screen (MAD ≈ 0)
 * does not flag ordinary variation. Ranges need at least {@link MIN_FIELDS_FOR_RANGE} measured fields; with fewer,
 * only the other reasons apply.
 */
import { quantile } from '../metrics/bootstrap.js';
import type { FieldRecord, FieldStatus } from '../data/store/field-table.js';
import type { WellFraction } from './plate-map.js';

/** Default k of median ± k·σ̂. */
export const DEFAULT_FIELD_K = 3;
/** Default abnormal-crop fraction above which a field is flagged. */
export const DEFAULT_FIELD_FRACTION = 0.5;
/** Fewest measured fields for a robust range. */
export const MIN_FIELDS_FOR_RANGE = 5;
/** MAD → σ for normally distributed values. */
const MAD_TO_SIGMA = 1.4826;

/** A check of one measure against the screen's range. */
interface MeasureCheck {
  measure: string;
  side: 'low' | 'high';
  reason: string;
  /** The half-width is at least this fraction of |median| … */
  floorRel?: number;
  /** … and at least this. */
  floorAbs?: number;
}

/** The measure checks, in reason order (see the module doc). */
export const FIELD_MEASURE_CHECKS: readonly MeasureCheck[] = [
  { measure: 'PowerLogLogSlope', side: 'low', reason: 'focus_low', floorAbs: 0.3, floorRel: 0.1 },
  { measure: 'PercentMaximal', side: 'high', reason: 'saturated', floorAbs: 0.5 },
  { measure: 'MeanIntensity', side: 'low', reason: 'dark', floorRel: 0.5 },
  { measure: 'PercentMinimal', side: 'high', reason: 'dark', floorAbs: 0.5 },
  { measure: 'MeanIntensity', side: 'high', reason: 'bright', floorRel: 1 },
];

/** One row of fields.csv. */
export interface FieldVerdict {
  plate: string;
  well: string;
  site: number | null;
  field_id: string;
  status: FieldStatus;
  /** Crops scored. */
  n: number;
  abnormal: number;
  /** abnormal / n; null without crops. */
  fraction: number | null;
  mean_score: number | null;
  verdict: 'ok' | 'flagged';
  /** Reasons, `;`-joined ('' when ok). */
  reasons: string;
  /** Why, in words: the measure, its value and the range it left, or the read error. */
  details: string;
  measures: Record<string, number>;
}

/** Scores of one field's crops. */
export interface FieldScores {
  n: number;
  abnormal: number;
  sum: number;
}

/** median ± k·σ̂ with the check's floor; undefined with too few values. */
export function robustRange(
  values: readonly number[],
  k: number,
  floor: { floorRel?: number; floorAbs?: number } = {},
): { median: number; lo: number; hi: number } | undefined {
  const v = values.filter(Number.isFinite);
  if (v.length < MIN_FIELDS_FOR_RANGE) return undefined;
  const median = quantile(v, 0.5);
  const mad = quantile(
    v.map((x) => Math.abs(x - median)),
    0.5,
  );
  const half = Math.max(k * MAD_TO_SIGMA * mad, (floor.floorRel ?? 0) * Math.abs(median), floor.floorAbs ?? 0);
  return { median, lo: median - half, hi: median + half };
}

const fmt = (x: number) => (Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toFixed(3));

/**
 * Verdicts of every field (see the module doc), in the order given.
 * @param fields the store's field table
 * @param scores per field id: crops scored and flagged
 */
export function fieldVerdicts(
  fields: readonly FieldRecord[],
  scores: ReadonlyMap<string, FieldScores>,
  o: { k?: number; maxFraction?: number } = {},
): FieldVerdict[] {
  const k = o.k ?? DEFAULT_FIELD_K;
  const maxFraction = o.maxFraction ?? DEFAULT_FIELD_FRACTION;
  const columns = [...new Set(fields.flatMap((f) => Object.keys(f.measures)))];
  // one range per (check, measure column) — checks of one measure differ in their floor — over the fields measured
  const ranges = new Map<string, ReturnType<typeof robustRange>>();
  FIELD_MEASURE_CHECKS.forEach((c, ci) => {
    for (const col of columns.filter((x) => x.startsWith(`ImageQuality_${c.measure}_`)))
      ranges.set(
        `${ci}|${col}`,
        robustRange(
          fields.map((f) => f.measures[col]),
          k,
          c,
        ),
      );
  });
  return fields.map((f) => {
    const s = scores.get(f.field_id);
    const n = s?.n ?? 0;
    const reasons: string[] = [];
    const details: string[] = [];
    if (f.status !== 'ok') {
      reasons.push(f.status);
      if (f.status === 'unreadable') details.push(`${f.code}: ${f.message}`);
      if (f.status === 'no_crops') details.push(`${f.nuclei} nuclei, every crop outside the field`);
    }
    for (const [ci, c] of FIELD_MEASURE_CHECKS.entries()) {
      for (const col of columns.filter((x) => x.startsWith(`ImageQuality_${c.measure}_`))) {
        const r = ranges.get(`${ci}|${col}`);
        const v = f.measures[col];
        if (!r || v === undefined || !Number.isFinite(v)) continue;
        const out = c.side === 'low' ? v < r.lo : v > r.hi;
        if (!out) continue;
        if (!reasons.includes(c.reason)) reasons.push(c.reason);
        const channel = col.slice(`ImageQuality_${c.measure}_`.length);
        details.push(
          `${c.reason}: ${c.measure} ${channel} ${fmt(v)} ${c.side === 'low' ? `< ${fmt(r.lo)}` : `> ${fmt(r.hi)}`} (screen median ${fmt(r.median)})`,
        );
      }
    }
    // the model's view last: what the image itself shows comes first (the field map marks the first reason)
    const fraction = n ? s!.abnormal / n : null;
    if (fraction !== null && fraction > maxFraction) {
      reasons.push('abnormal_crops');
      details.push(`${s!.abnormal} of ${n} crops abnormal (> ${maxFraction})`);
    }
    return {
      plate: f.plate,
      well: f.well,
      site: Number.isFinite(f.site) ? f.site : null,
      field_id: f.field_id,
      status: f.status,
      n,
      abnormal: s?.abnormal ?? 0,
      fraction,
      mean_score: n ? s!.sum / n : null,
      verdict: reasons.length ? 'flagged' : 'ok',
      reasons: reasons.join(';'),
      details: details.join('; '),
      measures: f.measures,
    };
  });
}

/** One row of wells.csv: its crops' fraction (as the plate map draws it) and its fields' verdicts. */
export interface WellVerdict extends WellFraction {
  fields: number;
  fields_flagged: number;
  /** Union of its fields' reasons, `;`-joined. */
  reasons: string;
}

/** Wells summarise their fields (in first-seen order). */
export function wellVerdicts(fields: readonly FieldVerdict[], scores: ReadonlyMap<string, FieldScores>): WellVerdict[] {
  const wells = new Map<string, WellVerdict & { sum: number; why: Set<string> }>();
  for (const f of fields) {
    const key = `${f.plate}\u0000${f.well}`;
    let w = wells.get(key);
    if (!w) {
      w = {
        plate: f.plate,
        well: f.well,
        n: 0,
        abnormal: 0,
        fraction: null,
        mean_score: null,
        fields: 0,
        fields_flagged: 0,
        reasons: '',
        sum: 0,
        why: new Set(),
      };
      wells.set(key, w);
    }
    const s = scores.get(f.field_id);
    w.n += s?.n ?? 0;
    w.abnormal += s?.abnormal ?? 0;
    w.sum += s?.sum ?? 0;
    w.fields++;
    if (f.verdict === 'flagged') w.fields_flagged++;
    for (const r of f.reasons ? f.reasons.split(';') : []) w.why.add(r);
  }
  return [...wells.values()].map(({ sum, why, ...w }) => ({
    ...w,
    fraction: w.n ? w.abnormal / w.n : null,
    mean_score: w.n ? sum / w.n : null,
    reasons: [...why].join(';'),
  }));
}
