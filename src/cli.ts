/**
 * walship's entry point: reads the command line (the plain archive_command
 * forms without commander), loads the configuration, runs the command and
 * maps failures to its exit code. The command table (commands/definitions.ts)
 * holds no command code, so --help needs none; each command module is
 * imported only when it runs, which keeps archive_command's start-up cost low.
 */
import type { Command } from 'commander';
import { type CommandDefinition, commands, ENVIRONMENT_HELP, GLOBAL_WALG_FLAGS, type WalgFlag } from './commands/definitions.ts';
import { loadConfig } from './config/config.ts';
import { readLogging } from './config/settings.ts';
import { refuseUnhonouredSettings } from './config/walg-settings.ts';
import { CHECK_EXIT_CODES, verdictLine } from './checks/verdict.ts';
import { ConfigError, describeError, ExitCode, WalshipError } from './errors.ts';
import { log } from './log/logger.ts';
import { VERSION } from './version.ts';

interface Selected {
  definition: CommandDefinition;
  args: string[];
  options: Record<string, unknown>;
}

const CONFIG_OPTION: [flags: string, description: string] = ['--config <file>', 'configuration file (JSON or YAML) with WAL-G setting names'];

const isRefused = (flag: WalgFlag): flag is Extract<WalgFlag, { refusedBecause: string }> => 'refusedBecause' in flag;

function buildProgram(commander: typeof import('commander'), onSelect: (selected: Selected) => void): Command {
  const program = new commander.Command('walship')
    .description('PostgreSQL WAL archiving and restore, WAL-G style, in one executable')
    .version(`walship ${VERSION}`, '-v, --version', 'print the version and exit')
    .option(...CONFIG_OPTION)
    .addHelpText('after', ENVIRONMENT_HELP)
    .showSuggestionAfterError()
    // Options before the command are the program's, after it the command's: WAL-G's backup-push -v is --verify, not --version.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`walship: ${text.replace(/^error: /, '')}`) });
  const walgFlagOption = (flag: WalgFlag) =>
    new commander.Option(flag.flags, isRefused(flag) ? 'WAL-G flag, refused' : `WAL-G flag, accepted: ${flag.ignoredBecause}`).hideHelp(isRefused(flag));
  for (const flag of GLOBAL_WALG_FLAGS) program.addOption(walgFlagOption(flag).hideHelp());

  for (const definition of commands) {
    const command = program
      .command(definition.name, { hidden: definition.hidden ?? false })
      .description(definition.summary)
      .addHelpText('after', `\nExamples:\n${definition.examples.map((example) => `  ${example}`).join('\n')}\n`)
      .addHelpText('after', definition.notes ? `${definition.notes}\n` : '')
      .exitOverride()
      .action((...actionArgs: unknown[]) => {
        // A variadic argument ("name...") comes as an array of its own.
        const args = actionArgs.slice(0, definition.arguments.length).flat() as string[];
        const commandObject = actionArgs.at(-1) as Command;
        onSelect({ definition, args, options: commandObject.opts() });
      });
    for (const [name, description, optional] of definition.arguments) command.argument(optional ? `[${name}]` : `<${name}>`, description);
    for (const [flags, description] of [...(definition.options ?? []), CONFIG_OPTION]) command.option(flags, description);
    for (const flag of definition.walgFlags ?? []) command.addOption(walgFlagOption(flag));
    for (const flag of GLOBAL_WALG_FLAGS) command.addOption(walgFlagOption(flag).hideHelp());
  }
  return program;
}

interface Invocation {
  selected: Selected;
  configPath: string | undefined;
}

/**
 * The plain forms archive_command and restore_command use
 * (`[--config FILE] wal-push %p`, `wal-fetch %f %p`) are read directly:
 * loading commander would cost every WAL file milliseconds. Anything else
 * (options, --help, mistakes) goes through commander.
 */
function parsePlainInvocation(argv: string[]): Invocation | undefined {
  let index = 0;
  let configPath: string | undefined;
  while (argv[index] === '--config' && index + 1 < argv.length) {
    configPath = argv[index + 1];
    index += 2;
  }
  const definition = commands.find((candidate) => candidate.name === argv[index]);
  const args = argv.slice(index + 1);
  if (!definition?.hotPath || args.length !== definition.arguments.length) return undefined;
  if (args.some((arg) => arg.startsWith('-'))) return undefined;
  return { selected: { definition, args, options: {} }, configPath };
}

/**
 * Parses with commander. Returns an exit code instead when commander has
 * already answered: --help and --version (0), or a usage error it reported.
 */
async function parseWithCommander(argv: string[]): Promise<Invocation | number> {
  const commander = await import('commander');
  let selected: Selected | undefined;
  const program = buildProgram(commander, (choice) => (selected = choice));
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof commander.CommanderError) return error.exitCode;
    throw error;
  }
  if (!selected) {
    program.outputHelp();
    return ExitCode.failure;
  }
  const { config: commandConfig, ...options } = selected.options as { config?: string };
  return { selected: { ...selected, options }, configPath: commandConfig ?? program.opts<{ config?: string }>().config };
}

/** The key commander keeps a flag's value under: --target-storage is targetStorage. */
function optionKey(flags: string): string {
  return /--([\w-]+)/.exec(flags)![1]!.replace(/-(\w)/g, (_, letter: string) => letter.toUpperCase());
}

/** Refuses the WAL-G flags walship cannot honour, and drops the others, which change nothing. */
function applyWalgFlags({ definition, options }: Selected): void {
  for (const flag of [...(definition.walgFlags ?? []), ...GLOBAL_WALG_FLAGS]) {
    const key = optionKey(flag.flags);
    const value = options[key];
    if (value === undefined) continue;
    delete options[key];
    const shown = `${/--[\w-]+/.exec(flag.flags)![0]}${typeof value === 'string' ? ` ${value}` : ''}`;
    if (!isRefused(flag)) log.debug(`WAL-G's ${shown} accepted and ignored: ${flag.ignoredBecause}`);
    else if (value === flag.honoured?.value) log.debug(`WAL-G's ${shown} accepted: ${flag.honoured.because}`);
    else throw new ConfigError(`WAL-G's ${shown} is not supported yet: ${flag.refusedBecause}`);
  }
}

/** The command named on the command line, before it is parsed: for the exit code of a failure to parse it. */
const named = commands.find((definition) => process.argv.slice(2).includes(definition.name));
/** The command being run, once the command line is read. */
let running: CommandDefinition | undefined;

function failureExitCode(): number {
  const command = running ?? named;
  if (command?.check) return CHECK_EXIT_CODES.UNKNOWN;
  return command?.failureExitCode?.() ?? ExitCode.failure;
}

/** A check command that could not check says so in its verdict line, where a monitoring system reads it. */
function reportUnknown(reason: string): void {
  if ((running ?? named)?.check) process.stdout.write(`${verdictLine('UNKNOWN', reason)}\n`);
}

async function main(argv: string[]): Promise<number> {
  try {
    const invocation = parsePlainInvocation(argv) ?? (await parseWithCommander(argv));
    // A usage error in wal-fetch must not read as "not available" in recovery.
    if (typeof invocation === 'number') {
      if (invocation === ExitCode.ok) return invocation;
      reportUnknown('the command line is not valid: see --help');
      return named?.check ? CHECK_EXIT_CODES.UNKNOWN : (named?.failureExitCode?.() ?? invocation);
    }
    const { selected, configPath } = invocation;
    running = selected.definition;
    const config = loadConfig({ configPath });
    const logging = readLogging(config);
    log.configure({ ...logging, command: selected.definition.name });
    log.debug(`walship ${VERSION} on Node ${process.version}`, { v8Flags: process.execArgv.join(' ') });
    refuseUnhonouredSettings(config);
    applyWalgFlags(selected);
    const module = await selected.definition.load();
    return await module.run({ config }, selected.args, selected.options);
  } catch (error) {
    const command = running ?? named;
    if (command) log.configure({ command: command.name });
    log.error(describeError(error));
    if (!(error instanceof WalshipError) && error instanceof Error && error.stack) log.debug(error.stack);
    reportUnknown(describeError(error));
    return failureExitCode();
  }
}

// If the event loop ever drains before main() settles, the process must not
// exit 0: for archive_command that would report an unfinished upload as
// durable. It exits with the command's failure code instead, as any failure.
let settled = false;
process.on('exit', (code) => {
  if (settled || code !== 0) return;
  process.stderr.write('walship: internal error: the command stopped before it finished\n');
  process.exitCode = failureExitCode();
});

main(process.argv.slice(2)).then(
  (code) => {
    settled = true;
    process.exit(code);
  },
  (error: unknown) => {
    settled = true;
    process.stderr.write(`walship: ${describeError(error)}\n`);
    process.exit(ExitCode.failure);
  },
);
