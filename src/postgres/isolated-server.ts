/**
 * Settings that start a restored cluster on the production host without
 * letting it touch production: given on the server's command line, they win
 * over the restored postgresql.conf and postgresql.auto.conf, whatever those
 * say. The server listens on no TCP port, only on a socket in its own
 * directory that only its OS user can enter, and reaches nothing outside.
 */
import { join } from 'node:path';

export interface IsolatedServer {
  /** The directory that holds the socket, the authentication files and the log. */
  root: string;
  dataDirectory: string;
  /** From pg_control (control-file.ts recoveryMinimumSettings): recovery needs them at least as high as the source's. */
  recoveryMinimums: Record<string, number>;
}

export const ISOLATED_HBA_FILE = 'pg_hba.conf';
export const ISOLATED_IDENT_FILE = 'pg_ident.conf';
/** Anyone who can reach the socket may connect: only the directory's owner can. */
export const ISOLATED_HBA = 'local all all trust\n';

export function isolatedServerSettings(server: IsolatedServer): Record<string, string | number> {
  return {
    // Reachable only through the socket in its own directory.
    listen_addresses: '',
    unix_socket_directories: server.root,
    hba_file: join(server.root, ISOLATED_HBA_FILE),
    ident_file: join(server.root, ISOLATED_IDENT_FILE),
    // Never the production data directory or pid file, even if the restored configuration names them.
    data_directory: server.dataDirectory,
    external_pid_file: '',
    cluster_name: 'walship-drill',
    // Writes nothing outside: no archiving, no commands, no replication, no waiting for a standby.
    archive_mode: 'off',
    recovery_end_command: '',
    archive_cleanup_command: '',
    primary_conninfo: '',
    primary_slot_name: '',
    synchronous_standby_names: '',
    // Subscriptions would connect to their publishers and consume production's slots.
    max_logical_replication_workers: 0,
    // A server log of its own, in words the drill reads.
    logging_collector: 'off',
    log_destination: 'stderr',
    log_min_messages: 'warning',
    lc_messages: 'C',
    // Modest memory beside production's server, and nothing that fails without production's files.
    shared_buffers: '128MB',
    huge_pages: 'try',
    ssl: 'off',
    autovacuum: 'off',
    // Damaged pages must fail the checks, never be skipped or zeroed.
    zero_damaged_pages: 'off',
    ignore_checksum_failure: 'off',
    ...server.recoveryMinimums,
  };
}
