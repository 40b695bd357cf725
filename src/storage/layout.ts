/** WAL-G's object layout under the storage prefix, and walship's own records beside it. */
import { type Codec, objectKey } from '../compress/codec.ts';

export const WAL_FOLDER = 'wal_005';
export const BACKUP_FOLDER = 'basebackups_005';
/** walship's own records about the archive, outside WAL-G's folders. */
const WALSHIP_FOLDER = 'walship';
/** Which cluster the archive belongs to (src/archive/identity.ts). */
export const ARCHIVE_IDENTITY_KEY = `${WALSHIP_FOLDER}/archive.json`;

/** The key of WAL file `name` stored with `codec`: wal_005/<name>.<ext>. */
export function walObjectKey(name: string, codec: Codec): string {
  return objectKey(`${WAL_FOLDER}/${name}`, codec);
}
