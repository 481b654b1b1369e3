/**
 * Decision maps like Fan, Cong & Wang 2017 Figs. 3–5: a trained network's output over the plane as a heatmap
 * (MATLAB's "cool" colour map, cyan → magenta, as the paper), with the training points on top ("o" and "+" for the
 * two classes). Output: a self-contained Vega-Lite spec (data inline) that `src/render/vega.ts` renders to SVG/PNG,
 * built from plain map data (`decisionMapData`) that `qcbench second-order --out` stores and `qcbench report` reads.
 */
import type { VlSpec } from '../render/vega.js';
import { type NetParams, predict } from './analytic.js';
import type { PlaneDataset } from './spirals.js';

export interface DecisionMapOptions {
  /** The input scaling used in training: x' = inputScale·(x − 0.5) (default 8, as train.ts). */
  inputScale?: number;
  /** Cells per axis (default 50). */
  resolution?: number;
  title?: string;
  /** Plot width/height in pixels (default 320). */
  size?: number;
}

/** MATLAB's `cool` colour map end points. */
const COOL = ['#00ffff', '#ff00ff'];

const r4 = (v: number) => Math.round(v * 1e4) / 1e4;

/**
 * The network's output on a resolution×resolution grid over `ds.domain`: rows of {x, x2, y, y2, p} (cell corners
 * and output at the cell centre).
 */
export function decisionGrid(
  net: NetParams,
  ds: PlaneDataset,
  o: DecisionMapOptions = {},
): { x: number; x2: number; y: number; y2: number; p: number }[] {
  const R = o.resolution ?? 50;
  const s = o.inputScale ?? 8;
  const [x0, x1, y0, y1] = ds.domain;
  const dx = (x1 - x0) / R;
  const dy = (y1 - y0) / R;
  const pts = new Float64Array(R * R * 2);
  for (let i = 0; i < R; i++)
    for (let j = 0; j < R; j++) {
      const k = i * R + j;
      pts[2 * k] = s * (x0 + (j + 0.5) * dx - 0.5);
      pts[2 * k + 1] = s * (y0 + (i + 0.5) * dy - 0.5);
    }
  const p = predict(net, pts, R * R);
  const rows: { x: number; x2: number; y: number; y2: number; p: number }[] = [];
  for (let i = 0; i < R; i++)
    for (let j = 0; j < R; j++)
      rows.push({
        x: r4(x0 + j * dx),
        x2: r4(x0 + (j + 1) * dx),
        y: r4(y0 + i * dy),
        y2: r4(y0 + (i + 1) * dy),
        p: r4(p[i * R + j]),
      });
  return rows;
}

/**
 * Everything a decision map shows, as plain JSON: what `qcbench second-order --out DIR` stores (`<experiment>-maps.json`)
 * so that `qcbench report` can draw the map again from the results directory alone, without the network.
 */
export interface DecisionMapData {
  title: string;
  /** Plot domain [xmin, xmax, ymin, ymax]. */
  domain: [number, number, number, number];
  /** Cells per axis. */
  resolution: number;
  /** Network output on the grid (cell corners and output at the cell centre), row by row from ymin. */
  grid: { x: number; x2: number; y: number; y2: number; p: number }[];
  /** Training points with their class label. */
  points: { x: number; y: number; class: 0 | 1 }[];
}

/** The data of a decision map: the network's output on the grid and the training points. */
export function decisionMapData(net: NetParams, ds: PlaneDataset, o: DecisionMapOptions = {}): DecisionMapData {
  return {
    title: o.title ?? `${ds.name}: ${net.order === 2 ? 'second' : 'first'}-order ${net.sizes.join('-')}`,
    domain: [...ds.domain],
    resolution: o.resolution ?? 50,
    grid: decisionGrid(net, ds, o),
    points: Array.from({ length: ds.n }, (_, i) => ({
      x: r4(ds.x[2 * i]),
      y: r4(ds.x[2 * i + 1]),
      class: ds.y[i] > 0.5 ? 1 : 0,
    })),
  };
}

/** Vega-Lite spec: heatmap of the network output with the training points ("o" class 0, "+" class 1) on top. */
export function decisionMapSpec(net: NetParams, ds: PlaneDataset, o: DecisionMapOptions = {}): VlSpec {
  return decisionMapSpecFromData(decisionMapData(net, ds, o), { size: o.size });
}

/** The Vega-Lite spec of stored map data (`decisionMapData`), e.g. read back from a results directory. */
export function decisionMapSpecFromData(d: DecisionMapData, o: { size?: number } = {}): VlSpec {
  const size = o.size ?? 320;
  const [x0, x1, y0, y1] = d.domain;
  const points = d.points.map((p) => ({ x: p.x, y: p.y, class: p.class === 1 ? '1 (+)' : '0 (o)' }));
  const xScale = { domain: [x0, x1], nice: false, zero: false };
  const yScale = { domain: [y0, y1], nice: false, zero: false };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: d.title,
    width: size,
    height: size,
    layer: [
      {
        data: { values: d.grid },
        mark: { type: 'rect' },
        encoding: {
          x: { field: 'x', type: 'quantitative', scale: xScale, title: 'x' },
          x2: { field: 'x2' },
          y: { field: 'y', type: 'quantitative', scale: yScale, title: 'y' },
          y2: { field: 'y2' },
          color: { field: 'p', type: 'quantitative', scale: { domain: [0, 1], range: COOL }, title: 'output' },
        },
      },
      {
        data: { values: points },
        mark: { type: 'point', filled: false, size: 30, strokeWidth: 1.2 },
        encoding: {
          x: { field: 'x', type: 'quantitative', scale: xScale },
          y: { field: 'y', type: 'quantitative', scale: yScale },
          shape: {
            field: 'class',
            type: 'nominal',
            scale: { domain: ['0 (o)', '1 (+)'], range: ['circle', 'cross'] },
            title: 'class',
          },
          color: { value: 'black' },
        },
      },
    ],
    resolve: { scale: { color: 'independent' } },
    config: { axis: { grid: false } },
  };
}
