/**
 * `qcbench bench report`: how long `qcbench report` takes on results the size of the full protocol's (target: under
 * 10 s). Nobody has days of compute for a real full run just to time its report, so this writes SYNTHETIC results of
 * that size into a temporary directory — the exact cells of `protocols/full.yaml` (its cell list, 216 cells),
 * every cell finished with 130 test predictions and bootstrap intervals, a 1042×522 montage per cell (32 crops of
 * 128 px, as the runner writes them), an SSL pretraining loss curve of 5,000 steps per method — and times
 * `qcbench report` on them as a user runs it: a fresh process (`bin/qcbench.js report`), wall clock, PNGs included.
 * It also measures the size of the resulting index.html, which a scientist must be able to e-mail (target
 * HTML_TARGET_MB; the montages are inlined as downscaled JPEG previews, see montages.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReportSummary } from '../reports/build.js';
import { QcbError } from '../errors.js';
import { protocolHash } from '../protocol/resolve.js';
import { loadProtocol } from '../runner/catalog.js';
import { expandCells } from '../runner/cells.js';
import { makeResults } from '../reports/synthetic-results.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FULL_PROTOCOL = join(ROOT, 'protocols', 'full.yaml');
const BIN = join(ROOT, 'bin', 'qcbench.js');

/** Target: `qcbench report` on the full protocol's results takes under 10 s. */
export const REPORT_TARGET_SECONDS = 10;

/** index.html of the full protocol's report is at most this many MB (2^20 bytes), small enough to e-mail. */
export const HTML_TARGET_MB = 25;

export interface BenchReportOptions {
  /** Only the first N seeds of the protocol (default: all, 3 for full.yaml). */
  seeds?: number;
  /** Render PNGs (default true, as `qcbench report`). */
  png?: boolean;
  /** Keep the synthetic results and the report in this directory instead of a deleted temporary one. */
  keep?: string;
}

export interface BenchReportResult {
  protocol: string;
  cells: number;
  seeds: number[];
  montages: number;
  pretrain_records: number;
  png: boolean;
  /** Seconds to write the synthetic results (not part of the target). */
  generate_seconds: number;
  /** Wall-clock seconds of the `qcbench report` process: what the target is about. */
  report_seconds: number;
  /** The report's own build time as it measures it (loading results to writing the last file). */
  build_seconds: number;
  target_seconds: number;
  meets_target: boolean;
  charts: number;
  files: number;
  /** Size of index.html in MB (2^20 bytes). */
  html_mb: number;
  html_target_mb: number;
  /** html_mb ≤ html_target_mb. */
  meets_html_target: boolean;
  report_mb: number;
  cores: number;
  load_average: number;
  /** Where the results and the report are, when kept. */
  dir?: string;
  note: string;
}

export async function benchReport(o: BenchReportOptions = {}): Promise<BenchReportResult> {
  const p = loadProtocol(FULL_PROTOCOL);
  const seeds = o.seeds ? p.seeds.slice(0, o.seeds) : p.seeds;
  const cells = expandCells(p)
    .filter((c) => seeds.includes(c.key.seed))
    .map((c) => ({ id: c.id, key: c.key }));
  let root: string;
  if (o.keep) {
    root = resolve(o.keep);
    mkdirSync(root, { recursive: true });
    if (readdirSync(root).length) {
      throw new QcbError('QCB_USAGE', `--keep directory '${root}' is not empty`, {
        key: '--keep',
        value: o.keep,
        fix: 'pass a new or empty directory',
      });
    }
  } else root = mkdtempSync(join(tmpdir(), 'qcb-bench-report-'));
  const results = join(root, 'results');
  const out = join(root, 'report');
  const png = o.png ?? true;
  try {
    const t0 = performance.now();
    await makeResults(results, {
      cells,
      protocol: { name: p.name, file: 'protocols/full.yaml', version: p.version, hash: protocolHash(p) },
      resolved: p as unknown as Record<string, unknown>,
      montages: cells.length,
      montageSize: [1042, 522],
      distinctMontages: 8,
      pretrainSteps: 5000,
      bootstrap: 100,
    });
    const generate = (performance.now() - t0) / 1000;
    const args = [BIN, 'report', '--results', results, '--out', out, '--json', ...(png ? [] : ['--no-png'])];
    const t1 = performance.now();
    const r = spawnSync(process.execPath, args, {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, CI: '1' },
      maxBuffer: 64 * 2 ** 20,
    });
    const wall = (performance.now() - t1) / 1000;
    if (r.status !== 0) {
      throw new QcbError('QCB_INTERNAL', `qcbench report failed on the synthetic results (exit ${r.status})`, {
        value: r.stderr.slice(-2000),
        fix: 'please report this with the output above',
      });
    }
    const summary = JSON.parse(r.stdout) as ReportSummary;
    const mb = (f: string) => statSync(f).size / 2 ** 20;
    const htmlMb = round(mb(join(out, 'index.html')));
    return {
      protocol: 'protocols/full.yaml',
      cells: cells.length,
      seeds,
      montages: existsSync(join(results, 'montages')) ? readdirSync(join(results, 'montages')).length : 0,
      pretrain_records: readdirSync(join(results, 'pretrain')).length,
      png,
      generate_seconds: round(generate),
      report_seconds: round(wall),
      build_seconds: round(summary.seconds),
      target_seconds: REPORT_TARGET_SECONDS,
      meets_target: wall < REPORT_TARGET_SECONDS,
      charts: summary.charts.length,
      files: summary.files.length,
      html_mb: htmlMb,
      html_target_mb: HTML_TARGET_MB,
      meets_html_target: htmlMb <= HTML_TARGET_MB,
      report_mb: round(summary.files.reduce((a, f) => a + mb(join(out, f)), 0)),
      cores: availableParallelism(),
      load_average: round(loadavg()[0]),
      ...(o.keep ? { dir: root } : {}),
      note: 'synthetic results of the full protocol’s size; wall time of a fresh `qcbench report` process, which depends on the machine’s current load',
    };
  } finally {
    if (!o.keep) rmSync(root, { recursive: true, force: true });
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
