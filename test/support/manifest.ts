/** backup_manifest documents for tests, laid out as PostgreSQL writes them, with a correct Manifest-Checksum. */
import { createHash } from 'node:crypto';

export function backupManifest(files: object[], walRanges: object[] = [{ Timeline: 1, 'Start-LSN': '0/2000028', 'End-LSN': '0/2000100' }]): Buffer {
  const body = [
    '{ "PostgreSQL-Backup-Manifest-Version": 1,',
    '"Files": [',
    files.map((file) => JSON.stringify(file)).join(',\n'),
    '],',
    '"WAL-Ranges": [',
    walRanges.map((range) => JSON.stringify(range)).join(',\n'),
    '],',
    '',
  ].join('\n');
  return Buffer.from(`${body}"Manifest-Checksum": "${createHash('sha256').update(body).digest('hex')}"}\n`);
}
