/**
 * `qcbench second-order spirals|rings`: the paper's two planar experiments (Fan, Cong & Wang 2017 §III-A/B) over
 * several seeds — accuracy and iterations-to-converge of each network — and their decision maps (Figs. 3–5).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EXIT, QcbError } from '../errors.js';
import { renderSvg } from '../render/vega.js';
import {
  type DecisionMapRecord,
  type NetworkSummary,
  SECOND_ORDER_DIR,
  SECOND_ORDER_MAPS_SCHEMA,
  SECOND_ORDER_SCHEMA,
  type SecondOrderMapsRecord,
  type SecondOrderRecord,
} from '../reports/second-order.js';
import { decisionMapData, decisionMapSpecFromData } from '../second-order/decision-map.js';
import { type Backend, PLANE_TASKS, type PlaneTask, type PlaneTrainResult, trainPlane } from '../second-order/train.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { lookup } from '../util/suggest.js';
import type { Command } from './types.js';

/** Per-network summary over seeds (the record type lives with the report that reads it). */
export type { NetworkSummary };

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Summarises one network's results over seeds. */
export function summarise(
  id: string,
  task: PlaneTask,
  results: { seed: number; r: PlaneTrainResult }[],
): NetworkSummary {
  const accs = results.map((x) => x.r.accuracy);
  const its = results.map((x) => x.r.iterationsToConverge).filter((v): v is number => v !== null);
  const cfg = task.networks.find((n) => n.id === id)!.config;
  return {
    id,
    sizes: cfg.sizes,
    order: cfg.order,
    seeds: results.length,
    converged: its.length,
    accuracy: { mean: accs.reduce((a, b) => a + b, 0) / accs.length, min: Math.min(...accs), max: Math.max(...accs) },
    iterations: its.length
      ? {
          median: median(its),
          mean: its.reduce((a, b) => a + b, 0) / its.length,
          min: Math.min(...its),
          max: Math.max(...its),
        }
      : null,
    msPerIteration: results.reduce((a, x) => a + x.r.msPerIteration, 0) / results.length,
    perSeed: results.map(({ seed, r }) => ({
      seed,
      accuracy: r.accuracy,
      bestAccuracy: r.bestAccuracy,
      iterationsToConverge: r.iterationsToConverge,
      iterations: r.iterations,
      loss: r.loss,
    })),
  };
}

const posInt = (key: string, v: string | undefined, dflt: number | undefined): number | undefined => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new QcbError('QCB_USAGE', `--${key} must be a positive integer`, {
      key: `--${key}`,
      value: v,
      allowed: 'an integer ≥ 1',
      fix: `e.g. --${key} 10`,
    });
  return n;
};

export const command: Command = {
  name: 'second-order',
  summary: 'second-order (quadratic) neurons: two spirals and concentric rings over seeds, with decision maps',
  usage: `qcbench second-order spirals|rings [--seeds N] [--iterations N] [--backend analytic|engine] [--out DIR] [--json]

Trains the paper's networks (Fan, Cong & Wang 2017 §III) by full-batch gradient descent from seeds 1…N and prints,
per network, the final training accuracy and the iterations needed to reach the target (rings: 100%, spirals:
≥ 99%; training stops there).
  spirals   second-order 2-20-20-1 vs first-order 2-20-20-1, outer-to-inner curriculum (Eqs. 13–20)
  rings     second-order 2-3-2-1 vs first-order 2-20-10-1 (four rings × 60 points)

  --seeds N          seeds 1…N (default 10)
  --iterations N     iteration budget per run (default: the task's, spirals 15000, rings 3000)
  --backend B        engine (default: each step one onnxruntime call — graph + autodiff + SGD, float32; the
                     faster one except on the smallest network) or analytic (float64 TypeScript backpropagation)
  --no-curriculum    spirals: train on all points from the start
  --out DIR          write <experiment>-results.json, <experiment>-maps.json (the decision-map grid of each
                     network's most accurate seed, with the training points) and each map as Vega-Lite .vl.json
                     and .svg. To put them in a run's report, write them into the results directory's
                     second-order/ folder: --out <results>/second-order (an --out that is itself a results
                     directory, holding run.json, means the same); qcbench report then adds a "Second-order
                     neurons" section with the table and the maps.
  --json             print the results as JSON instead of a table

Exit codes: 0 ok, 1 training failed (NaN loss), 2 bad arguments.`,
  async run(args, ctx) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        seeds: { type: 'string' },
        iterations: { type: 'string' },
        backend: { type: 'string', default: 'engine' },
        out: { type: 'string' },
        json: { type: 'boolean', default: false },
        'no-curriculum': { type: 'boolean', default: false },
      },
    });
    if (positionals.length !== 1) {
      throw new QcbError('QCB_USAGE', 'second-order needs one experiment: spirals or rings', {
        value: positionals,
        allowed: Object.keys(PLANE_TASKS).join(', '),
        fix: 'qcbench second-order rings --seeds 10',
      });
    }
    const name = positionals[0];
    const task: PlaneTask = lookup(PLANE_TASKS, name, 'second-order experiment', { key: 'experiment' });
    const seeds = posInt('seeds', values.seeds, 10) as number;
    const iterations = posInt('iterations', values.iterations, undefined);
    const backend = lookup(
      { analytic: 'analytic', engine: 'engine' } satisfies Record<Backend, Backend>,
      values.backend as string,
      'backend',
      { key: '--backend' },
    );
    const ds = task.dataset();
    const summaries: NetworkSummary[] = [];
    const mapped = new Map<string, { seed: number; r: PlaneTrainResult }>();
    for (const nw of task.networks) {
      const cfg = {
        ...nw.config,
        target: task.target,
        ...(iterations ? { iterations } : {}),
        ...(values['no-curriculum'] ? { curriculum: false } : {}),
      };
      const prog = ctx.log.startProgress(`${name} ${nw.id}`, seeds, 'seeds');
      const rs: { seed: number; r: PlaneTrainResult }[] = [];
      for (let seed = 1; seed <= seeds; seed++) {
        const r = await trainPlane(ds, { ...cfg, seed, backend });
        rs.push({ seed, r });
        // the decision map shows the most accurate seed (the lowest among ties)
        const prev = mapped.get(nw.id);
        if (!prev || r.accuracy > prev.r.accuracy) mapped.set(nw.id, { seed, r });
        prog.tick(1, `acc ${(r.accuracy * 100).toFixed(1)}%`);
      }
      prog.finish();
      summaries.push({ ...summarise(nw.id, task, rs), budget: cfg.iterations });
    }
    const result = {
      experiment: name,
      title: task.title,
      target: task.target,
      backend,
      seeds,
      points: ds.n,
      ...(task.networks.some((n) => n.config.curriculum) ? { curriculum: !values['no-curriculum'] } : {}),
      networks: summaries,
    };
    if (values.out) {
      // a results directory (it holds run.json) keeps second-order results in its second-order/ folder
      const dir = existsSync(join(values.out, 'run.json')) ? join(values.out, SECOND_ORDER_DIR) : values.out;
      mkdirSync(dir, { recursive: true });
      const record: SecondOrderRecord = { schema: SECOND_ORDER_SCHEMA, ...result };
      writeJsonAtomic(join(dir, `${name}-results.json`), record);
      const maps: DecisionMapRecord[] = [];
      for (const nw of task.networks) {
        const { seed, r } = mapped.get(nw.id)!;
        const map = decisionMapData(r.net, ds, {
          inputScale: nw.config.inputScale,
          title: `${task.title}: ${nw.id}, seed ${seed}, accuracy ${(r.accuracy * 100).toFixed(1)}%`,
        });
        maps.push({ network: nw.id, seed, accuracy: r.accuracy, map });
        const spec = decisionMapSpecFromData(map);
        writeJsonAtomic(join(dir, `${name}-${nw.id}.vl.json`), spec);
        const { svg } = await renderSvg(spec, `${name}-${nw.id}`);
        writeFileAtomic(join(dir, `${name}-${nw.id}.svg`), svg);
      }
      const mapsRecord: SecondOrderMapsRecord = { schema: SECOND_ORDER_MAPS_SCHEMA, experiment: name, maps };
      writeJsonAtomic(join(dir, `${name}-maps.json`), mapsRecord);
      ctx.log.info(`wrote ${name}-results.json, ${name}-maps.json and decision maps to ${dir}`);
    }
    if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      const lines = [
        `${task.title}: ${seeds} seeds, ${backend} backend, target ${task.target * 100}% training accuracy`,
      ];
      lines.push(
        'network                      converged  accuracy mean [min, max]     iterations median (mean) [min, max]  ms/it',
      );
      for (const s of summaries) {
        const acc = `${(s.accuracy.mean * 100).toFixed(1)}% [${(s.accuracy.min * 100).toFixed(1)}, ${(s.accuracy.max * 100).toFixed(1)}]`;
        const it = s.iterations
          ? `${s.iterations.median} (${Math.round(s.iterations.mean)}) [${s.iterations.min}, ${s.iterations.max}]`
          : '—';
        lines.push(
          `${s.id.padEnd(28)} ${`${s.converged}/${s.seeds}`.padEnd(10)} ${acc.padEnd(28)} ${it.padEnd(36)} ${s.msPerIteration.toFixed(2)}`,
        );
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return EXIT.ok;
  },
};
