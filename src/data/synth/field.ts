/**
 * Renders one synthetic field (one site of one well): places cells, draws every channel, applies field- and
 * cell-level artefacts, illumination shading and Poisson–Gaussian camera noise, and returns the 16-bit channel
 * images plus the objects (nuclei centres and empty positions) with their per-crop ground truth.
 *
 * A field is a pure function of its spec and seed, so fields can be generated in any order or in parallel.
 */
import {
  type ArtefactFootprint,
  type ArtefactType,
  CELL_ARTEFACT_WEIGHTS,
  type CellArtefact,
  FIELD_ARTEFACT_WEIGHTS,
  type FieldArtefact,
  footprintHitsCrop,
  pickWeighted,
} from './artefacts.js';
import type { ChannelRole, DomainProfile } from './domains.js';
import { clamp, fbm, gaussianBlur, NormalTable, valueNoise } from './noise.js';
import { deriveSeed, Rng } from '../../util/random.js';

/** Everything that decides one field. */
export interface FieldSpec {
  profile: DomainProfile;
  width: number;
  height: number;
  seed: number;
  /** Multiplies the domain's cell density (per-well variation). */
  densityMultiplier: number;
  /** Target fraction of abnormal crops for this field's well (0–1). */
  abnormalFraction: number;
  /** Crop side the ground truth is judged for (an artefact counts when it reaches the crop's central window). */
  cropSize: number;
  /** false: decide the layout and ground truth only, without drawing pixels (`channels` is then empty). */
  pixels?: boolean;
  /** Forces the field-level artefact (`none`: no field artefact) instead of drawing it from the abnormal fraction. */
  fieldArtefact?: FieldArtefact | 'none';
}

/** A position a crop will be cut at: a nucleus centre or an empty spot, with its ground truth. */
export interface SynthObject {
  /** Integer centre in field pixels. */
  x: number;
  y: number;
  kind: 'cell' | 'empty';
  /** Nucleus area in pixels (0 for empty positions). */
  area: number;
  label: 'normal' | 'abnormal';
  artefact: ArtefactType | 'none';
}

export interface RenderedField {
  width: number;
  height: number;
  /** One H×W image per profile channel, stored values (12-bit DN shifted by `profile.bitShift`). */
  channels: Uint16Array[];
  objects: SynthObject[];
  /** The artefact that hit the whole field, if any. */
  fieldArtefact: FieldArtefact | null;
}

/** Angular resolution of the boundary tables. */
const NA = 64;

interface Cell {
  x: number;
  y: number;
  a: number;
  b: number;
  ct: number;
  st: number;
  /** Nucleus boundary radius (in units of the ellipse) at NA angles. */
  nb: Float32Array;
  cx: number;
  cy: number;
  /** Cell body boundary radius in px at NA angles, and its maximum. */
  cb: Float32Array;
  rmax: number;
  /** Mean body radius, px. */
  r: number;
  bright: number;
  /** Per-channel gain (saturation artefacts raise it). */
  gain: Float32Array;
  nucleoli: { x: number; y: number; s: number }[];
  fibreAngle: number;
  fibrePeriod: number;
  filaments: number;
  golgi: { x: number; y: number; s: number; inv: number; s2x9: number };
  dead: 'condensed' | 'floating' | null;
  /** 1 for normal texture, lower for condensed chromatin. */
  texture: number;
  artefact: CellArtefact | null;
}

/** Renders a field; see the module comment. */
export function renderField(spec: FieldSpec): RenderedField {
  const { profile, width: W, height: H, cropSize } = spec;
  const rng = new Rng(spec.seed);
  const nch = profile.channels.length;
  const f = clamp(spec.abnormalFraction, 0, 0.95);

  // --- artefact rates: a few fields fail as a whole, the rest of the target comes from single cells.
  const drawn: FieldArtefact | null = rng.chance(clamp(0.22 * f, 0, 0.3))
    ? pickWeighted(FIELD_ARTEFACT_WEIGHTS, rng.next())
    : null;
  const fieldArtefact =
    spec.fieldArtefact === undefined ? drawn : spec.fieldArtefact === 'none' ? null : spec.fieldArtefact;

  // --- empty positions: holes in the monolayer large enough for a crop with no cell in its middle.
  const expected = (profile.density * spec.densityMultiplier * W * H) / 1e6;
  const empties: { x: number; y: number }[] = [];
  const emptyRadius = cropSize / 2 + profile.nucleusMajor[0] * 0.5;
  const nEmpty = Math.min(3, rng.poisson(0.05 * f * expected));
  const margin = cropSize / 2;
  for (let i = 0; i < nEmpty && W > 2 * margin && H > 2 * margin; i++) {
    empties.push({ x: Math.round(rng.uniform(margin, W - margin)), y: Math.round(rng.uniform(margin, H - margin)) });
  }

  const cells = placeCells(spec, rng, empties, emptyRadius);
  const cellProb = fieldArtefact ? 0.3 * f : clamp(f / spill(cells, cropSize), 0, 0.6);
  for (const c of cells) {
    if (rng.chance(cellProb)) c.artefact = pickWeighted(CELL_ARTEFACT_WEIGHTS, rng.next());
  }
  const roles = profile.channels.map((c) => c.role);
  // Everything that decides the ground truth comes from `rng` and is settled here; the pixels below draw from
  // their own stream, so the ground truth can be computed without rendering (spec.pixels = false).
  const plans: (ArtefactPlan | null)[] = cells.map((c, i) => {
    applyCellState(c, rng, nch, roles);
    return c.artefact ? planArtefact(c, i, rng) : null;
  });
  const footprints = plans.filter((p): p is ArtefactPlan => p !== null).map((p) => p.footprint);
  const objects = groundTruth(cells, empties, footprints, fieldArtefact, W, H, cropSize);
  if (spec.pixels === false) return { width: W, height: H, channels: [], objects, fieldArtefact };

  const drng = new Rng(deriveSeed(spec.seed, 'pixels'));
  // --- textures shared by all cells of the field (cells sample them where they lie).
  const texFine = valueNoise(W, H, profile.domain === 'mcf7' ? 2 : 2.5, drng);
  const texMid = fbm(W, H, 9, 2, drng);
  const ridgeBase = fbm(W, H, 6, 2, drng);
  const ridge = new Float32Array(W * H);
  for (let i = 0; i < ridge.length; i++) {
    const r = 1 - Math.abs(2 * ridgeBase[i] - 1);
    ridge[i] = r * r * r;
  }

  const acc: Float32Array[] = profile.channels.map(() => new Float32Array(W * H));
  const localBlurs: { x: number; y: number; r: number; sigma: number }[] = [];
  const mito = roles.indexOf('mito');

  for (let i = 0; i < cells.length; i++) {
    const c = cells[i];
    drawCell(c, acc, roles, profile, W, H, texFine, texMid, ridge);
    if (mito >= 0) drawMito(c, acc[mito], profile, W, H, drng);
    if (c.dead) drawBlebs(c, acc, profile, W, H, drng);
    if (c.dead === 'floating') localBlurs.push({ x: c.x, y: c.y, r: c.rmax + 4, sigma: drng.uniform(2.5, 4) });
    if (c.artefact === 'blur') localBlurs.push({ x: c.cx, y: c.cy, r: c.rmax * 1.1 + 4, sigma: drng.uniform(3, 6) });
    const plan = plans[i];
    if (plan) drawArtefact(plan, acc, profile, W, H, drng);
  }

  // Local defocus: blend each region with a blurred copy of its neighbourhood.
  for (const lb of localBlurs) blurRegion(acc, W, H, lb.x, lb.y, lb.r, lb.sigma);

  // --- field-level artefacts act on the whole optical signal.
  let exposure = 1;
  let readNoise = profile.readNoise;
  if (fieldArtefact === 'blur') {
    const sigma = drng.uniform(3.5, 8);
    for (const a of acc) gaussianBlur(a, W, H, sigma);
  } else if (fieldArtefact === 'haze') {
    const haze = fbm(W, H, Math.max(W, H) / 4, 2, drng);
    for (let k = 0; k < nch; k++) {
      const amp = profile.channels[k].brightness * drng.uniform(0.5, 1.3);
      const a = acc[k];
      for (let p = 0; p < a.length; p++) a[p] += amp * haze[p];
    }
  } else if (fieldArtefact === 'saturation') {
    exposure = drng.uniform(6, 12);
  } else if (fieldArtefact === 'noise') {
    exposure = drng.uniform(0.15, 0.3);
    readNoise *= drng.uniform(15, 25);
  }

  const channels = finishChannels(acc, spec, drng, exposure, readNoise);
  return { width: W, height: H, channels, objects, fieldArtefact };
}

// ---------------------------------------------------------------------------------------------------------------
// placement

function placeCells(spec: FieldSpec, rng: Rng, empties: { x: number; y: number }[], emptyRadius: number): Cell[] {
  const { profile: p, width: W, height: H } = spec;
  const n = rng.poisson((p.density * spec.densityMultiplier * W * H) / 1e6);
  const colonies: { x: number; y: number; s: number }[] = [];
  const nCol = Math.max(1, Math.round(n / 14));
  for (let i = 0; i < nCol; i++) {
    colonies.push({ x: rng.uniform(0, W), y: rng.uniform(0, H), s: p.nucleusMajor[0] * rng.uniform(3, 6) });
  }
  const cells: Cell[] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.max(p.nucleusMajor[0] * 0.5, rng.normal(p.nucleusMajor[0], p.nucleusMajor[1]));
    for (let attempt = 0; attempt < 30; attempt++) {
      let x: number;
      let y: number;
      if (rng.chance(p.clustering)) {
        const col = rng.pick(colonies);
        x = rng.normal(col.x, col.s);
        y = rng.normal(col.y, col.s);
      } else {
        x = rng.uniform(-a, W + a);
        y = rng.uniform(-a, H + a);
      }
      if (x < -a || y < -a || x > W + a || y > H + a) continue;
      let ok = true;
      for (const e of empties) {
        if ((x - e.x) ** 2 + (y - e.y) ** 2 < emptyRadius * emptyRadius) ok = false;
      }
      for (let j = 0; ok && j < cells.length; j++) {
        const d = p.packing * (a + cells[j].a);
        if ((x - cells[j].x) ** 2 + (y - cells[j].y) ** 2 < d * d) ok = false;
      }
      if (!ok) continue;
      cells.push(makeCell(p, rng, x, y, a));
      break;
    }
  }
  return cells;
}

/**
 * Expected number of crops one cell-level artefact makes abnormal: the cell itself plus the neighbours whose central
 * window a typical footprint (1.5 nucleus radii) reaches. Dense, clustered domains spill more, so they get fewer
 * artefact cells for the same target fraction.
 */
function spill(cells: Cell[], cropSize: number): number {
  if (cells.length === 0) return 1;
  let hits = 0;
  for (const c of cells) {
    const reach = cropSize / 4 + 1.5 * c.a;
    for (const o of cells) {
      if (o !== c && Math.abs(o.x - c.x) < reach && Math.abs(o.y - c.y) < reach) hits++;
    }
  }
  return 1 + hits / cells.length;
}

function boundary(rng: Rng, amp: number, scale: number): Float32Array {
  const h = [2, 3, 4, 5].map((k) => ({ k, a: (rng.normal(0, amp) * 2) / k, ph: rng.uniform(0, 2 * Math.PI) }));
  const t = new Float32Array(NA + 1);
  for (let i = 0; i <= NA; i++) {
    const phi = (2 * Math.PI * i) / NA;
    let r = 1;
    for (const { k, a, ph } of h) r += a * Math.cos(k * phi + ph);
    t[i] = Math.max(0.55, r) * scale;
  }
  return t;
}

function makeCell(p: DomainProfile, rng: Rng, x: number, y: number, a: number): Cell {
  const aspect = rng.uniform(p.nucleusAspect[0], p.nucleusAspect[1]);
  const b = a / aspect;
  const theta = rng.uniform(0, Math.PI);
  const r = a * rng.uniform(p.cellRadius[0], p.cellRadius[1]);
  // The nucleus sits off-centre in a spread cell.
  const off = r * rng.uniform(0, 0.3);
  const offA = rng.uniform(0, 2 * Math.PI);
  const cb = boundary(rng, p.cellIrregularity, r);
  let rmax = 0;
  for (const v of cb) rmax = Math.max(rmax, v);
  const nNuc = p.nucleoli[0] + rng.int(p.nucleoli[1] - p.nucleoli[0] + 1);
  const nucleoli = [];
  for (let i = 0; i < nNuc; i++) {
    const u = rng.uniform(-0.5, 0.5);
    const v = rng.uniform(-0.5, 0.5);
    const ct = Math.cos(theta);
    const st = Math.sin(theta);
    nucleoli.push({ x: x + u * a * ct - v * b * st, y: y + u * a * st + v * b * ct, s: rng.uniform(1.3, 2.4) });
  }
  const ga = rng.uniform(0, 2 * Math.PI);
  const gd = a * rng.uniform(0.9, 1.3);
  const gs = a * rng.uniform(0.25, 0.4);
  return {
    x,
    y,
    a,
    b,
    ct: Math.cos(theta),
    st: Math.sin(theta),
    nb: boundary(rng, p.nucleusIrregularity, 1),
    cx: x + off * Math.cos(offA),
    cy: y + off * Math.sin(offA),
    cb,
    rmax: rmax + off,
    r,
    bright: Math.exp(rng.normal(0, 0.3)),
    gain: new Float32Array(p.channels.length).fill(1),
    nucleoli,
    fibreAngle: rng.uniform(0, Math.PI),
    fibrePeriod: rng.uniform(4, 7),
    filaments: 14 + rng.int(14),
    golgi: { x: x + gd * Math.cos(ga), y: y + gd * Math.sin(ga), s: gs, inv: 1 / (2 * gs * gs), s2x9: 9 * gs * gs },
    dead: null,
    texture: 1,
    artefact: null,
  };
}

/** Turns a cell with a `dead` or `saturation` artefact into its abnormal form before drawing. */
function applyCellState(c: Cell, rng: Rng, nch: number, roles: ChannelRole[]): void {
  if (c.artefact === 'dead') {
    c.dead = rng.chance(0.65) ? 'condensed' : 'floating';
    // Pyknosis: the nucleus shrinks to a round, bright, featureless body; the cell rounds up.
    const k = c.dead === 'condensed' ? rng.uniform(0.4, 0.6) : rng.uniform(0.6, 0.8);
    c.a *= k;
    c.b = c.a * rng.uniform(0.85, 1);
    c.nucleoli = [];
    c.texture = 0.3;
    c.bright *= c.dead === 'condensed' ? rng.uniform(1.8, 2.8) : rng.uniform(1.4, 2);
    const r = c.a * (c.dead === 'condensed' ? rng.uniform(1.6, 2.4) : rng.uniform(1.8, 2.5));
    for (let i = 0; i < c.cb.length; i++) c.cb[i] = r * (1 + 0.06 * Math.sin(i * 0.7 + c.x));
    c.cx = c.x;
    c.cy = c.y;
    c.r = r;
    c.rmax = r * 1.07;
  } else if (c.artefact === 'saturation') {
    for (let k = 0; k < nch; k++) {
      if (roles[k] === 'dna' || rng.chance(0.4)) c.gain[k] = rng.uniform(5, 9);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// drawing

const DNA = 0;
const ER = 1;
const RNA = 2;
const AGP = 3;
const MITO = 4;
const TUB = 5;
const ACT = 6;
const ROLE_CODE = { dna: DNA, er: ER, rna: RNA, agp: AGP, mito: MITO, tubulin: TUB, actin: ACT } satisfies Record<
  ChannelRole,
  number
>;

/** Stress fibres show only in part of a cell: a soft on/off mask from the mid-scale texture. */
function fibreMask(tm: number): number {
  return clamp((tm - 0.45) * 5, 0, 1);
}

function lerpTable(t: Float32Array, phi: number): number {
  const s = ((phi + Math.PI) / (2 * Math.PI)) * NA;
  const i = Math.floor(s);
  const fr = s - i;
  const i0 = i % NA;
  return t[i0] + (t[i0 + 1] - t[i0]) * fr;
}

function drawCell(
  c: Cell,
  acc: Float32Array[],
  roles: ChannelRole[],
  p: DomainProfile,
  W: number,
  H: number,
  texFine: Float32Array,
  texMid: Float32Array,
  ridge: Float32Array,
): void {
  const x0 = Math.max(0, Math.floor(c.cx - c.rmax - 3));
  const x1 = Math.min(W - 1, Math.ceil(c.cx + c.rmax + 3));
  const y0 = Math.max(0, Math.floor(c.cy - c.rmax - 3));
  const y1 = Math.min(H - 1, Math.ceil(c.cy + c.rmax + 3));
  const nch = roles.length;
  const B = new Float32Array(nch);
  for (let k = 0; k < nch; k++) B[k] = p.channels[k].brightness * c.bright * c.gain[k];
  const fa = Math.cos(c.fibreAngle);
  const fs = Math.sin(c.fibreAngle);
  const fw = (2 * Math.PI) / c.fibrePeriod;
  const roundish = c.dead !== null;
  const codes = roles.map((r) => ROLE_CODE[r]);
  const chromoK = p.chromocentres * 5;
  const texK = p.dnaTexture;
  const periK = 1 / (0.35 * c.r);
  for (let py = y0; py <= y1; py++) {
    for (let px = x0; px <= x1; px++) {
      const dxc = px - c.cx;
      const dyc = py - c.cy;
      const rc = Math.sqrt(dxc * dxc + dyc * dyc);
      if (rc > c.rmax + 3) continue;
      const Rc = lerpTable(c.cb, Math.atan2(dyc, dxc));
      const dC = Rc - rc;
      const mC = clamp(dC / 3 + 0.5, 0, 1);
      const dx = px - c.x;
      const dy = py - c.y;
      const u = (dx * c.ct + dy * c.st) / c.a;
      const v = (-dx * c.st + dy * c.ct) / c.b;
      const rho = Math.sqrt(u * u + v * v);
      let mN = 0;
      let dN = -1e9;
      const phiN = Math.atan2(v, u);
      if (rho < 1.8) {
        const rN = lerpTable(c.nb, phiN);
        dN = (rN - rho) * c.b;
        mN = clamp(dN / 1.2 + 0.5, 0, 1);
      } else {
        dN = (1 - rho) * c.b;
      }
      if (mC <= 0 && mN <= 0) continue;
      const idx = py * W + px;
      const cyto = mC * (1 - mN);
      // perinuclear weight: 1 at the nuclear edge, falling off over about a third of the cell radius
      const dOut = dN < 0 ? -dN * periK : 0;
      const peri = 1 / (1 + dOut + 0.5 * dOut * dOut);
      let nucleolus = 0;
      if (mN > 0) {
        for (const n of c.nucleoli) {
          const d2 = (px - n.x) ** 2 + (py - n.y) ** 2;
          nucleolus += Math.exp(-d2 / (2 * n.s * n.s));
        }
        if (nucleolus > 1) nucleolus = 1;
        nucleolus *= mN;
      }
      const tf = texFine[idx] - 0.5;
      const tm = texMid[idx];
      for (let k = 0; k < nch; k++) {
        let val = 0;
        switch (codes[k]) {
          case DNA: {
            const chromo = chromoK * Math.max(0, tf - 0.12);
            const tex = 0.78 + c.texture * (texK * tf + 0.25 * (tm - 0.5) + chromo);
            const rim = 0.86 + 0.14 * clamp(dN / 3, 0, 1);
            val = mN * tex * rim * (1 - 0.3 * nucleolus);
            break;
          }
          case ER: {
            const env = dN > -5 && dN < 5 ? 1 - (dN * dN) / 25 : 0;
            val = cyto * peri * (0.2 + 1.1 * ridge[idx]) + 0.45 * env * env + 0.1 * mN;
            break;
          }
          case RNA:
            val = mN * (0.32 + 0.2 * tm) + 1.5 * nucleolus + cyto * 0.42 * (0.45 + 0.55 * peri) * (0.8 + 0.6 * tf);
            break;
          case AGP: {
            if (roundish) {
              val = 0.9 * mC;
              break;
            }
            const mem = dC > -5 && dC < 4 ? 1 - (dC * dC) / 25 : 0;
            let fib = 0.5 + 0.5 * Math.sin(fw * (dxc * fa + dyc * fs) + 6 * tm);
            fib *= fib;
            fib = fib * fib * fib; // sharpen: sin^6
            const g = c.golgi;
            const gd2 = (px - g.x) ** 2 + (py - g.y) ** 2;
            const golgi = gd2 < g.s2x9 ? Math.exp(-gd2 * g.inv) * (1.1 + 1.6 * tf) : 0;
            val =
              0.4 * mem * mem * (0.7 + 1.2 * tf) +
              cyto * (0.14 + 0.3 * ridge[idx] + 0.25 * fib * fibreMask(tm)) +
              1.3 * golgi * (1 - mN);
            break;
          }
          case MITO:
            val = cyto * 0.16 * peri;
            break;
          case TUB: {
            if (roundish) {
              val = 0.8 * mC;
              break;
            }
            // microtubules: a fine meshwork (ridges of the field texture) radiating faintly from the centrosome
            let fil = 0.5 + 0.5 * Math.cos(c.filaments * phiN + 0.05 * rc + 6 * (tm - 0.5));
            fil *= fil;
            const g = c.golgi;
            const md2 = (px - g.x) ** 2 + (py - g.y) ** 2;
            const mtoc = md2 < 40 ? Math.exp(-md2 / 8) : 0;
            val = cyto * (0.25 + 0.9 * ridge[idx] + 0.25 * fil) * (0.45 + 0.55 * peri) + 0.08 * mN + 1.2 * mtoc;
            break;
          }
          case ACT: {
            if (roundish) {
              val = mC;
              break;
            }
            const cortex = dC > -3 && dC < 3.5 ? 1 - (dC * dC) / 12.25 : 0;
            let fib = 0.5 + 0.5 * Math.sin(fw * (dxc * fa + dyc * fs) + 6 * tm);
            fib *= fib;
            fib = fib * fib * fib; // sharpen: sin^6
            val = 0.95 * cortex * cortex * (0.75 + 0.8 * tf) + cyto * (0.12 + 0.35 * fib * fibreMask(tm));
            break;
          }
        }
        acc[k][idx] += B[k] * val;
      }
    }
  }
}

/** Mitochondria: puncta and short tubules in the cytoplasm, denser around the nucleus. */
function drawMito(c: Cell, img: Float32Array, p: DomainProfile, W: number, H: number, rng: Rng): void {
  const k = p.channels.findIndex((ch) => ch.role === 'mito');
  const B = p.channels[k].brightness * c.bright * c.gain[k];
  const n = c.dead ? 15 : Math.round(c.r * c.r * 0.09);
  for (let i = 0; i < n; i++) {
    const ang = rng.uniform(-Math.PI, Math.PI);
    const Rc = lerpTable(c.cb, ang);
    // distance from the nucleus centre: exponential from the nuclear edge, truncated at the cell edge
    const dist = c.a * 0.9 + Math.min(Rc - c.a * 0.9, -Math.log(1 - rng.next() * 0.999) * c.r * 0.35);
    let x = c.x + dist * Math.cos(ang);
    let y = c.y + dist * Math.sin(ang);
    const seg = 1 + rng.int(3);
    const ta = rng.uniform(0, Math.PI);
    const amp = B * rng.uniform(0.5, 1.2);
    for (let s = 0; s < seg; s++) {
      splat(img, W, H, x, y, rng.uniform(0.8, 1.3), amp);
      x += 1.6 * Math.cos(ta);
      y += 1.6 * Math.sin(ta);
    }
  }
}

function splat(img: Float32Array, W: number, H: number, x: number, y: number, s: number, amp: number): void {
  const r = Math.ceil(2.5 * s);
  const xi = Math.round(x);
  const yi = Math.round(y);
  const inv = 1 / (2 * s * s);
  for (let yy = Math.max(0, yi - r); yy <= Math.min(H - 1, yi + r); yy++) {
    for (let xx = Math.max(0, xi - r); xx <= Math.min(W - 1, xi + r); xx++) {
      img[yy * W + xx] += amp * Math.exp(-((xx - x) ** 2 + (yy - y) ** 2) * inv);
    }
  }
}

/** Apoptotic blebs: small bright round fragments around a dead cell's nucleus. */
function drawBlebs(c: Cell, acc: Float32Array[], p: DomainProfile, W: number, H: number, rng: Rng): void {
  const n = c.dead === 'condensed' ? 2 + rng.int(5) : rng.int(3);
  for (let i = 0; i < n; i++) {
    const ang = rng.uniform(0, 2 * Math.PI);
    const d = c.a * rng.uniform(1.1, 2.2);
    const x = c.x + d * Math.cos(ang);
    const y = c.y + d * Math.sin(ang);
    const s = rng.uniform(1.2, 2.6);
    for (let k = 0; k < acc.length; k++) {
      const f = p.channels[k].role === 'dna' ? rng.uniform(1.2, 2.2) : rng.uniform(0.2, 0.8);
      splat(acc[k], W, H, x, y, s, p.channels[k].brightness * c.bright * f);
    }
  }
}

/** A cell artefact decided at layout time: the disk it covers (ground truth) and the parameters to draw it. */
interface ArtefactPlan {
  footprint: ArtefactFootprint;
  /** debris: speck (irregular disk) or fibre; haze: Gaussian blob of sd `size`. */
  shape: 'speck' | 'fibre' | 'blob' | 'none';
  /** speck radius, fibre length or haze sd, px. */
  size: number;
  angle: number;
}

function planArtefact(c: Cell, owner: number, rng: Rng): ArtefactPlan {
  const type = c.artefact as CellArtefact;
  const angle = rng.uniform(0, 2 * Math.PI);
  if (type === 'debris') {
    const d = c.a * rng.uniform(0, 0.8);
    const x = c.x + d * Math.cos(angle);
    const y = c.y + d * Math.sin(angle);
    const speck = rng.chance(0.6);
    const size = speck ? rng.uniform(3, 12) : rng.uniform(25, 70);
    return {
      footprint: { type, x, y, radius: speck ? size : size / 2, owner },
      shape: speck ? 'speck' : 'fibre',
      size,
      angle,
    };
  }
  if (type === 'haze') {
    const s = rng.uniform(14, 32);
    const x = c.x + rng.normal(0, c.a * 0.5);
    const y = c.y + rng.normal(0, c.a * 0.5);
    return { footprint: { type, x, y, radius: 1.5 * s, owner }, shape: 'blob', size: s, angle };
  }
  const none = (x: number, y: number, radius: number): ArtefactPlan => ({
    footprint: { type, x, y, radius, owner },
    shape: 'none',
    size: 0,
    angle,
  });
  if (type === 'saturation') return none(c.cx, c.cy, c.r * 0.7);
  if (type === 'blur') return none(c.cx, c.cy, c.r * 0.8);
  return none(c.x, c.y, c.a * 2);
}

/** Draws debris (specks of dust, fibres) and auto-fluorescent haze into every channel. */
function drawArtefact(plan: ArtefactPlan, acc: Float32Array[], p: DomainProfile, W: number, H: number, rng: Rng): void {
  const { x, y } = plan.footprint;
  if (plan.shape === 'speck' || plan.shape === 'fibre') {
    const gains = p.channels.map(() => rng.uniform(0.4, 1.6));
    const level = p.channels[0].brightness * rng.uniform(1.2, 4);
    if (plan.shape === 'speck') {
      const radius = plan.size;
      const shape = boundary(rng, 0.18, radius);
      for (let yy = Math.max(0, Math.floor(y - radius * 1.6)); yy <= Math.min(H - 1, y + radius * 1.6); yy++) {
        for (let xx = Math.max(0, Math.floor(x - radius * 1.6)); xx <= Math.min(W - 1, x + radius * 1.6); xx++) {
          const dx = xx - x;
          const dy = yy - y;
          const r = Math.sqrt(dx * dx + dy * dy);
          const m = clamp(lerpTable(shape, Math.atan2(dy, dx)) - r + 0.5, 0, 1);
          if (m <= 0) continue;
          for (let k = 0; k < acc.length; k++) acc[k][yy * W + xx] += m * level * gains[k];
        }
      }
    } else {
      // a fibre: a thin line wandering across the footprint
      const len = plan.size;
      let fx = x - (len / 2) * Math.cos(plan.angle);
      let fy = y - (len / 2) * Math.sin(plan.angle);
      let dir = plan.angle;
      const s = rng.uniform(0.8, 1.6);
      for (let t = 0; t < len; t += 1) {
        for (let k = 0; k < acc.length; k++) splat(acc[k], W, H, fx, fy, s, level * gains[k] * 0.6);
        dir += rng.normal(0, 0.08);
        fx += Math.cos(dir);
        fy += Math.sin(dir);
      }
    }
  } else if (plan.shape === 'blob') {
    const s = plan.size;
    const r = Math.ceil(3 * s);
    for (let k = 0; k < acc.length; k++) {
      const amp = p.channels[k].brightness * rng.uniform(0.4, 1.3);
      for (let yy = Math.max(0, Math.floor(y - r)); yy <= Math.min(H - 1, y + r); yy++) {
        for (let xx = Math.max(0, Math.floor(x - r)); xx <= Math.min(W - 1, x + r); xx++) {
          acc[k][yy * W + xx] += amp * Math.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s));
        }
      }
    }
  }
}

/** Replaces a disk of every channel by a blurred version, with a soft edge. */
function blurRegion(acc: Float32Array[], W: number, H: number, x: number, y: number, r: number, sigma: number): void {
  const pad = Math.ceil(3 * sigma);
  const x0 = Math.max(0, Math.floor(x - r - pad));
  const x1 = Math.min(W - 1, Math.ceil(x + r + pad));
  const y0 = Math.max(0, Math.floor(y - r - pad));
  const y1 = Math.min(H - 1, Math.ceil(y + r + pad));
  const w = x1 - x0 + 1;
  const h = y1 - y0 + 1;
  if (w <= 1 || h <= 1) return;
  const patch = new Float32Array(w * h);
  for (const a of acc) {
    for (let yy = 0; yy < h; yy++) patch.set(a.subarray((y0 + yy) * W + x0, (y0 + yy) * W + x0 + w), yy * w);
    gaussianBlur(patch, w, h, sigma);
    for (let yy = 0; yy < h; yy++) {
      for (let xx = 0; xx < w; xx++) {
        const d = Math.sqrt((x0 + xx - x) ** 2 + (y0 + yy - y) ** 2);
        const m = clamp((r - d) / 6 + 0.5, 0, 1);
        if (m > 0) {
          const i = (y0 + yy) * W + x0 + xx;
          a[i] = a[i] * (1 - m) + patch[yy * w + xx] * m;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// camera

function finishChannels(acc: Float32Array[], spec: FieldSpec, rng: Rng, exposure: number, readNoise: number) {
  const { profile: p, width: W, height: H } = spec;
  const vig = rng.uniform(p.vignetting[0], p.vignetting[1]);
  const ox = W / 2 + rng.normal(0, W * 0.08);
  const oy = H / 2 + rng.normal(0, H * 0.08);
  const r2max = (W * W + H * H) / 4;
  // Vignetting: a smooth radial fall-off of the illumination about an off-centre optical axis.
  const shadeX = new Float32Array(W);
  for (let x = 0; x < W; x++) shadeX[x] = (x - ox) ** 2;
  const normals = new NormalTable(rng);
  const maxDn = 4095;
  const out: Uint16Array[] = [];
  const mult = 1 << p.bitShift;
  for (let k = 0; k < acc.length; k++) {
    const a = acc[k];
    const bg = p.channels[k].background * rng.uniform(0.9, 1.1);
    const chanVig = vig * rng.uniform(0.85, 1.15);
    const u16 = new Uint16Array(W * H);
    for (let y = 0; y < H; y++) {
      const dy2 = (y - oy) ** 2;
      for (let x = 0; x < W; x++) {
        const i = y * W + x;
        const shade = 1 - (chanVig * (shadeX[x] + dy2)) / r2max;
        const s = (a[i] + bg) * shade * exposure;
        const noisy = p.offset + s + Math.sqrt(p.gain * (s > 0 ? s : 0)) * normals.next() + readNoise * normals.next();
        const q = Math.round(noisy);
        u16[i] = (q < 0 ? 0 : q > maxDn ? maxDn : q) * mult;
      }
    }
    out.push(u16);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// ground truth

function groundTruth(
  cells: Cell[],
  empties: { x: number; y: number }[],
  footprints: ArtefactFootprint[],
  fieldArtefact: FieldArtefact | null,
  W: number,
  H: number,
  cropSize: number,
): SynthObject[] {
  const objects: SynthObject[] = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells[i];
    const x = Math.round(c.x);
    const y = Math.round(c.y);
    if (x < 0 || y < 0 || x >= W || y >= H) continue;
    let artefact: ArtefactType | 'none' = fieldArtefact ?? c.artefact ?? 'none';
    if (artefact === 'none') {
      let best = Infinity;
      for (const f of footprints) {
        if (f.owner === i || !footprintHitsCrop(f, x, y, cropSize)) continue;
        const d = (f.x - x) ** 2 + (f.y - y) ** 2;
        if (d < best) {
          best = d;
          artefact = f.type;
        }
      }
    }
    objects.push({
      x,
      y,
      kind: 'cell',
      area: Math.round(Math.PI * c.a * c.b),
      label: artefact === 'none' ? 'normal' : 'abnormal',
      artefact,
    });
  }
  for (const e of empties)
    objects.push({ x: e.x, y: e.y, kind: 'empty', area: 0, label: 'abnormal', artefact: 'empty' });
  // Raster order: the order a segmentation would list them in, and stable across runs.
  objects.sort((p, q) => p.y - q.y || p.x - q.x);
  return objects;
}
