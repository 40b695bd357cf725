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
(default 10) downloaded, in an area per archive and server run (the first wal-fetch of a
recovery logs where; WALSHIP_PREFETCH_DIR moves it); WALSHIP_PREFETCH=false turns it off.
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
    name: 'wal-show',
    summary: "Show the archive's timelines: parent, switch point, first and last segment, gaps, backups",
    arguments: [],
    options: [['--json', 'JSON on stdout, every field, for scripts']],
    walgFlags: [TARGET_STORAGE],
    examples: ['walship wal-show', 'walship wal-show --json'],
    notes: `Read from the stored history files and WAL names: one listing of the archive.
A timeline is LOST_SEGMENTS when segments are missing between its first (from its switch
point) and its last stored segment.
Exit codes: 0 shown (also when the archive holds no WAL); 1 failure.`,
    load: () => import('./wal-show.ts'),
  },
  {
    name: 'wal-verify',
    summary: 'Check the archived WAL: every segment from the oldest backup to the server\'s position (integrity), the timeline (a check: exit 0 to 3)',
    arguments: [
      ['check', 'integrity or timeline (default: both)', 'optional'],
      ['other_check', 'the other one', 'optional'],
    ],
    options: [['--json', 'print the full result as JSON after the verdict line']],
    walgFlags: [TARGET_STORAGE],
    examples: [
      'walship wal-verify',
      'walship wal-verify integrity --json',
      'PGHOST=/var/run/postgresql walship --config /etc/walship.yaml wal-verify integrity timeline',
    ],
    notes: `integrity: every segment recovery needs, from the start of the oldest backup on the cluster's
timeline history to the server's current position, is in storage: FOUND, MISSING_DELAYED
(up to WALG_INTEGRITY_MAX_DELAYED_WALS missing past the newest one stored, default 0),
MISSING_UPLOADING (within the newest WALG_UPLOAD_CONCURRENCY segments, default 16), or
MISSING_LOST. A missing segment the server's archiver reported stored
(pg_stat_archiver.last_archived_wal) is lost whatever the windows.
timeline: the cluster's timeline is the highest in storage.
The server is asked with psql and the libpq settings (PGHOST, PGPORT, PGUSER, ...). Without a
server, integrity runs to the newest segment stored and says so, and timeline is UNKNOWN.
Exit codes (monitoring-plugin convention; the first line on stdout is the verdict):
0 OK; 1 WARNING (segments delayed or uploading, the timeline not in storage yet); 2 CRITICAL
(segments lost, a newer timeline in storage); 3 UNKNOWN (could not check: storage unreachable,
bad configuration, no server for the timeline check).`,
    check: true,
    load: () => import('./wal-verify.ts'),
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
      ['backup_name', "a name from backup-list (walship's or WAL-G's full backups), or LATEST"],
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
    name: 'backup-verify',
    summary: 'Check a backup without restoring it: every part, every file against its manifest, the WAL it needs (a check: exit 0 to 3)',
    arguments: [['backup_name', 'a name from backup-list, or LATEST (default)', 'optional']],
    options: [
      ['--all', 'verify every backup, oldest first'],
      ['--json', 'print the full result as JSON after the verdict line'],
    ],
    walgFlags: [TARGET_STORAGE],
    examples: [
      'walship backup-verify',
      'walship backup-verify base_000000010000000000000004 --json',
      'walship --config /etc/walship.yaml backup-verify --all',
      "# the postgres user's crontab: the newest backup every night at 03:45 (the README explains each part):",
      '45 3 * * * PATH=/usr/bin:/bin /usr/bin/flock -n -E 75 /var/log/postgresql/walship-backup-verify.log /usr/local/bin/walship --config /etc/walship.yaml backup-verify >>/var/log/postgresql/walship-backup-verify.log 2>&1 || echo "walship backup-verify: exit $? (1 WARNING, 2 CRITICAL, 3 UNKNOWN, 75: an earlier run still holds the lock); see /var/log/postgresql/walship-backup-verify.log"',
    ],
    notes: `Each part streams from storage (WALG_DOWNLOAD_CONCURRENCY at once, default 10) through what
backup-fetch does to it: its SHA-256 against the sentinel, decompression, the tar walk. Every
file is checked against backup_manifest (size and checksum, none missing or extra) and the
manifest against its own checksum; the WAL from the backup's start to its consistency point
must be in the backup or in the archive. Nothing is written to disk.
Exit codes (monitoring-plugin convention; the first line on stdout is the verdict):
0 OK; 2 CRITICAL (a part is missing or damaged, a file differs from the manifest, WAL is
missing, no such backup); 3 UNKNOWN (could not check: storage unreachable, bad configuration).`,
    check: true,
    load: () => import('./backup-verify.ts'),
  },
  {
    name: 'backup-list',
    summary: "List the complete backups in storage, walship's and WAL-G's, newest last",
    arguments: [],
    options: [
      ['--detail', 'more columns: times, LSNs, sizes, host, permanence, which tool wrote it'],
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
    summary: 'Bring copies of the archive up to date: every complete backup, dump set and WAL file they lack, checked on arrival',
    arguments: [],
    options: [
      ['-t, --to <file>', "a target's config file (default: each copy WALSHIP_COPIES names)"],
      ['-f, --from <file>', "the source's config file (default: the storage configured, as for every command)"],
      ['--all', 'every complete backup and dump set, and all WAL (the default)'],
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
as stored (no recompression; encrypted stays encrypted), checks every object on arrival (WAL
against its recorded CRC-32, decrypted with the source's key; backup parts and dump objects
against the SHA-256 in their sentinel; WAL-G's parts decoded on the side) and writes a backup's
or dump set's sentinel last. It never replaces an object at the target. Settings: WALG_UPLOAD_CONCURRENCY (objects at once, default 16;
backup parts at most 4).
Exit codes: 0 every target is up to date; 1 failure (a target holds different content under a
name, a source object fails its check, a target configured with another encryption key, a
storage error, bad configuration).`,
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
  {
    name: 'encryption-on',
    summary: 'Start encrypting an archive recorded as unencrypted: its new objects, with the configured key (WALG_LIBSODIUM_KEY...)',
    arguments: [],
    options: [['--json', 'print the result as JSON on stdout']],
    examples: [
      'WALG_LIBSODIUM_KEY_PATH=/etc/walship/libsodium.key WALG_LIBSODIUM_KEY_TRANSFORM=hex walship encryption-on',
      'walship --config /etc/walship.yaml encryption-on',
    ],
    notes: `walship/archive.json records how the archive is encrypted, and walship refuses to write into it
otherwise: a host without the key, or with another key, stores nothing, and a host with a key stores
nothing in an archive recorded as unencrypted until this command records the switch. Older objects
stay as they are (readable: their metadata says unencrypted). Hosts that write without the key
stop within a minute with an error naming WALG_LIBSODIUM_KEY. Give every host the key first.
Exit codes: 0 recorded (or already recorded with this key, or no archive.json yet: the first push
records the key); 1 failure (no key configured, the archive encrypted with another key).`,
    load: () => import('./encryption-on.ts'),
  },
  {
    name: 'dump-push',
    summary: 'Take a logical dump set (pg_dump -Fc of each database, and the globals) and stream it into storage (the sentinel is written last)',
    arguments: [],
    options: [
      ['--dbname <database...>', 'dump these databases (repeatable; default: every database but the templates)'],
      ['--all', 'dump every database but the templates (the default)'],
      ['--pg-bin <dir>', "PostgreSQL's client programs: pg_dump, pg_dumpall, pg_restore, psql (default: pg_dump on PATH and the others next to it)"],
      ['-p, --permanent', 'mark the dump set permanent (kept by retention)'],
      ['--add-user-data <json>', 'JSON (or text) stored with the dump set, shown by dump-list --json (default: WALG_SENTINEL_USER_DATA)'],
      ['--json', "print the new dump set's description as JSON on stdout"],
    ],
    examples: [
      'PGHOST=/var/run/postgresql walship dump-push',
      'walship dump-push --dbname shop --dbname crm --add-user-data \'{"reason":"before the migration"}\'',
      "# the postgres user's crontab (crontab -e -u postgres); the README explains each part:",
      '45 3 * * * PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin /usr/bin/flock -n -E 75 /var/log/postgresql/walship-dump-push.log /usr/local/bin/walship --config /etc/walship.yaml dump-push >>/var/log/postgresql/walship-dump-push.log 2>&1 || echo "walship dump-push failed with exit $? (75: an earlier run still holds the lock); see /var/log/postgresql/walship-dump-push.log"',
    ],
    notes: `Each database is dumped with pg_dump -Fc -Z 0 in a snapshot of its own, compressed by walship
(WALG_COMPRESSION_METHOD, WALG_COMPRESSION_LEVEL) and streamed into storage: no local file.
pg_dumpall --globals-only adds the roles and tablespaces; a role that is not a superuser
cannot read passwords, and the roles are then stored without them.
Connection: the libpq settings PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGDATABASE.
Exit codes: 0 the dump set and its sentinel are durable in storage; 1 failure (a pg_dump that
failed, an unknown database: no sentinel written, the uploaded objects removed).`,
    load: () => import('./dump-push.ts'),
  },
  {
    name: 'dump-list',
    summary: 'List the complete dump sets in storage, newest last',
    arguments: [],
    options: [
      ['--detail', 'one row per database: snapshot time, sizes, SHA-256 of the dump file'],
      ['--pretty', 'a boxed table (with --json: indented JSON)'],
      ['--json', 'JSON on stdout, every field, for scripts'],
    ],
    examples: ['walship dump-list', 'walship dump-list --detail --pretty', 'walship dump-list --json'],
    notes: 'Exit codes: 0 listed (also when there are no dump sets); 1 failure.',
    load: () => import('./dump-list.ts'),
  },
  {
    name: 'dump-fetch',
    summary: "Write one database's dump as a standard pg_dump -Fc file (or --globals: the globals SQL), atomically",
    arguments: [
      ['dump_name', 'a name from dump-list'],
      ['database', 'the database whose dump to write (with --globals: the file)'],
      ['file', 'the file to write; never replaced if it exists', 'optional'],
    ],
    options: [['--globals', 'write the globals (roles, tablespaces) as SQL for psql']],
    examples: [
      'walship dump-fetch dump_20240501T021500Z shop /var/tmp/shop.dump && pg_restore -j 4 -d shop_copy /var/tmp/shop.dump',
      'walship dump-fetch dump_20240501T021500Z --globals /var/tmp/globals.sql',
    ],
    notes: `The file appears under its name only once it is complete, verified (SHA-256 of the stored
object and of the content) and fsynced. pg_restore reads it directly, also with -j.
Exit codes: 0 written; 1 failure (no such dump set or database, the file exists, a corrupt object).`,
    load: () => import('./dump-fetch.ts'),
  },
  {
    name: 'dump-restore',
    summary: 'Restore a database (or one table, or the globals) from a dump set with pg_restore, streamed from storage',
    arguments: [
      ['dump_name', 'a name from dump-list'],
      ['database', 'the database of the dump set to restore (leave out with --globals alone)', 'optional'],
    ],
    options: [
      ['--target-dbname <name>', 'restore into this database (default: the one of the same name)'],
      ['--create', 'create the target database first (it must not exist)'],
      ['--clean', "drop the dump's objects in the target before re-creating them (pg_restore --clean --if-exists)"],
      ['--table <name...>', 'restore only these tables (name or schema.name), each with its indexes, constraints, triggers, defaults, owned sequences and grants (repeatable)'],
      ['--schema <name...>', 'restore only the objects of these schemas (repeatable; with --table: look for the tables there)'],
      ['--jobs <n>', 'parallel restore with n jobs, through a temporary file in $TMPDIR (removed afterwards)'],
      ['--globals', "restore the dump set's roles and tablespaces first (psql; roles that exist get their attributes set again)"],
      ['--pg-bin <dir>', "PostgreSQL's client programs (default: pg_dump on PATH and the others next to it)"],
    ],
    examples: [
      'walship dump-restore dump_20240501T021500Z shop --table coupons      # a table dropped by mistake',
      'walship dump-restore dump_20240501T021500Z shop --create --target-dbname shop_0501 --jobs 4',
      'walship dump-restore dump_20240501T021500Z --globals',
    ],
    notes: `A serial restore runs in one transaction: all or nothing. With --jobs it is not one
transaction: a failure can leave part of the dump in the target, and says so. A target the
restore created is dropped again on failure. A whole-database restore into a database that
is not empty is refused unless --clean.
Exit codes: 0 restored; 1 failure (no such dump set, database or table, a target that exists
with --create or is missing without it, pg_restore failed: the error line says what was left).`,
    load: () => import('./dump-restore.ts'),
  },
  {
    name: 'dump-mark',
    summary: 'Mark a dump set permanent (kept by retention), or impermanent again',
    arguments: [['dump_name', 'a name from dump-list']],
    options: [['-i, --impermanent', 'remove the permanent mark']],
    examples: ['walship dump-mark dump_20240501T021500Z', 'walship dump-mark -i dump_20240501T021500Z'],
    notes: 'Exit codes: 0 marked; 1 failure (for example, no such dump set).',
    load: () => import('./dump-mark.ts'),
  },
  {
    name: 'delete',
    summary: 'Delete old backups and the WAL no kept backup needs: WAL-G\'s verbs and GFS rules; a dry run unless --confirm',
    arguments: [
      ['verb', 'retain, before, everything, target or garbage'],
      ['arguments...', 'the verb\'s modifier and argument: retain [FULL|FIND_FULL] [N], before [FIND_FULL] NAME|TIME, everything [FORCE], target [FIND_FULL] NAME, garbage [ARCHIVES|BACKUPS]', 'optional'],
    ],
    options: [
      ['--confirm', 'delete; without it, delete only prints its plan'],
      ['--json', 'print the plan (and what was deleted) as JSON on stdout'],
      ['-a, --after <name|time>', 'retain: also keep that backup and every newer one, or every backup finished at or after that time'],
      ['--keep-last <n>', 'retain: keep the newest N backups'],
      ['--keep-daily <n>', 'retain: keep the newest backup of each of the last N days that have one'],
      ['--keep-weekly <n>', 'retain: ... of each of the last N ISO weeks (Monday to Sunday) that have one'],
      ['--keep-monthly <n>', 'retain: ... of each of the last N months that have one'],
      ['--keep-yearly <n>', 'retain: ... of each of the last N years that have one'],
      ['--keep-within <duration>', 'retain: keep every backup finished within this span before the newest one (e.g. 14d)'],
      ['--pitr-window <duration>', 'keep point-in-time recovery only from backups finished within this span; older kept backups stay restorable to their end (default: from every kept backup)'],
      ['--incomplete-age <duration>', 'garbage, everything: leave backup folders without a sentinel whose newest object is younger than this (default 24h: a backup-push may be writing them)'],
      ['--force', 'target: delete a permanent backup (with --dumps: dump set) too'],
      ['--dumps', 'apply the verb to dump sets (dump-push) instead of backups; no backup and no WAL is touched'],
    ],
    walgFlags: [
      { flags: '--use-sentinel-time', ignoredBecause: 'walship always orders backups by the finish time their sentinel records' },
      { flags: '--target-user-data <data>', refusedBecause: "name the backup instead (backup-list --json shows each backup's user_data)" },
      { flags: '--without-backup-check', refusedBecause: 'walship deletes WAL only when a backup tells which is old; delete everything empties the archive' },
      TARGET_STORAGE,
    ],
    examples: [
      'walship delete retain 7                          (prints the plan: which backups and WAL would go, and why)',
      'walship delete retain 7 --confirm',
      'walship delete retain --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --confirm',
      'walship delete retain FULL 5 --after 2026-11-01T00:00:00Z',
      'walship delete before base_000000010000000000000010 --confirm',
      'walship delete target base_000000010000000000000004 --confirm',
      'walship delete garbage --confirm',
      'walship delete retain 14 --dumps --confirm                 (dump sets: keep the newest 14, and the permanent ones)',
      'walship delete retain --keep-daily 7 --keep-monthly 6 --dumps --confirm',
      'walship delete target dump_20261130T021500Z --dumps --confirm',
      "# nightly in the postgres user's crontab, the rules in the config file (WALSHIP_RETAIN_DAILY: 7 ...); the README explains each part:",
      `15 2 * * * PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin /usr/bin/flock -n -E 75 /var/log/postgresql/walship-nightly.log /bin/sh -c '/usr/local/bin/walship --config /etc/walship.yaml backup-push && /usr/local/bin/walship --config /etc/walship.yaml delete retain --confirm' >>/var/log/postgresql/walship-nightly.log 2>&1 || echo "walship backup-push or delete failed with exit $? (75: an earlier run still holds the lock); see /var/log/postgresql/walship-nightly.log"`,
    ],
    notes: `FULL and FIND_FULL are accepted and mean the same as nothing: walship has no delta backups.
Backups are ordered by the finish time their sentinel records, never by name.
Always kept (but by delete everything): permanent backups (backup-mark) and the WAL from their
start to their finish LSN; the newest complete backup; timeline history files; every WAL segment
from the start of the oldest kept backup on (point-in-time recovery from each kept backup to the
end of the archive, unless --pitr-window). Drill reports go with their backup once 90 days old,
but the newest report of all.
--dumps: the same verbs and rules over dump sets, by finish time; permanent dump sets (dump-mark)
and the newest one are always kept; no backup and no WAL is touched. Without --dumps, dump sets
are left alone, by delete everything too; delete garbage also removes the folders of incomplete
dump sets (no sentinel) older than --incomplete-age.
GFS rules are restic's: each keeps the newest backup of each of its last N days (weeks, months,
years) that have a backup, and the oldest backup while it has periods to spare; rules add up. Days
are taken in the machine's time zone (TZ), like cron. Durations: 36h, 14d, 2w, 6m, 1y.
Settings: WALSHIP_RETAIN_LAST, WALSHIP_RETAIN_DAILY, WALSHIP_RETAIN_WEEKLY, WALSHIP_RETAIN_MONTHLY,
WALSHIP_RETAIN_YEARLY, WALSHIP_RETAIN_WITHIN (the rules of a bare "delete retain"),
WALSHIP_PITR_WINDOW, WALSHIP_INCOMPLETE_BACKUP_AGE (24h).
Exit codes: 0 the plan printed, and with --confirm carried out; 1 failure: bad input (nothing
deleted) or a storage error (deleting stopped at once; every listed backup stays restorable, and
running it again finishes the job).`,
    load: () => import('./delete.ts'),
  },
  {
    name: 'drill',
    summary: 'Restore drill: restore a backup into a scratch server, recover it, check it, throw it away (a check: exit 0 to 3)',
    arguments: [['backup_name', 'a name from backup-list, or LATEST (default)', 'optional']],
    options: [
      ['--recovery-target-time <timestamp>', 'recover to this time (with a UTC offset, e.g. "2024-05-01 10:00:00+00") instead of the end of the archive'],
      ['--recovery-target-lsn <lsn>', 'recover to this WAL position'],
      ['--recovery-target-name <name>', 'recover to this restore point (pg_create_restore_point)'],
      ['--scratch <dir>', 'make the scratch directory in DIR (default: the system temp directory, $TMPDIR or /tmp)'],
      ['--pg-bin <dir>', "PostgreSQL's programs (default: those of the backup's version, /usr/lib/postgresql/NN/bin, or PATH)"],
      ['--check-sql <file>', 'SQL statements that must each return a single true value (\\c DATABASE lines switch databases)'],
      ['--keep', 'keep the restored cluster, stopped, and print how to start and remove it'],
      ['--dump [name]', 'drill a dump set instead: NAME from dump-list, or LATEST (the default); restored into a new server, then the same checks'],
      ['--json', 'print the full report as JSON after the verdict line'],
    ],
    examples: [
      'sudo -u postgres walship --config /etc/walship.yaml drill',
      'walship drill LATEST --check-sql /etc/walship/drill-checks.sql',
      'walship drill base_000000010000000000000004 --recovery-target-time "2024-05-01 09:59:00+00" --json',
      'walship drill --dump                              (the newest dump set)',
      'walship drill --dump dump_20240501T021500Z --check-sql /etc/walship/drill-checks.sql',
      "# the postgres user's crontab: a drill every Sunday at 04:30 (the README explains each part):",
      '30 4 * * 0 PATH=/usr/bin:/bin /usr/bin/flock -n -E 75 /var/log/postgresql/walship-drill.log /usr/local/bin/walship --config /etc/walship.yaml drill --check-sql /etc/walship/drill-checks.sql >>/var/log/postgresql/walship-drill.log 2>&1 || echo "walship drill failed with exit $? (1 WARNING, 2 CRITICAL, 3 UNKNOWN, 75: an earlier run still holds the lock); see /var/log/postgresql/walship-drill.log"',
    ],
    notes: `The backup is restored as backup-fetch restores it, into a new directory made in --scratch,
and started on a Unix socket in that directory with no TCP port, archive_mode off, and
restore_command = this walship's wal-fetch. It replays the archive to its end (or the target)
and is promoted inside the scratch directory. Recovery that stops short of what the archive
holds is CRITICAL. Then: every database accepts a connection, amcheck's bt_index_check passes
on every B-tree index, every table reads (pg_dumpall), and each --check-sql statement returns
true. The report is stored under walship/drills/ (with its attempt's record, the drill's only writes to storage);
backup-list --detail and --json show each backup's last drill. The scratch server is stopped
and its directory removed, also on failure and on SIGINT or SIGTERM, unless --keep.
Run it as the PostgreSQL OS user (it refuses root), with as much free space in --scratch as
the backup's size.
--dump: a new cluster is made with initdb (data page checksums on) in --scratch and started
the same way; the dump set's globals and every database are restored with dump-restore's
code (each object's SHA-256 checked), then the same checks run. Its report is stored under
walship/drills/ as a dump drill (dump-list --detail and --json show each set's last drill).
The programs are those of the dump's server version (initdb, pg_restore, ...).
Exit codes (monitoring-plugin convention; the first line on stdout is the verdict):
0 OK; 1 WARNING (the report could not be stored); 2 CRITICAL (the backup or dump set does not restore,
recover to the end of the archive or the target, or pass a check); 3 UNKNOWN (could not
check: storage unreachable, bad configuration, no space, no PostgreSQL programs, interrupted).`,
    check: true,
    load: () => import('./drill.ts'),
  },
  {
    name: 'status',
    summary: 'Are my backups OK? Backups, failed attempts, the recovery window, drills, the archiver, storage use (a check: exit 0 to 3)',
    arguments: [],
    options: [
      ['--json', 'print the full result as JSON after the verdict line'],
      ['--prometheus <file>', "write the figures in Prometheus's text format to FILE, atomically (node_exporter's textfile collector); - prints them alone on stdout"],
      ['--max-backup-age <duration>', 'CRITICAL when the newest backup is older (default 26h; WALSHIP_MAX_BACKUP_AGE)'],
      ['--max-archive-lag <duration>', "CRITICAL when archiving is further behind the server (default 15m; WALSHIP_MAX_ARCHIVE_LAG)"],
      ['--max-drill-age <duration>', 'CRITICAL when the last restore drill is older (default 8d; WALSHIP_MAX_DRILL_AGE)'],
      ['--max-dump-age <duration>', 'CRITICAL when the newest dump set is older (default 26h, checked only when the archive has dump sets or this is given; WALSHIP_MAX_DUMP_AGE)'],
      ['--max-copy-lag <duration>', 'WARNING when a copy lacks something older, CRITICAL past four times it (default 1h; WALSHIP_MAX_COPY_LAG)'],
    ],
    walgFlags: [TARGET_STORAGE],
    examples: [
      'walship status',
      'walship status --json',
      'walship status --max-backup-age 50h --max-drill-age 15d',
      "# Nagios/Icinga: command_line  sudo -u postgres /usr/local/bin/walship --config /etc/walship.yaml status",
      "# node_exporter's textfile collector, every 5 minutes from the postgres user's crontab (the README explains each part):",
      '*/5 * * * * PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin /usr/bin/flock -n -E 75 /var/log/postgresql/walship-status.log /usr/local/bin/walship --config /etc/walship.yaml status --prometheus /var/lib/prometheus/node-exporter/walship.prom >>/var/log/postgresql/walship-status.log 2>&1 || [ $? -le 3 ] || echo "walship status could not run (75: an earlier run still holds the lock); see /var/log/postgresql/walship-status.log"',
    ],
    notes: `One listing of the storage and, when the libpq settings (PGHOST, PGPORT, PGUSER, ...) reach a
server, one query of pg_stat_archiver, and one listing of each copy WALSHIP_COPIES names (30 seconds
at most each). CRITICAL: no backup, the newest older than --max-backup-age,
the last backup-push (or dump-push) attempt failed or never ended, WAL segments missing between
the oldest backup and the newest segment (wal-verify's integrity logic), archive_command failing
(its last failure newer than its last success), archiving behind by more than --max-archive-lag,
the last drill not OK or older than --max-drill-age, the newest dump set too old, a copy lagging
by more than four times --max-copy-lag. WARNING: no drill yet, the newest backup never drilled,
the last delete, drill or copy attempt failed, objects stored unencrypted although a key is
configured, a copy lagging by more than --max-copy-lag or unreachable, 3-2-1 not holding (two
storages with the newest backup and the WAL since it, one not a file storage on the host).
Durations: a number and a unit, s m h d (90s, 15m, 26h, 8d, 1d12h).
Exit codes (monitoring-plugin convention; the first line on stdout is the verdict, but with
--prometheus -, where stdout holds the metrics alone and the verdict goes to stderr):
0 OK; 1 WARNING; 2 CRITICAL; 3 UNKNOWN (could not check: storage unreachable, bad configuration;
--prometheus FILE then says walship_status 3).`,
    check: true,
    load: () => import('./status.ts'),
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
  WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH (a file), WALG_LIBSODIUM_KEY_TRANSFORM
                            encrypt the archive as WAL-G does (transform none, base64 or hex)
  WALG_UPLOAD_CONCURRENCY   uploads at once (default 16): backup-push's parts; the look-ahead
                            pusher's files, at most one more than the CPUs on file storage
                            and 4 over a network (1 turns look-ahead off)
  TOTAL_BG_UPLOADED_LIMIT, PG_READY_RENAME            look-ahead archiving (32, true)
  WALG_DOWNLOAD_CONCURRENCY, WALSHIP_PREFETCH        prefetching in recovery (10, true)
  WALSHIP_COPIES            config files of copies of the archive (walship copy; WAL reaches
                            them in the background after each wal-push)
  WALSHIP_RETAIN_LAST, _DAILY, _WEEKLY, _MONTHLY, _YEARLY, _WITHIN
                            the rules of a bare "delete retain" (see delete --help)
  WALSHIP_MAX_BACKUP_AGE, _ARCHIVE_LAG, _DRILL_AGE, _DUMP_AGE
                            status's thresholds (26h, 15m, 8d, 26h; see status --help)
  WALG_LOG_LEVEL            ERROR, WARNING (default), NORMAL or DEVEL
  WALG_LOG_FORMAT           text (default) or json
  WALG_CONFIG_PATH          config file (JSON or YAML), like --config
WAL-G settings walship cannot honour (OpenPGP or KMS encryption, delta backups,
failover storages, other storages ...) make every command refuse to start; speed and
logging settings it does not have are ignored (WALG_LOG_LEVEL=DEVEL names them). The
README has the full reference and lists both.

Exit codes: 0 success, 1 failure, 74 (wal-fetch) not in the archive,
255 (wal-fetch outside standby mode) error that must stop recovery. Checks (wal-verify,
backup-verify, drill, status): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.`;
