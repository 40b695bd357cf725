/**
 * The WAL-G settings walship does not implement, compiled from WAL-G's
 * internal/config/config.go, its storages' setting lists (pkg/storages/*)
 * and its docs.
 *
 * Refused: settings that change what is stored, where, or how safely.
 * Without them walship would quietly do something else (store the archive
 * unencrypted when an OpenPGP key is set, take a full backup instead of a delta), so every command
 * refuses to start. Ignored: settings that only tune speed, logging, or
 * WAL-G commands walship does not have; they change nothing that is stored.
 *
 * WAL-G reads each storage setting under three names (S3_SSE_C,
 * WALG_S3_SSE_C, WALE_S3_SSE_C), and its config file's keys in any case.
 */
import { ConfigError } from '../errors.ts';
import { log } from '../log/logger.ts';
import type { Config } from './config.ts';

interface Refusal {
  message(origin: string): string;
  /** Refused only for values that ask for the feature (`name` as given, in its letter case); any value when absent. */
  refuses?(value: string, config: Config, name: string): boolean;
}

const KEEP_WALG = 'unset it or keep using WAL-G for this archive';

/** `what` names the feature with its verb: "encryption is", "delta backups are". */
function unsupported(what: string, instead: string, fix = KEEP_WALG): Refusal {
  return { message: (origin) => `${what} not supported yet: ${origin} is set, and walship would ${instead}; ${fix}` };
}

const when = (refusal: Refusal, refuses: Refusal['refuses']): Refusal => ({ ...refusal, refuses });

/** Another name for a setting walship reads only as `name`. */
function renamed(name: string): Refusal {
  return { message: (origin) => `walship reads this setting only as ${name}: ${origin} is set, and walship would ignore it; rename it ${name}` };
}

/**
 * A setting walship reads, given in another letter case (WAL-G's config file
 * takes any): walship would ignore it. Refused where ignoring it would store
 * something else, as for the encryption key.
 */
const inOtherCase = (name: string): Refusal => when(renamed(name), (_value, _config, given) => given !== name);

/** The names WAL-G reads a storage setting by. */
const spellings = (name: string): string[] => [name, `WALG_${name}`, `WALE_${name}`];

const isFalse = (value: string) => /^(0|f|false)$/i.test(value.trim());

const LIBSODIUM_INSTEAD = "unset it and use WAL-G's libsodium encryption (WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH) for a new archive, or keep using WAL-G for this one";
const PGP = unsupported('OpenPGP encryption is', 'store the archive unencrypted', LIBSODIUM_INSTEAD);
const KMS = unsupported('KMS encryption is', 'store the archive unencrypted', LIBSODIUM_INSTEAD);
const CUSTOMER_KEY = unsupported('customer-supplied encryption keys are', "store the archive under the store's own keys instead of yours");
const DELTA = unsupported('delta backups are', 'take full backups instead, and could not restore WAL-G delta backups');
const FAILOVER = unsupported('failover storages are', 'use the primary storage only, with no failover');
const OTHER_STORAGE = (kind: string) =>
  unsupported(`${kind} storage is`, 'not use it (it stores only to WALG_FILE_PREFIX, WALG_S3_PREFIX, WALG_GS_PREFIX or WALG_AZ_PREFIX)', 'use one of those, or keep using WAL-G for this archive');

const REFUSED: [names: string[], refusal: Refusal][] = [
  ...['WALG_LIBSODIUM_KEY', 'WALG_LIBSODIUM_KEY_PATH', 'WALG_LIBSODIUM_KEY_TRANSFORM'].map((name): [string[], Refusal] => [[name], inOtherCase(name)]),
  [['WALG_PGP_KEY', 'WALG_PGP_KEY_PATH', 'WALG_PGP_KEY_PASSPHRASE', 'GPG_KEY_ID', 'WALG_GPG_KEY_ID', 'WALE_GPG_KEY_ID'], PGP],
  [['WALG_ENVELOPE_PGP_KEY', 'WALG_ENVELOPE_PGP_KEY_PATH', 'WALG_ENVELOPE_PGP_YC_CSE_KMS_KEY_ID', 'WALG_ENVELOPE_PGP_YC_SERVICE_ACCOUNT_KEY_FILE', 'WALG_ENVELOPE_PGP_YC_ENDPOINT', 'WALG_ENVELOPE_CACHE_EXPIRATION'], PGP],
  [['WALG_CSE_KMS_ID', 'WALG_CSE_KMS_REGION', 'YC_CSE_KMS_KEY_ID', 'YC_SERVICE_ACCOUNT_KEY_FILE'], KMS],
  [[...spellings('S3_SSE_C'), ...spellings('GCS_ENCRYPTION_KEY')], CUSTOMER_KEY],
  [['WALG_DELTA_MAX_STEPS'], when(DELTA, (value) => value.trim() !== '0')],
  [['WALG_DELTA_ORIGIN', 'WALG_DELTA_FROM_NAME', 'WALG_DELTA_FROM_USER_DATA'], DELTA],
  [['WALG_FAILOVER_STORAGES'], FAILOVER],
  [['WALG_TARGET_STORAGE'], when(FAILOVER, (value) => value.trim().toLowerCase() !== 'default')],
  [['WALG_SSH_PREFIX', 'WALE_SSH_PREFIX'], OTHER_STORAGE('SSH')],
  [['WALG_SWIFT_PREFIX', 'WALE_SWIFT_PREFIX'], OTHER_STORAGE('Swift')],
  [['WALG_OSS_PREFIX', 'WALE_OSS_PREFIX'], OTHER_STORAGE('Alibaba Cloud OSS')],
  [['WALG_STORAGE_PREFIX'], unsupported('a storage subfolder is', 'store the archive at the prefix itself', 'append the subfolder to the storage prefix instead (WALG_S3_PREFIX=s3://bucket/path/subfolder)')],
  [['WALE_FILE_PREFIX'], renamed('WALG_FILE_PREFIX')],
  [['WALE_S3_PREFIX'], renamed('WALG_S3_PREFIX')],
  [['WALE_GS_PREFIX'], renamed('WALG_GS_PREFIX')],
  [['WALE_AZ_PREFIX'], renamed('WALG_AZ_PREFIX')],
  ...['S3_SSE', 'S3_SSE_KMS_ID', 'S3_STORAGE_CLASS', 'S3_CA_CERT_FILE'].map((name): [string[], Refusal] => [[name, `WALE_${name}`], renamed(`WALG_${name}`)]),
  [spellings('S3_RETENTION_PERIOD'), when(unsupported('S3 Object Lock retention is', 'store objects without a retention period'), (value) => value.trim() !== '-1')],
  [spellings('S3_REQUEST_ADDITIONAL_HEADERS'), unsupported('extra S3 request headers are', 'send its requests without them')],
  [spellings('GCS_NORMALIZE_PREFIX'), when(unsupported('unnormalized GCS prefixes are', 'trim the extra slashes and look for other object names'), isFalse)],
  [
    spellings('AZURE_ENVIRONMENT_NAME'),
    when(
      unsupported('choosing the Azure cloud by name is', 'connect to the public Azure cloud', 'set AZURE_ENDPOINT_SUFFIX instead (core.chinacloudapi.cn, core.usgovcloudapi.net)'),
      (value, config) => value.trim() !== 'AzurePublicCloud' && config.get('AZURE_ENDPOINT_SUFFIX') === undefined,
    ),
  ],
  [['WALG_FETCH_TARGET_USER_DATA'], unsupported('choosing a backup by its user data is', 'restore the backup named on the command line', "unset it and name the backup (backup-list --json shows each backup's user_data)")],
];

const IGNORED: [names: string[], reason: string][] = [
  [['WALG_NETWORK_RATE_LIMIT', 'WALG_DISK_RATE_LIMIT'], 'walship does not throttle'],
  [
    [
      'WALG_UPLOAD_DISK_CONCURRENCY', 'WALG_UPLOAD_QUEUE', 'WALG_DIRECT_IO', 'WALG_DIRECT_IO_BLOCK_COUNT', 'WALG_USE_RATING_COMPOSER',
      'WALG_USE_COPY_COMPOSER', 'WALG_USE_DATABASE_COMPOSER', 'WALG_WITHOUT_FILES_METADATA', 'WALG_USE_REVERSE_UNPACK', 'WALG_SKIP_REDUNDANT_TARS',
      'WALG_USE_WAL_DELTA', 'WALG_FORCE_WAL_DELTA', 'WALG_ALIVE_CHECK_INTERVAL', 'WALG_STOP_BACKUP_TIMEOUT', 'GOMAXPROCS', 'GODEBUG',
    ],
    "tunes WAL-G's own backup code",
  ],
  [['WALG_ZSTD_LEVEL'], 'walship reads WALG_COMPRESSION_LEVEL'],
  [['WALG_VERIFY_PAGE_CHECKSUMS', 'WALG_STORE_ALL_CORRUPT_BLOCKS'], 'pg_basebackup verifies page checksums itself and fails the backup on a bad page'],
  [['WALG_TAR_DISABLE_FSYNC'], 'walship always fsyncs'],
  [
    [
      'WALG_DOWNLOAD_FILE_RETRIES', ...spellings('S3_MAX_RETRIES'), ...spellings('S3_RANGE_BATCH_ENABLED'), ...spellings('S3_RANGE_MAX_RETRIES'),
      ...spellings('S3_MIN_THROTTLING_RETRY_DELAY'), ...spellings('S3_MAX_THROTTLING_RETRY_DELAY'), ...spellings('GCS_MAX_RETRIES'),
      ...spellings('GCS_CONTEXT_TIMEOUT'), ...spellings('AZURE_TRY_TIMEOUT'),
    ],
    'walship retries by WALG_STORAGE_MAX_ATTEMPTS, WALG_STORAGE_RETRY_TIME_LIMIT and WALG_STORAGE_REQUEST_TIMEOUT',
  ],
  [
    [
      ...spellings('S3_MAX_PART_SIZE'), ...spellings('S3_LOG_LEVEL'), ...spellings('S3_USE_LIST_OBJECTS_V1'), ...spellings('S3_DISABLE_100_CONTINUE'),
      ...spellings('S3_ENABLE_VERSIONING'), ...spellings('S3_DELETE_BATCH_SIZE'), ...spellings('S3_SKIP_VALIDATION'), ...spellings('S3_USE_YC_SESSION_TOKEN'),
      ...spellings('S3_ENDPOINT_SOURCE'), ...spellings('S3_ENDPOINT_PORT'), ...spellings('S3_ENDPOINT_PROTOCOL'), ...spellings('AWS_DUAL_STACK'),
      ...spellings('AZURE_BUFFER_SIZE'), ...spellings('AZURE_MAX_BUFFERS'), ...spellings('AZURE_BLOB_STORE_API_VERSION'), ...spellings('GCS_MAX_CHUNK_SIZE'),
    ],
    "tunes WAL-G's storage clients",
  ],
  [spellings('S3_RETENTION_MODE'), 'applies only with S3_RETENTION_PERIOD'],
  [
    [
      'WALG_FAILOVER_STORAGES_CHECK', 'WALG_FAILOVER_STORAGES_CHECK_TIMEOUT', 'WALG_FAILOVER_STORAGES_CHECK_SIZE', 'WALG_FAILOVER_STORAGES_CACHE_LIFETIME',
      'WALG_FAILOVER_STORAGES_CACHE_EMA_ALIVE_LIMIT', 'WALG_FAILOVER_STORAGES_CACHE_EMA_DEAD_LIMIT', 'WALG_FAILOVER_STORAGES_CACHE_EMA_ALPHA_ALIVE_MAX',
      'WALG_FAILOVER_STORAGES_CACHE_EMA_ALPHA_ALIVE_MIN', 'WALG_FAILOVER_STORAGES_CACHE_EMA_ALPHA_DEAD_MAX', 'WALG_FAILOVER_STORAGES_CACHE_EMA_ALPHA_DEAD_MIN',
    ],
    'applies only with WALG_FAILOVER_STORAGES',
  ],
  [
    ['WALG_LOG_DESTINATION', 'WALG_STATSD_ADDRESS', 'WALG_STATSD_EXTRA_TAGS', 'PROFILE_SAMPLING_RATIO', 'PROFILE_MODE', 'PROFILE_PATH', 'HTTP_LISTEN', 'HTTP_EXPOSE_PPROF', 'HTTP_EXPOSE_EXPVAR'],
    'walship logs to stderr only',
  ],
  [['WALG_PREFETCH_DIR'], 'walship prefetches into its spool (WALSHIP_SPOOL_DIR) or WALSHIP_PREFETCH_DIR'],
  [['WALG_PG_WAL_SIZE', 'WALG_PG_WAL_PAGE_SIZE', 'WALG_PG_BLOCK_SIZE'], 'walship reads sizes from the WAL files'],
  [
    ['WALG_SLOTNAME', 'WALG_DAEMON_WAL_UPLOAD_TIMEOUT', 'WALG_DISABLE_PARTIAL_RESTORE', 'WALG_UPLOAD_WAL_METADATA', 'WALG_SERIALIZER_TYPE', 'PGBACKREST_STANZA'],
    'for WAL-G commands walship does not have',
  ],
];

/** WAL-G settings whose values are nested sections in its config file. */
export const SECTION_SETTINGS = new Set(['WALG_FAILOVER_STORAGES', 'WALG_STATSD_EXTRA_TAGS']);

const refusals = new Map(REFUSED.flatMap(([names, refusal]) => names.map((name) => [name, refusal] as const)));
const ignoredReasons = new Map(IGNORED.flatMap(([names, reason]) => names.map((name) => [name, reason] as const)));

/**
 * Refuses to start when a WAL-G setting walship cannot honour is set (in the
 * environment or the config file), before anything touches storage. At
 * DEVEL, one line names the settings accepted and ignored.
 */
export function refuseUnhonouredSettings(config: Config): void {
  const ignored: string[] = [];
  for (const name of config.givenNames()) {
    const key = name.toUpperCase();
    const refusal = refusals.get(key);
    const reason = ignoredReasons.get(key);
    const value = refusal || reason ? config.get(name) : undefined;
    if (value === undefined) continue;
    if (refusal && (!refusal.refuses || refusal.refuses(value, config, name))) throw new ConfigError(refusal.message(config.origin(name)));
    if (reason) ignored.push(`${name} (${reason})`);
  }
  if (ignored.length > 0) log.debug(`WAL-G settings accepted and ignored: ${ignored.join(', ')}`);
}

/** Every setting refused or ignored, for the check that the README lists them all. */
export function unhonouredSettingNames(): { refused: string[]; ignored: string[] } {
  return { refused: [...refusals.keys()], ignored: [...ignoredReasons.keys()] };
}
