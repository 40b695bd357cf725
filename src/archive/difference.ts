/**
 * What two archives hold of WAL, side by side, from ONE streamed listing of
 * each side's wal_005/ joined as they come: memory holds one group of keys
 * at a time, whatever the archive's size.
 *
 * The join works on stems: a segment's 24-hex name, which its .partial and
 * .backup files start with too, or a history file's name. Every key of a stem
 * starts with "wal_005/<stem>", so in a listing in key order they come
 * together, whatever their extensions: both sides' keys for a WAL file meet in
 * one group even when they were stored compressed differently.
 */
import { WalshipError } from '../errors.ts';
import type { WalFileName } from '../postgres/wal-name.ts';
import type { ObjectInfo, Storage } from '../storage/storage.ts';
import { classifyKey, WAL_PREFIX } from './layout.ts';

export interface StoredWalObject extends ObjectInfo {
  file: WalFileName;
  extension: string;
}

/** The WAL objects of one stem on each side; one side may hold none. */
export interface WalGroup {
  stem: string;
  source: StoredWalObject[];
  target: StoredWalObject[];
}

/** The stem a WAL file's keys start with. */
function stemOf(file: WalFileName): string {
  return file.kind === 'history' ? file.name : file.name.slice(0, 24);
}

/** One side's WAL objects, grouped by stem, in order; keys under wal_005/ that are no WAL file are skipped. */
async function* walGroups(storage: Storage, empty: boolean): AsyncGenerator<{ stem: string; objects: StoredWalObject[] }> {
  if (empty) return;
  let group: { stem: string; objects: StoredWalObject[] } | undefined;
  for await (const object of storage.list(WAL_PREFIX)) {
    const kind = classifyKey(object.key);
    if (kind.kind !== 'wal') continue;
    const stem = stemOf(kind.file);
    const entry = { ...object, file: kind.file, extension: kind.extension };
    if (group?.stem === stem) {
      group.objects.push(entry);
      continue;
    }
    if (group && stem < group.stem) {
      throw new WalshipError(`the listing of ${storage.location} is not in key order (${object.key} after ${group.stem}): walship cannot compare it`);
    }
    if (group) yield group;
    group = { stem, objects: [entry] };
  }
  if (group) yield group;
}

/**
 * Every stem either side holds, in order, with both sides' objects. A side
 * that a listing of it just showed to hold no WAL (`empty`) is not listed again.
 */
export async function* joinWal(source: Storage, target: Storage, empty: { source?: boolean; target?: boolean } = {}): AsyncGenerator<WalGroup> {
  const sources = walGroups(source, empty.source ?? false);
  const targets = walGroups(target, empty.target ?? false);
  let [left, right] = await Promise.all([sources.next(), targets.next()]);
  while (!left.done || !right.done) {
    if (right.done || (!left.done && left.value.stem < right.value.stem)) {
      yield { stem: left.value!.stem, source: left.value!.objects, target: [] };
      left = await sources.next();
    } else if (left.done || right.value.stem < left.value.stem) {
      yield { stem: right.value.stem, source: [], target: right.value.objects };
      right = await targets.next();
    } else {
      yield { stem: left.value.stem, source: left.value.objects, target: right.value.objects };
      [left, right] = await Promise.all([sources.next(), targets.next()]);
    }
  }
}
