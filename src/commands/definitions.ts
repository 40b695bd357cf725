/**
 * The command table: names, arguments, options, help texts and exit codes of
 * every command, with no command code. The entry point reads it for --help
 * and for the plain archive_command fast path; a command's module is loaded
 * only when it runs.
 */
import { ExitCode } from '../errors.ts';
import { recoveryMode } from '../postgres/recovery.ts';
import type { CommandModule } from './command.ts';

export interface CommandDefinition {
  name: string;
  summary: string;
  arguments: [name: string, description: string, optional?: 'optional'][];
  examples: string[];
  /** Command options as commander flags ("--name <value>", "--flag", "--no-flag") with their help. */
  options?: [flags: string, description: string][];
  /** WAL-G's own flags for this command, taken so that scripts written for WAL-G run unchanged. */
  walgFlags?: WalgFlag[];
  /** Extra help text: the settings the command reads and its exit codes. */
  notes?: string;
  /** Internal commands walship runs itself; left out of --help. */
  hidden?: boolean;
  /** Run once per WAL file: its plain form is read without commander (see parsePlainInvocation). */
  hotPath?: boolean;
  /** The exit code for any failure the command does not handle itself (default 1); also when it fails before its module loads. */
  failureExitCode?(): number;
  /**
   * A check command (src/checks/verdict.ts): a failure it does not handle
   * itself (bad configuration, storage unreachable, bad usage) is UNKNOWN:
   * the verdict line on stdout and exit 3.
   */
  check?: boolean;
  load(): Promise<CommandModule>;
}

/**
 * A WAL-G flag walship has no use for. One that changes nothing here is
 * accepted (and shown in --help); one walship cannot honour is refused with
 * one line, unless it has the one value walship does honour.
 */
export type WalgFlag = { flags: string; ignoredBecause: string } | { flags: string; refusedBecause: string; honoured?: { value: string; because: string } };

const TARGET_STORAGE: WalgFlag = {
  flags: '--target-storage <name>',
  refusedBecause: 'walship has one storage and no failover storages; drop it or pass --target-storage default',
  honoured: { value: 'default', because: 'default is the one storage walship has' },
};

/** WAL-G's global flags, accepted before or after any command. */
export const GLOBAL_WALG_FLAGS: WalgFlag[] = [{ flags: '--turbo', ignoredBecause: 'walship does not throttle, so there is nothing to turn off' }];

export const commands: CommandDefinition[] = [
  {
    name: 'wal-push',
    summary: 'Archive one WAL file (use as archive_command); exit 0 only once it is durable in storage',
    arguments: [['wal_path', 'path of the WAL file, as %p (relative to the data directory)']],
    examples: [
      "archive_command = 'walship wal-push %p'",
      "archive_command = 'walship --config /etc/walship.yaml wal-push %p'",
    ],
    notes: `Look-ahead: when more files wait in archive_status, a background pusher uploads them
ahead of the archiver, WALG_UPLOAD_CONCURRENCY at once (default 16) but at most one more
than the CPUs on file storage and 4 over a network; WALG_UPLOAD_CONCURRENCY=1 or
TOTAL_BG_UPLOADED_LIMIT=0 turns it off. wal-push itself uploads only the file it is given.
Exit codes: 0 the file is durable in storage (or was already stored, identical); 1 any failure.`,
    walgFlags: [TARGET_STORAGE],
    hotPath: true,
    load: () => import('./wal-push.ts'),
  },
  {
    name: 'wal-fetch',
    summary: 'Restore one WAL file (use as restore_command); exit 74 when it is not in the archive',
    arguments: [
      ['wal_name', 'name of the WAL file to restore, as %f'],
      ['destination', 'where to write it, as %p'],
    ],
    examples: [
      "restore_command = 'walship wal-fetch %f %p'",
      'walship wal-fetch 000000010000000000000003 /tmp/000000010000000000000003',
    ],
    notes: `Prefetching: a background prefetcher keeps the next WALG_DOWNLOAD_CONCURRENCY segments
(default 10) downloaded; WALSHIP_PREFETCH=false turns it off.
Exit codes: 0 restored; 74 not in the archive; 255 any other error (PostgreSQL stops
instead of ending recovery early); 1 any other error on a standby (standby.signal).`,
    walgFlags: [TARGET_STORAGE],
    hotPath: true,
    // In targeted recovery an error must stop PostgreSQL, not read as "not available"; a standby retries later.
    failureExitCode: () => (recoveryMode() === 'standby' ? ExitCode.failure : ExitCode.fatalRecoveryError),
    load: () => import('./wal-fetch.ts'),
  },
  {
    name: 'wal-prefetch',
    summary: 'Background prefetcher started by wal-fetch (internal)',
    arguments: [
      ['after', 'the segment recovery asked for last'],
      ['segment_size', 'the WAL segment size in bytes'],
      ['prefetch_directory', 'where prefetched segments are kept'],
    ],
    examples: ['(started by wal-fetch; not for direct use)'],
    hidden: true,
    hotPath: true,
    load: () => import('./wal-prefetch.ts'),
  },
  {
    name: 'wal-push-ahead',
    summary: 'Background look-ahead pusher started by wal-push (internal)',
    arguments: [
      ['wal_directory', "the cluster's pg_wal directory"],
      ['records_directory', 'where look-ahead records are kept'],
    ],
    examples: ['(started by wal-push; not for direct use)'],
    hidden: true,
    hotPath: true,
    load: () => import('./wal-push-ahead.ts'),
  },
  {
    name: 'backup-push',
    summary: 'Take a base backup with pg_basebackup and stream it into storage (the sentinel is written last)',
    arguments: [['data_directory', "the cluster's data directory, as WAL-G takes it: checked against the server's when it shows it", 'optional']],
    options: [
      ['--pg-basebackup <path>', 'the pg_basebackup program to run (default: pg_basebackup on PATH)'],
      ['-p, --permanent', 'mark the backup permanent (kept by retention)'],
      ['--add-user-data <json>', 'JSON (or text) stored with the backup, shown by backup-list --json (default: WALG_SENTINEL_USER_DATA)'],
      ['--json', "print the new backup's description as JSON on stdout"],
    ],
    walgFlags: [
      { flags: '-f, --full', ignoredBecause: "walship's backups are always full" },
      { flags: '-v, --verify', ignoredBecause: 'pg_basebackup verifies page checksums itself and fails the backup on a bad page' },
      { flags: '-s, --store-all-corrupt', ignoredBecause: 'pg_basebackup fails the backup on a bad page' },
      { flags: '-r, --rating-composer', ignoredBecause: "walship splits pg_basebackup's stream in order" },
      { flags: '-c, --copy-composer', ignoredBecause: "walship splits pg_basebackup's stream in order" },
      { flags: '-b, --database-composer', ignoredBecause: "walship splits pg_basebackup's stream in order" },
      { flags: '--without-files-metadata', ignoredBecause: 'walship stores no files metadata' },
      { flags: '--delta-from-name <name>', refusedBecause: 'walship takes full backups only; drop it or keep using WAL-G for this archive' },
      { flags: '--delta-from-user-data <data>', refusedBecause: 'walship takes full backups only; drop it or keep using WAL-G for this archive' },
      TARGET_STORAGE,
    ],
    examples: [
      'PGHOST=/var/run/postgresql walship backup-push',
      'walship backup-push /var/lib/postgresql/15/main   (WAL-G\'s form: refused if the server runs another cluster)',
      "# the postgres user's crontab (crontab -e -u postgres); the README explains each part:",
      '15 2 * * * PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin /usr/bin/flock -n -E 75 /var/log/postgresql/walship-backup-push.log /usr/local/bin/walship --config /etc/walship.yaml backup-push >>/var/log/postgresql/walship-backup-push.log 2>&1 || echo "walship backup-push failed with exit $? (75: an earlier run still holds the lock); see /var/log/postgresql/walship-backup-push.log"',
      'walship backup-push --pg-basebackup /usr/lib/postgresql/15/bin/pg_basebackup --add-user-data \'{"reason":"before upgrade"}\'',
    ],
    notes: `Connection: the libpq settings PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGDATABASE
(from the environment or the config file). The server needs archive_mode on.
Settings: WALG_TAR_SIZE_THRESHOLD (part size, default 1 GiB), WALG_UPLOAD_CONCURRENCY
(parts uploaded at once, default 16), WALG_COMPRESSION_METHOD, WALG_COMPRESSION_LEVEL.
Exit codes: 0 the backup and its sentinel are durable in storage; 1 failure (no sentinel
written, the partial upload removed).`,
    load: () => import('./backup-push.ts'),
  },
  {
    name: 'backup-fetch',
    summary: 'Restore a base backup into a directory and set up recovery from the archive',
    arguments: [
      ['destination', 'the new data directory (created mode 0700; must be empty)'],
      ['backup_name', 'a name from backup-list, or LATEST'],
    ],
    options: [
      ['--recovery-target-time <timestamp>', 'recover to this time (with a UTC offset, e.g. "2024-05-01 10:00:00+00")'],
      ['--recovery-target-lsn <lsn>', 'recover to this WAL position'],
      ['--recovery-target-xid <xid>', 'recover to this transaction'],
      ['--recovery-target-name <name>', 'recover to this restore point (pg_create_restore_point)'],
      ['--recovery-target-immediate', 'recover only to the end of the backup'],
      ['--recovery-target-action <action>', 'once the target is reached: pause (default), promote or shutdown'],
      ['--standby', 'write standby.signal instead of recovery.signal'],
      ['--archive', 'keep the restored archive settings even with a recovery target (the copy replaces the source)'],
      ['--no-archive', "write archive_mode = 'off', even without a recovery target (the copy must not archive)"],
      ['--no-recovery-config', 'only restore the files, and print the next steps'],
      ['--force', "delete the destination's contents first"],
    ],
    walgFlags: [
      { flags: '--reverse-unpack', ignoredBecause: "it only speeds up restoring WAL-G's delta backups" },
      { flags: '--skip-redundant-tars', ignoredBecause: "it only speeds up restoring WAL-G's delta backups" },
      { flags: '--mask <pattern>', refusedBecause: 'walship restores whole backups only; drop it or keep using WAL-G for this restore' },
      { flags: '--restore-only <names>', refusedBecause: 'walship restores whole backups only; drop it or keep using WAL-G for this restore' },
      { flags: '--restore-spec <file>', refusedBecause: 'walship restores clusters without tablespaces only; drop it or keep using WAL-G for this restore' },
      { flags: '--target-user-data <data>', refusedBecause: "name the backup instead (backup-list --json shows each backup's user_data)" },
      TARGET_STORAGE,
    ],
    examples: [
      'walship backup-fetch /var/lib/postgresql/15/main LATEST',
      'walship backup-fetch /srv/pg/restored LATEST --recovery-target-time "2024-05-01 09:59:00+00" --recovery-target-action promote',
      'walship backup-fetch /srv/pg/copy base_000000010000000000000004 --recovery-target-immediate',
      'walship backup-fetch /var/lib/postgresql/15/main LATEST --recovery-target-time "2024-05-01 09:59:00+00" --archive',
      'walship backup-fetch /var/lib/postgresql/15/replica LATEST --standby',
    ],
    notes: `With a time or LSN target, LATEST means the newest backup that finished before it.
Archiving once promoted: with a recovery target (usually a side copy) backup-fetch writes
archive_mode = 'off' into postgresql.auto.conf, so the copy never archives a new timeline into
the source's archive, unless --archive. Without a target, or with --standby, the restored
archive settings stay, unless --no-archive. archive_mode changes only with a restart: decide
before the server is promoted.
Recovery: restore_command runs this walship with walship-recovery.json (mode 0600, the storage
settings) in the spool, outside the data directory so no pg_basebackup copies the credentials:
<parent of DEST>/.walship-<name of DEST>/, or ~/.local/state/walship/<name>-<hash>/ when that
parent is not writable. The server then finds the archive without any environment.
Settings: WALG_DOWNLOAD_CONCURRENCY (parallel part downloads, default 10), WALSHIP_SPOOL_DIR.
Exit codes: 0 restored, verified and durable; 1 failure (the partial restore is removed).`,
    load: () => import('./backup-fetch.ts'),
  },
  {
    name: 'backup-list',
    summary: 'List the complete backups in storage, newest last',
    arguments: [],
    options: [
      ['--detail', 'more columns: times, LSNs, sizes, host, permanence'],
      ['--pretty', 'a boxed table (with --json: indented JSON)'],
      ['--json', 'JSON on stdout, every field, for scripts'],
    ],
    walgFlags: [TARGET_STORAGE],
    examples: ['walship backup-list', 'walship backup-list --detail --pretty', 'walship backup-list --json'],
    notes: 'Exit codes: 0 listed (also when there are no backups); 1 failure.',
    load: () => import('./backup-list.ts'),
  },
  {
    name: 'backup-mark',
    summary: 'Mark a backup permanent (kept by retention), or impermanent again',
    arguments: [['backup_name', 'a name from backup-list']],
    options: [['-i, --impermanent', 'remove the permanent mark']],
    examples: ['walship backup-mark base_000000010000000000000004', 'walship backup-mark -i base_000000010000000000000004'],
    notes: 'Exit codes: 0 marked; 1 failure (for example, no such backup).',
    load: () => import('./backup-mark.ts'),
  },
  {
    name: 'copy',
    summary: 'Bring copies of the archive up to date: every complete backup and WAL file they lack, checked on arrival',
    arguments: [],
    options: [
      ['-t, --to <file>', "a target's config file (default: each copy WALSHIP_COPIES names)"],
      ['-f, --from <file>', "the source's config file (default: the storage configured, as for every command)"],
      ['--all', 'every complete backup and all WAL (the default)'],
      ['--wal', 'WAL and timeline history files only'],
      ['--backup <name>', 'one backup, and the WAL from its start on'],
      ['-b, --backup-name <name>', "WAL-G's name for --backup"],
      ['-w, --without-history', 'only the WAL each copied backup needs to become consistent (WAL-G\'s flag)'],
      ['--prune', 'also delete at the target what the source no longer holds, of the kinds retention deletes'],
      ['--dry-run', 'say what would be copied and pruned; change nothing'],
      ['--json', 'print each target\'s result as JSON on stdout'],
    ],
    examples: [
      'walship --config /etc/walship.yaml copy                        # to every copy in WALSHIP_COPIES',
      'walship copy --to /etc/walship-s3.yaml --dry-run',
      'walship copy --from /etc/walship.yaml --to /etc/walship-s3.yaml --backup base_000000010000000000000004',
      'walship copy --prune                                           # and follow retention\'s deletions',
      '# nightly, after the backup (the postgres user\'s crontab; the README explains each part):',
      '45 3 * * * /usr/bin/flock -n -E 75 /var/log/postgresql/walship-copy.log /usr/local/bin/walship --config /etc/walship.yaml copy --prune >>/var/log/postgresql/walship-copy.log 2>&1 || echo "walship copy failed with exit $? (75: an earlier run still holds the lock); see /var/log/postgresql/walship-copy.log"',
    ],
    notes: `Copies: WALSHIP_COPIES lists the config files of further storages (comma- or colon-separated),
each with its own prefix and credentials. copy lists each side once, relays what the target lacks
as stored (no recompression), checks every object on arrival (WAL against its recorded CRC-32,
backup parts against the SHA-256 in the sentinel) and writes a backup's sentinel last. It never
replaces an object at the target. Settings: WALG_UPLOAD_CONCURRENCY (objects at once, default 16;
backup parts at most 4).
Exit codes: 0 every target is up to date; 1 failure (a target holds different content under a
name, a source object fails its check, a storage error, bad configuration).`,
    load: () => import('./copy.ts'),
  },
  {
    name: 'wal-copy-ahead',
    summary: 'Background forwarder started by wal-push: WAL to the copies (internal)',
    arguments: [['records_directory', 'where look-ahead records and the copies\' queues are kept']],
    examples: ['(started by wal-push; not for direct use)'],
    hidden: true,
    load: () => import('./wal-copy-ahead.ts'),
  },
];

export const ENVIRONMENT_HELP = `
Configuration (environment variables, or the same keys in --config FILE):
  Storage, exactly one of:
  WALG_FILE_PREFIX          archive directory on a local or mounted file system
  WALG_S3_PREFIX            s3://bucket/path (AWS_REGION, AWS_ENDPOINT, AWS_* credentials)
  WALG_GS_PREFIX            gs://bucket/path (GOOGLE_APPLICATION_CREDENTIALS)
  WALG_AZ_PREFIX            azure://container/path (AZURE_STORAGE_ACCOUNT + key or SAS)
  WALG_STORAGE_MAX_ATTEMPTS, WALG_STORAGE_RETRY_TIME_LIMIT, WALG_STORAGE_REQUEST_TIMEOUT
                            retries and timeouts of cloud requests
  WALG_COMPRESSION_METHOD   zstd (default), brotli or none
  WALG_COMPRESSION_LEVEL    zstd -7..22 (default 1), brotli 0..11 (default 3)
  WALG_PREVENT_WAL_OVERWRITE  refuse to replace different archived content (default true)
  WALG_UPLOAD_CONCURRENCY   uploads at once (default 16): backup-push's parts; the look-ahead
                            pusher's files, at most one more than the CPUs on file storage
                            and 4 over a network (1 turns look-ahead off)
  TOTAL_BG_UPLOADED_LIMIT, PG_READY_RENAME            look-ahead archiving (32, true)
  WALG_DOWNLOAD_CONCURRENCY, WALSHIP_PREFETCH        prefetching in recovery (10, true)
  WALSHIP_COPIES            config files of copies of the archive (walship copy; WAL reaches
                            them in the background after each wal-push)
  WALG_LOG_LEVEL            ERROR, WARNING (default), NORMAL or DEVEL
  WALG_LOG_FORMAT           text (default) or json
  WALG_CONFIG_PATH          config file (JSON or YAML), like --config
WAL-G settings walship cannot honour (encryption, delta backups, failover storages,
other storages ...) make every command refuse to start; speed and logging settings it
does not have are ignored (WALG_LOG_LEVEL=DEVEL names them). The README has the full
reference and lists both.

Exit codes: 0 success, 1 failure, 74 (wal-fetch) not in the archive,
255 (wal-fetch outside standby mode) error that must stop recovery.`;
