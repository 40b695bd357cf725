/** WAL-G's object layout under the storage prefix. */
import { type Codec, objectKey } from '../compress/codec.ts';

export const WAL_FOLDER = 'wal_005';
export const BACKUP_FOLDER = 'basebackups_005';

/** The key of WAL file `name` stored with `codec`: wal_005/<name>.<ext>. */
export function walObjectKey(name: string, codec: Codec): string {
  return objectKey(`${WAL_FOLDER}/${name}`, codec);
}
