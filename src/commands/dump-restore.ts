/** dump-restore NAME [DB] [--globals]: pg_restore (and psql for the globals) fed from a dump set in storage. */
import { resolve } from 'node:path';
import { restoreDump } from '../dump/restore.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import { dumpClient } from '../postgres/dump.ts';
import { libpqEnvironment } from '../postgres/programs.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { interruptible } from '../util/process.ts';
import type { CommandContext } from './command.ts';

interface RestoreOptions {
  targetDbname?: string;
  create?: boolean;
  clean?: boolean;
  table?: string[];
  schema?: string[];
  jobs?: string;
  globals?: boolean;
  pgBin?: string;
}

function readJobs(text: string | undefined): number {
  if (text === undefined) return 1;
  const jobs = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(jobs) || jobs < 1 || jobs > 64) throw new ConfigError(`--jobs ${text} is invalid: expected a whole number from 1 to 64`);
  return jobs;
}

export async function run({ config }: CommandContext, [name, database]: string[], options: RestoreOptions): Promise<number> {
  const jobs = readJobs(options.jobs);
  const client = dumpClient(libpqEnvironment(config), options.pgBin && resolve(options.pgBin));
  const storage = await openStorage(storageSpecFrom(config));
  const done = await interruptible((signal) =>
    restoreDump({
      storage,
      client,
      name: name!,
      database,
      target: options.targetDbname,
      create: options.create ?? false,
      clean: options.clean ?? false,
      tables: options.table ?? [],
      schemas: options.schema ?? [],
      jobs,
      globals: options.globals ?? false,
      signal,
    }),
  );
  for (const line of done) process.stderr.write(`dump-restore: ${line}\n`);
  return ExitCode.ok;
}
