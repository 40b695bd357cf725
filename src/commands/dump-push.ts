/** dump-push [--dbname DB ...|--all]: a logical dump set (pg_dump per database and the globals) streamed into storage. */
import { resolve } from 'node:path';
import { recordAttempt } from '../archive/attempts.ts';
import { ArchiveIdentity } from '../archive/identity.ts';
import { readCompression, readUserData } from '../config/settings.ts';
import { dumpJson } from '../dump/list.ts';
import { pushDumpSet } from '../dump/push.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import { dumpClient } from '../postgres/dump.ts';
import { libpqEnvironment } from '../postgres/programs.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { interruptible } from '../util/process.ts';
import type { CommandContext } from './command.ts';

interface PushOptions {
  dbname?: string[];
  all?: boolean;
  pgBin?: string;
  permanent?: boolean;
  addUserData?: string;
  json?: boolean;
}

export async function run({ config }: CommandContext, _args: string[], options: PushOptions): Promise<number> {
  if (options.all && options.dbname) throw new ConfigError('--all and --dbname contradict each other: give --dbname for some databases, or --all (the default) for every one');
  const compression = readCompression(config);
  const client = dumpClient(libpqEnvironment(config), options.pgBin && resolve(options.pgBin));
  const spec = storageSpecFrom(config);
  const storage = await openStorage(spec);
  // Ctrl-C or a service manager's SIGTERM stops pg_dump and removes the partial upload.
  const push = () => interruptible((signal) =>
    pushDumpSet({
      storage,
      compression,
      client,
      databases: options.dbname ?? 'all',
      identity: new ArchiveIdentity(storage, spec.prefixSetting),
      permanent: options.permanent ?? false,
      userData: readUserData(config, options.addUserData),
      signal,
    }),
  );
  const sentinel = await recordAttempt(storage, 'dump-push', push);
  if (options.json) process.stdout.write(`${JSON.stringify(dumpJson(sentinel))}\n`);
  return ExitCode.ok;
}
