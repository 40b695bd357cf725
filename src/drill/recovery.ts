/**
 * The scratch server's recovery: waited for while the server log shows it
 * progress, and then judged. Where the archive has a gap, PostgreSQL ends
 * recovery at the gap and promotes as if all was well; so the position
 * recovery reached is compared with what the archive held when the drill
 * began (the catalog's reach from the backup along the recovery timeline's
 * history), and stopping short is CRITICAL, naming the first missing segment.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArchiveCatalog, RecoveryReach } from '../archive/catalog.ts';
import { parseHistory } from '../archive/timelines.ts';
import type { CheckState } from '../checks/verdict.ts';
import type { PostgresCluster } from '../postgres/cluster.ts';
import { formatLsn, parseLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { describeRecoveryTarget, type RecoveryTarget } from '../postgres/recovery-settings.ts';
import { RecoveryLog } from '../postgres/server-log.ts';
import { Progress } from '../progress/progress.ts';
import { isRunning } from '../util/process.ts';
import { interrupted } from './scratch.ts';

const POLL_MS = 200;
/** The server writes its pid file as it starts: one still missing after this never started. */
const START_GRACE_MS = 30_000;
/** Recovery that writes no log line for this long is stuck. */
const STALL_MS = 10 * 60_000;

export type RecoveryOutcome = { restoredSegments: number; consistentAt?: bigint } & ({ ready: true } | { ready: false; reason: string; redoDoneAt?: bigint });

/**
 * Waits until the server is promoted, or has stopped, showing the replay's
 * progress on stderr (`expectedSegments`, if known, sizes the bar).
 */
export async function awaitRecovery(cluster: PostgresCluster, options: { segmentSize: number; expectedSegments?: number; signal: AbortSignal }): Promise<RecoveryOutcome> {
  const log = new RecoveryLog(cluster.logFile);
  const total = options.expectedSegments ? options.expectedSegments * options.segmentSize : undefined;
  const progress = new Progress({ label: 'drill: replaying WAL', total, estimated: true });
  const startedAt = Date.now();
  let lastChange = { at: startedAt, restored: 0, consistent: false };
  let seenRunning = false;
  try {
    for (;;) {
      if (options.signal.aborted) throw interrupted();
      const state = await log.read();
      progress.advance((state.restoredSegments - lastChange.restored) * options.segmentSize);
      if (state.restoredSegments !== lastChange.restored || Boolean(state.consistentAt) !== lastChange.consistent) {
        lastChange = { at: Date.now(), restored: state.restoredSegments, consistent: Boolean(state.consistentAt) };
      }
      if (state.ready) return { ready: true, restoredSegments: state.restoredSegments, consistentAt: state.consistentAt };
      const pid = cluster.pid();
      const running = pid !== undefined && isRunning(pid);
      seenRunning ||= running;
      const stopped = seenRunning ? !running : Date.now() - startedAt > START_GRACE_MS;
      if (stopped) {
        const last = await log.read(); // the lines written as it stopped
        const reason = last.fatal ?? `the server stopped: ${cluster.tailLog(5)}`;
        return { ready: false, restoredSegments: last.restoredSegments, consistentAt: last.consistentAt, reason, redoDoneAt: last.redoDoneAt };
      }
      if (Date.now() - lastChange.at > STALL_MS) {
        const reason = `recovery made no progress for ${STALL_MS / 60_000} minutes: ${cluster.tailLog(5)}`;
        return { ready: false, restoredSegments: state.restoredSegments, consistentAt: state.consistentAt, reason };
      }
      await sleep(POLL_MS);
    }
  } finally {
    progress.finish();
  }
}

/** Where a promoted server's recovery ended: the timeline it recovered and the last position replayed. */
export interface RecoveryEnd {
  timeline: number;
  lsn: bigint;
  /** The last replayed transaction's commit time; undefined when none was replayed. */
  lastTransaction?: Date;
}

/**
 * Read from the promoted server: the new timeline's history file, written
 * only into its own pg_wal (archiving is off), names the timeline it
 * recovered; pg_last_wal_replay_lsn() stays at the end of recovery.
 */
export async function readRecoveryEnd(cluster: PostgresCluster, fallbackTimeline: number): Promise<RecoveryEnd> {
  const [walFile = '', replayed = '', lastCommit = ''] = (
    await cluster.sql('SELECT pg_walfile_name(pg_current_wal_lsn()), pg_last_wal_replay_lsn(), extract(epoch FROM pg_last_xact_replay_timestamp())')
  ).split('|');
  const newTimeline = parseInt(walFile.slice(0, 8), 16);
  const historyFile = join(cluster.dataDir, 'pg_wal', `${walFile.slice(0, 8)}.history`);
  const history = await readFile(historyFile, 'utf8').then(
    (text) => parseHistory(text, newTimeline, historyFile),
    // None: the server kept its timeline (it did not recover from the archive), which is then the backup's.
    () => [],
  );
  return {
    timeline: history.at(-1)?.timeline ?? fallbackTimeline,
    lsn: parseLsn(replayed),
    lastTransaction: lastCommit ? new Date(Number(lastCommit) * 1000) : undefined,
  };
}

/** The segment that holds the byte before `lsn` (the last one replayed), named on the timeline that holds it along `timeline`'s history. */
function lastSegmentBefore(catalog: ArchiveCatalog, timeline: number, lsn: bigint): { segment: bigint; name: string } {
  const segment = segmentNumberOfLsn(lsn > 0n ? lsn - 1n : 0n, catalog.segmentSize);
  // A timeline's files start at the segment of its switch point, which PostgreSQL reads from it.
  const owner = catalog.timelines().ancestry(timeline).filter((span) => segmentNumberOfLsn(span.begin, catalog.segmentSize) <= segment).at(-1)?.timeline ?? timeline;
  return { segment, name: catalog.wal.segmentName(owner, segment) };
}

export interface RecoveryJudgement {
  state: CheckState;
  message: string;
  reach: RecoveryReach;
}

/** Whether recovery reached what it should: the target, else the end of the archive without a gap. */
export function judgeRecovery(
  catalog: ArchiveCatalog,
  facts: { fromLsn: bigint; timeline: number; target: RecoveryTarget | undefined; outcome: RecoveryOutcome; end?: RecoveryEnd },
): RecoveryJudgement {
  const { outcome, end, target } = facts;
  const reach = catalog.recoveryReach(end?.timeline ?? facts.timeline, facts.fromLsn);
  const missing = reach.missing && `segment ${reach.missing.name} is missing from the archive, which holds WAL up to ${reach.end!.name}`;
  if (!outcome.ready || !end) {
    const stoppedAt = !outcome.ready && outcome.redoDoneAt !== undefined ? ` at ${formatLsn(outcome.redoDoneAt)}` : '';
    const reason = outcome.ready ? 'the server did not say where recovery ended' : outcome.reason;
    return { state: 'CRITICAL', message: `recovery stopped${stoppedAt}: ${reason}${missing ? `; ${missing}` : ''}`, reach };
  }
  const reached = lastSegmentBefore(catalog, end.timeline, end.lsn);
  const at = `${formatLsn(end.lsn)} (segment ${reached.name}, timeline ${end.timeline})`;
  if (target) {
    if (target.kind === 'lsn' && end.lsn < target.value) return { state: 'CRITICAL', message: `recovery stopped at ${at}, before the target ${describeRecoveryTarget(target)}`, reach };
    return { state: 'OK', message: `recovery reached the target ${describeRecoveryTarget(target)} at ${at}`, reach };
  }
  if (reach.missing && reached.segment < reach.missing.segment) return { state: 'CRITICAL', message: `recovery stopped at ${at}: ${missing}`, reach };
  if (reach.last && reached.segment < reach.last.segment) {
    return { state: 'CRITICAL', message: `recovery stopped at ${at}, before the end of the archive in segment ${reach.last.name}: the segment after ${reached.name} could not be replayed`, reach };
  }
  return { state: 'OK', message: `recovery reached the end of the archive at ${at}`, reach };
}
