/** dump-fetch NAME DB FILE | NAME --globals FILE: one database's pg_dump -Fc file, or the globals SQL, written atomically. */
import { resolve } from 'node:path';
import { fetchDump } from '../dump/fetch.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import { openStorage } from '../storage/open.ts';
import { storageSpecFrom } from '../storage/spec.ts';
import { interruptible } from '../util/process.ts';
import type { CommandContext } from './command.ts';

export async function run({ config }: CommandContext, [name, database, file]: string[], options: { globals?: boolean }): Promise<number> {
  const [part, destination] = options.globals
    ? [{ globals: true } as const, file === undefined ? database : undefined]
    : [{ database: database! }, file];
  if (destination === undefined) {
    throw new ConfigError(options.globals ? 'dump-fetch NAME --globals FILE takes no database: the globals belong to the whole cluster' : 'dump-fetch NAME DB FILE: name the file to write');
  }
  const storage = await openStorage(storageSpecFrom(config));
  const summary = await interruptible((signal) => fetchDump({ storage, name: name!, part, file: resolve(destination), signal }));
  process.stderr.write(`${summary}\n`);
  return ExitCode.ok;
}
