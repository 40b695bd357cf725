/** What every command module provides to the CLI. */
import type { Config } from '../config/config.ts';

export interface CommandContext {
  config: Config;
}

export interface CommandModule {
  /** Runs the command with its positional arguments and options; resolves to the exit code. */
  run(context: CommandContext, args: string[], options: Record<string, unknown>): Promise<number>;
}
