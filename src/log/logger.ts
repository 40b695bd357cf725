/**
 * One line per event on stderr. PostgreSQL captures the archiver's and the
 * startup process's stderr into its own log, so lines stay short and plain.
 */
export type LogLevel = 'error' | 'warning' | 'notice' | 'info' | 'debug';
export type LogFormat = 'text' | 'json';

/** A notice is news, not a problem, that is worth the server log at the default level, as a warning is (a rare line, such as where a recovery prefetches). */
const severity: Record<LogLevel, number> = { error: 0, warning: 1, notice: 1, info: 2, debug: 3 };

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  command: string;
}

class Logger {
  private options: LoggerOptions;

  constructor(options: LoggerOptions) {
    this.options = options;
  }

  configure(options: Partial<LoggerOptions>): void {
    this.options = { ...this.options, ...options };
  }

  enabled(level: LogLevel): boolean {
    return severity[level] <= severity[this.options.level];
  }

  error(message: string, fields?: Record<string, unknown>): void {
    this.write('error', message, fields);
  }

  warning(message: string, fields?: Record<string, unknown>): void {
    this.write('warning', message, fields);
  }

  notice(message: string, fields?: Record<string, unknown>): void {
    this.write('notice', message, fields);
  }

  info(message: string, fields?: Record<string, unknown>): void {
    this.write('info', message, fields);
  }

  debug(message: string, fields?: Record<string, unknown>): void {
    this.write('debug', message, fields);
  }

  private write(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    const { command, format } = this.options;
    let line: string;
    if (format === 'json') {
      line = JSON.stringify({ time: new Date().toISOString(), level, command, msg: message, ...fields });
    } else {
      const extra = fields
        ? Object.entries(fields).map(([key, value]) => ` ${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join('')
        : '';
      line = `walship ${command}: ${level.toUpperCase()}: ${message}${extra}`;
    }
    process.stderr.write(line + '\n');
  }
}

/** The process-wide logger; the CLI configures it once settings are known. */
export const log = new Logger({ level: 'warning', format: 'text', command: 'walship' });
