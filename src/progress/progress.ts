/**
 * Progress of a long transfer on stderr: a redrawn bar with bytes, rate and
 * ETA when stderr is a terminal, a plain line every so often otherwise (cron
 * mail, log files), and a one-line summary at the end either way.
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

export function formatDuration(milliseconds: number): string {
  const seconds = milliseconds / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
}

export function formatRate(bytes: number, milliseconds: number): string {
  return `${formatBytes(milliseconds > 0 ? (bytes * 1000) / milliseconds : 0)}/s`;
}

export interface ProgressOptions {
  /** What moves, e.g. "backup-push base_000000010000000000000004". */
  label: string;
  /** Expected bytes, if known. */
  total?: number;
  /** The total is an estimate (shown with "~", never exceeded by the bar). */
  estimated?: boolean;
  output?: NodeJS.WriteStream;
  /** Seconds between plain lines when the output is not a terminal. */
  plainIntervalSeconds?: number;
  now?: () => number;
}

const BAR_REDRAW_MS = 200;
const BAR_WIDTH = 24;

export class Progress {
  private readonly options: Required<Omit<ProgressOptions, 'total' | 'estimated'>> & Pick<ProgressOptions, 'total' | 'estimated'>;
  private readonly startedAt: number;
  private readonly timer: NodeJS.Timeout;
  private readonly interactive: boolean;
  private bytes = 0;
  private drawn = false;

  constructor(options: ProgressOptions) {
    this.options = { output: process.stderr, plainIntervalSeconds: 10, now: Date.now, ...options };
    this.startedAt = this.options.now();
    this.interactive = Boolean(this.options.output.isTTY);
    const period = this.interactive ? BAR_REDRAW_MS : this.options.plainIntervalSeconds * 1000;
    this.timer = setInterval(() => this.report(), period).unref();
  }

  get elapsedMs(): number {
    return this.options.now() - this.startedAt;
  }

  advance(bytes: number): void {
    this.bytes += bytes;
  }

  /** What the bar or a plain line says right now. */
  status(): string {
    const elapsed = this.elapsedMs;
    const { total, estimated } = this.options;
    const rate = formatRate(this.bytes, elapsed);
    if (!total) return `${formatBytes(this.bytes)}, ${rate}`;
    const fraction = Math.min(this.bytes / total, estimated ? 0.99 : 1);
    const eta = this.bytes > 0 && fraction < 1 ? `, ETA ${formatDuration((elapsed / this.bytes) * Math.max(total - this.bytes, 0))}` : '';
    return `${formatBytes(this.bytes)} of ${estimated ? '~' : ''}${formatBytes(total)} (${Math.floor(fraction * 100)}%), ${rate}${eta}`;
  }

  private report(): void {
    const { output, label, total, estimated } = this.options;
    if (!this.interactive) {
      output.write(`${label}: ${this.status()}\n`);
      return;
    }
    let line = `${label} ${this.status()}`;
    if (total) {
      const filled = Math.round(Math.min(this.bytes / total, estimated ? 0.99 : 1) * BAR_WIDTH);
      line = `${label} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${this.status()}`;
    }
    const columns = output.columns ?? 80;
    output.write(`\r\x1b[K${line.slice(0, columns - 1)}`);
    this.drawn = true;
  }

  /** Stops reporting and clears the bar; `summary`, if given, is printed as the final line. */
  finish(summary?: string): void {
    clearInterval(this.timer);
    const { output } = this.options;
    if (this.drawn) output.write('\r\x1b[K');
    if (summary) output.write(`${summary}\n`);
  }
}

/** "1.20 GiB (312.4 MiB compressed, 3.9x) in 12.3 s, 99.8 MiB/s" */
export function transferSummary(uncompressed: number, compressed: number, milliseconds: number): string {
  const ratio = compressed > 0 ? `, ${(uncompressed / compressed).toFixed(1)}x` : '';
  return `${formatBytes(uncompressed)} (${formatBytes(compressed)} compressed${ratio}) in ${formatDuration(milliseconds)}, ${formatRate(uncompressed, milliseconds)}`;
}
