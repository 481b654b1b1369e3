import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/** Log levels in increasing severity. */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  /** JSON-lines file that receives every record (all levels). */
  file?: string;
  /** Minimum level printed on the terminal (default info; `QCBENCH_LOG_LEVEL` overrides). */
  level?: Level;
  /** Print nothing on the terminal (tests set `QCBENCH_LOG_QUIET=1`). */
  quiet?: boolean;
  /** Stream for readable lines (default stderr, so stdout stays clean for `--json`). */
  stream?: NodeJS.WriteStream;
}

/**
 * Logger: one JSON object per line to a file (machine-readable, for results directories) and short readable lines
 * on the terminal. Fields are free-form key/values that both outputs carry.
 */
export class Logger {
  private file?: string;
  private readonly level: number;
  private readonly quiet: boolean;
  private readonly stream: NodeJS.WriteStream;
  /** Active progress line, cleared before a log line is printed on a TTY. */
  progress?: Progress;

  constructor(opts: LoggerOptions = {}) {
    const envLevel = process.env.QCBENCH_LOG_LEVEL as Level | undefined;
    this.level = LEVELS[opts.level ?? (envLevel && envLevel in LEVELS ? envLevel : 'info')];
    this.quiet = opts.quiet ?? process.env.QCBENCH_LOG_QUIET === '1';
    this.stream = opts.stream ?? process.stderr;
    if (opts.file) this.setFile(opts.file);
  }

  /** Starts (or switches) the JSON-lines file, creating its directory. */
  setFile(file: string): void {
    mkdirSync(dirname(file), { recursive: true });
    this.file = file;
  }

  log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
    if (this.file) {
      const rec = { time: new Date().toISOString(), level, msg, ...fields };
      appendFileSync(this.file, `${JSON.stringify(rec)}\n`);
    }
    if (this.quiet || LEVELS[level] < this.level) return;
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    const prefix = level === 'info' ? '' : `${level}: `;
    this.progress?.clearLine();
    this.stream.write(`${prefix}${msg}${extra ? `  ${extra}` : ''}\n`);
    this.progress?.redraw();
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log('error', msg, fields);
  }

  /** Starts a progress display for a long stage (live on a TTY, a line every `quietEverySec` in CI / pipes). */
  startProgress(label: string, total: number, unit = 'items'): Progress {
    this.progress = new Progress(this, label, total, unit);
    return this.progress;
  }
}

/**
 * Progress of one long stage: done/total, rate and ETA. On a TTY it redraws one line in place (at most 10×/s);
 * elsewhere (CI, pipes, `CI=true`) it prints a plain line at most every 30 s, so logs stay short.
 */
export class Progress {
  private done = 0;
  private readonly start = Date.now();
  private lastDraw = 0;
  private readonly live: boolean;
  private status = '';

  constructor(
    private readonly logger: Logger,
    readonly label: string,
    readonly total: number,
    readonly unit: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly quietEverySec = 30,
  ) {
    this.live =
      Boolean(stream.isTTY) && !process.env.CI && process.env.QCBENCH_LOG_QUIET !== '1' && process.env.TERM !== 'dumb';
  }

  /** Advances by `n` units; `status` is a short note (current stage, loss). */
  tick(n = 1, status?: string): void {
    this.done += n;
    if (status !== undefined) this.status = status;
    const now = Date.now();
    if (this.live) {
      if (now - this.lastDraw > 100 || this.done >= this.total) {
        this.lastDraw = now;
        this.redraw();
      }
    } else if (now - this.lastDraw > this.quietEverySec * 1000 && process.env.QCBENCH_LOG_QUIET !== '1') {
      this.lastDraw = now;
      this.logger.debug(this.text());
      if (this.lastDraw - this.start > this.quietEverySec * 1000) this.stream.write(`${this.text()}\n`);
    }
  }

  /** Rate in units per second since start. */
  rate(): number {
    const s = (Date.now() - this.start) / 1000;
    return s > 0 ? this.done / s : 0;
  }

  text(): string {
    const r = this.rate();
    const eta = r > 0 && this.total > this.done ? (this.total - this.done) / r : 0;
    const pct = this.total > 0 ? ((100 * this.done) / this.total).toFixed(0) : '?';
    return `${this.label}: ${this.done}/${this.total} ${this.unit} (${pct}%) ${r.toFixed(1)} ${this.unit}/s ETA ${formatDuration(eta)}${this.status ? `  ${this.status}` : ''}`;
  }

  clearLine(): void {
    if (this.live) this.stream.write('\r\x1b[2K');
  }

  redraw(): void {
    if (this.live) this.stream.write(`\r\x1b[2K${this.text().slice(0, (this.stream.columns ?? 120) - 1)}`);
  }

  /** Ends the display without a summary: for a stage that failed, which is not done. */
  abandon(): void {
    this.clearLine();
    if (this.logger.progress === this) this.logger.progress = undefined;
  }

  /** Ends the display and logs a summary line with the elapsed time and rate. */
  finish(msg?: string): void {
    this.clearLine();
    if (this.logger.progress === this) this.logger.progress = undefined;
    const secs = (Date.now() - this.start) / 1000;
    this.logger.info(msg ?? `${this.label}: done`, {
      [this.unit]: this.done,
      seconds: Number(secs.toFixed(1)),
      rate: Number(this.rate().toFixed(2)),
    });
  }
}

/** 3725 → "1h02m", 65 → "1m05s", 4.2 → "4s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) return '0s';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The process-wide logger used by the CLI (commands may point it at a results directory's log file). */
export const logger = new Logger();
