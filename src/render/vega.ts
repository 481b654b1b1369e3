/**
 * Renders Vega-Lite specs headlessly: vega-lite compiles to Vega, a Vega View with the `none` renderer produces SVG
 * text (no DOM, no canvas), and sharp rasterises the SVG to PNG (librsvg; fonts from fontconfig, DejaVu here).
 * Without node-canvas, vega estimates text widths, so long axis titles may sit a few pixels off.
 */
import sharp from 'sharp';
import type * as vega from 'vega';
import * as vl from 'vega-lite';
import { QcbError } from '../errors.js';

/** A Vega-Lite spec as plain JSON (compiled and validated by vega-lite at render time). */
export type VlSpec = Record<string, unknown>;

/** Compiles a Vega-Lite spec; warnings are collected instead of printed. Throws QCB_INTERNAL on an invalid spec. */
export function compileSpec(spec: VlSpec, name = 'chart'): { vega: vega.Spec; warnings: string[] } {
  const warnings: string[] = [];
  const logger = {
    level: () => logger,
    error: (...a: unknown[]) => {
      throw new QcbError('QCB_INTERNAL', `Vega-Lite rejected chart '${name}': ${a.join(' ')}`, {
        fix: 'please report this with the results directory you ran the report on',
      });
    },
    warn: (...a: unknown[]) => {
      warnings.push(a.map(String).join(' '));
      return logger;
    },
    info: () => logger,
    debug: () => logger,
  };
  try {
    // The spec is plain JSON built by charts.ts; vega-lite validates it as it compiles.
    const out = vl.compile(spec as unknown as vl.TopLevelSpec, { logger: logger as never });
    return { vega: out.spec, warnings };
  } catch (e) {
    if (e instanceof QcbError) throw e;
    throw new QcbError('QCB_INTERNAL', `Vega-Lite could not compile chart '${name}': ${(e as Error).message}`, {
      cause: e,
      fix: 'please report this with the results directory you ran the report on',
    });
  }
}

/** Vega-Lite spec → standalone SVG text. */
export async function renderSvg(spec: VlSpec, name = 'chart'): Promise<{ svg: string; warnings: string[] }> {
  const { vega: vg, warnings } = compileSpec(spec, name);
  // vega is loaded on first render, not at start-up: importing it takes seconds and most commands draw nothing
  const { View, parse } = await import('vega');
  const view = new View(parse(vg), { renderer: 'none' });
  try {
    const svg = renumberIds(await view.toSVG());
    return { svg, warnings };
  } finally {
    view.finalize();
  }
}

/** SVG text → PNG bytes at `scale` × the SVG's pixel size (default 2, i.e. 144 dpi: sharp enough for print drafts). */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * scale })
    .png({ compressionLevel: 6 })
    .toBuffer();
}

/**
 * Vega numbers gradient and clip-path ids with process-wide counters, so the same chart rendered twice in one process
 * gets other ids. Renumbering them per file, in order of appearance, makes the SVG a pure function of the spec.
 */
export function renumberIds(svg: string): string {
  const maps = new Map<string, Map<string, number>>();
  return svg.replace(/\b(gradient_|clip|pattern_)(\d+)\b/g, (_m, prefix: string, n: string) => {
    let m = maps.get(prefix);
    if (!m) maps.set(prefix, (m = new Map()));
    let k = m.get(n);
    if (k === undefined) m.set(n, (k = m.size));
    return `${prefix}${k}`;
  });
}
