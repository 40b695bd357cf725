/**
 * Reading a dump set's objects back: each one streamed from storage,
 *   storage.get -> stored SHA-256 -> decompress -> content SHA-256 and size
 * into a file written atomically (dump-fetch), or into pg_restore or psql
 * (dump-restore). The content is the standard pg_dump -Fc file, or the
 * globals SQL, byte for byte.
 */
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { type DumpedObject, type DumpSentinel, dumpedDatabase, dumpEncryption, readDumpSentinel } from '../archive/dumps.ts';
import { dumpObjectExtension, dumpObjectKey } from '../archive/layout.ts';
import { AlreadyExistsError, IntegrityError, NotFoundError, WalshipError } from '../errors.ts';
import type { RunningProgram } from '../postgres/programs.ts';
import { Progress, transferSummary } from '../progress/progress.ts';
import { VerifyStage } from '../stages/checksum.ts';
import { codecForExtension } from '../stages/compress/codec.ts';
import type { Stage, WatchStage } from '../stages/pipeline.ts';
import { contentStages, downloadToFile } from '../stages/transfer.ts';
import type { Storage, StoredObject } from '../storage/storage.ts';

/** One database's dump, or the globals. */
export type DumpPart = { database: string } | { globals: true };

export function dumpedObject(sentinel: DumpSentinel, part: DumpPart): DumpedObject {
  return 'globals' in part ? sentinel.Globals : dumpedDatabase(sentinel, part.database);
}

export function describePart(part: DumpPart): string {
  return 'globals' in part ? 'the globals' : `database "${part.database}"`;
}

export interface OpenedObject {
  stored: StoredObject;
  /** The stages from the stored bytes to the content: verified at the end unless opened with `verify: false`. */
  stages: Stage[];
}

/** Opens a dump set's object; `verify: false` for readers that stop early (the table of contents). */
export async function openDumpObject(storage: Storage, sentinel: DumpSentinel, object: DumpedObject, { verify = true } = {}): Promise<OpenedObject> {
  const key = dumpObjectKey(sentinel.DumpName, object.Object);
  const extension = dumpObjectExtension(object.Object);
  const codec = codecForExtension(extension);
  if (!codec) throw new WalshipError(`${key} is compressed with "${extension}", which walship cannot read`);
  let stored;
  try {
    stored = await storage.get(key);
  } catch (error) {
    if (error instanceof NotFoundError) throw new IntegrityError(`${key} is missing from ${storage.location}: dump set ${sentinel.DumpName} is damaged`);
    throw error;
  }
  const content = contentStages(storage, codec, stored, { verify: false, recorded: dumpEncryption(sentinel) });
  const stages = verify
    ? [
        new VerifyStage({ algorithm: 'sha256', checksum: object.SHA256, size: object.CompressedSize }, key),
        ...content,
        new VerifyStage({ algorithm: 'sha256', checksum: object.ContentSHA256, size: object.UncompressedSize }, `the content of ${key}`),
      ]
    : content;
  return { stored, stages: stages.filter((stage) => stage !== undefined) };
}

/** A watch stage that moves a progress bar. */
export function progressStage(progress: Progress): WatchStage {
  return { name: 'progress', update: (piece) => progress.advance(piece.length), finish: () => undefined };
}

export interface DumpFetchSettings {
  storage: Storage;
  name: string;
  part: DumpPart;
  file: string;
  signal?: AbortSignal;
}

/** dump-fetch: one object as a file, written atomically and durably; an existing file is never replaced. Resolves to a summary line. */
export async function fetchDump(settings: DumpFetchSettings): Promise<string> {
  const sentinel = await readDumpSentinel(settings.storage, settings.name);
  const object = dumpedObject(sentinel, settings.part);
  const what = `${describePart(settings.part)} of ${sentinel.DumpName}`;
  const opened = await openDumpObject(settings.storage, sentinel, object);
  const stop = () => opened.stored.body.destroy(new WalshipError(`dump-fetch was interrupted: ${settings.file} was not written`));
  settings.signal?.addEventListener('abort', stop, { once: true });
  if (settings.signal?.aborted) stop();
  const progress = new Progress({ label: `dump-fetch ${what}`, total: object.UncompressedSize });
  try {
    await downloadToFile(opened.stored, [...opened.stages, progressStage(progress)], settings.file, { createOnly: true });
  } catch (error) {
    if (error instanceof AlreadyExistsError) throw new WalshipError(`${settings.file} already exists: dump-fetch never replaces a file; remove it or choose another name`);
    throw error;
  } finally {
    progress.finish();
    settings.signal?.removeEventListener('abort', stop);
  }
  return `dump-fetch: ${what} into ${settings.file}: ${transferSummary(object.UncompressedSize, object.CompressedSize, progress.elapsedMs)}`;
}

/**
 * Streams `source` into a program's stdin. Its input is closed only once
 * the whole source has been read and verified: when the source fails, the
 * program is stopped first, so it can never take a cut-off stream for the
 * end of a good one. A program that exits early ends the feeding (its exit
 * status says why).
 */
export async function feedProgram(source: AsyncIterable<Buffer>, program: RunningProgram): Promise<void> {
  const input = program.input!;
  let exited = false;
  void program.exited.then(() => (exited = true));
  const closed = once(input, 'close').catch(() => undefined);
  try {
    for await (const piece of source) {
      if (exited || input.destroyed) break;
      if (!input.write(piece)) await Promise.race([once(input, 'drain').catch(() => undefined), closed, program.exited]);
    }
  } catch (error) {
    program.stop();
    await program.exited;
    input.destroy();
    throw error;
  }
  input.end();
}

/** Everything a stream says, as text. */
export async function collectText(stream: Readable): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text;
}
