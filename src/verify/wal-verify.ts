/**
 * wal-verify's two checks, with WAL-G's names and statuses:
 *   integrity: every segment recovery needs from the oldest backup to the
 *     cluster's current position, along its timeline history, is stored
 *     (archive/wal-integrity.ts says which are found, delayed, uploading, lost);
 *   timeline: the cluster's timeline is the highest in storage, so no other
 *     cluster (a promoted copy, an old primary) archives a newer one here.
 * The position comes from the server when the libpq settings reach one;
 * without one, integrity runs to the newest segment stored, and says so.
 */
import { ArchiveCatalog } from '../archive/catalog.ts';
import { archivedSegment, type IntegrityWindows, namedRuns, type SegmentStatus, type StatusRun, walIntegrity } from '../archive/wal-integrity.ts';
import { plainTable } from '../util/table.ts';
import { type CheckResult, type CheckState, type Finding, summarize, worstState } from '../checks/verdict.ts';
import { describeError } from '../errors.ts';
import { formatLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { queryWalPosition, type ServerWalPosition } from '../postgres/wal-position.ts';
import type { Storage } from '../storage/storage.ts';

export const WAL_CHECKS = ['integrity', 'timeline'] as const;
export type WalCheck = (typeof WAL_CHECKS)[number];

/** How to reach the server: psql and the libpq environment, or why there is no way. */
export type ServerAccess = { psql: string; env: NodeJS.ProcessEnv } | { unavailable: string };

export interface WalVerifySettings {
  storage: Storage;
  checks: readonly WalCheck[];
  windows: IntegrityWindows;
  server: ServerAccess;
}

const SERVER_TIMEOUT_MS = 60_000;

type Position = { from: 'server'; server: ServerWalPosition } | { from: 'storage'; reason: string };

export async function verifyWal(settings: WalVerifySettings): Promise<CheckResult> {
  const [catalog, position] = await Promise.all([ArchiveCatalog.load(settings.storage), askServer(settings.server)]);
  const results: { check: WalCheck; state: CheckState; findings: Finding[]; details: string[]; json: unknown }[] = [];
  if (settings.checks.includes('integrity')) results.push({ check: 'integrity', ...checkIntegrity(catalog, position, settings.windows) });
  if (settings.checks.includes('timeline')) results.push({ check: 'timeline', ...checkTimeline(catalog, position) });
  const findings = results.flatMap((result) => result.findings.map((finding) => ({ ...finding, message: `${result.check}: ${finding.message}` })));
  const { state, summary } = summarize(findings, results.map((result) => `${result.check}: ${result.findings[0]!.message}`).join('; '));
  return {
    state,
    summary,
    details: results.flatMap((result) => result.details),
    json: Object.fromEntries(results.map((result) => [result.check, { status: result.state, ...(result.json as object) }])),
  };
}

async function askServer(server: ServerAccess): Promise<Position> {
  if ('unavailable' in server) return { from: 'storage', reason: server.unavailable };
  try {
    return { from: 'server', server: await queryWalPosition(server.psql, server.env, SERVER_TIMEOUT_MS) };
  } catch (error) {
    return { from: 'storage', reason: `no server reached (${describeError(error)})` };
  }
}

function checkIntegrity(catalog: ArchiveCatalog, position: Position, windows: IntegrityWindows) {
  const { wal } = catalog;
  const timeline = position.from === 'server' ? position.server.timeline : (wal.namedTimelines().at(-1) ?? 1);
  const through = position.from === 'server' ? segmentNumberOfLsn(position.server.lsn, catalog.segmentSize) - 1n : undefined;
  const archivedThrough = position.from === 'server' ? archivedSegment(catalog, timeline, position.server.lastArchivedWal) : undefined;
  const integrity = walIntegrity(catalog, { timeline, through, archivedThrough, windows });
  // The first and last segments checked, named on the timelines recovery reads them from.
  const [first, last] = [integrity.runs[0], integrity.runs.at(-1)];
  const firstName = first && wal.segmentName(first.timeline, first.first);
  const lastName = last && wal.segmentName(last.timeline, last.last);
  const upTo =
    position.from === 'server'
      ? `the server's position ${formatLsn(position.server.lsn)} on timeline ${timeline}${position.server.inRecovery ? ' (replayed, on a standby)' : ''}, last archived ${position.server.lastArchivedWal ?? 'none'}`
      : `the newest segment stored on timeline ${timeline}'s history: ${position.reason}`;

  const findings: Finding[] = [];
  const missing = (status: SegmentStatus) => integrity.runs.filter((run) => run.status === status);
  const lost = integrity.counts.MISSING_LOST;
  const pending = integrity.counts.MISSING_DELAYED + integrity.counts.MISSING_UPLOADING;
  if (lost > 0) findings.push({ state: 'CRITICAL', message: `${plural(lost, 'WAL segment')} lost: ${namedRuns(wal.segmentName.bind(wal), missing('MISSING_LOST'))}` });
  if (pending > 0) {
    const runs = [...missing('MISSING_UPLOADING'), ...missing('MISSING_DELAYED')].sort((a, b) => (a.first < b.first ? -1 : 1));
    findings.push({ state: 'WARNING', message: `${plural(pending, 'WAL segment')} not in storage yet (delayed or uploading): ${namedRuns(wal.segmentName.bind(wal), runs)}` });
  }
  const history = historyFinding(catalog, timeline);
  if (history) findings.push(history);
  if (!integrity.from) findings.push({ state: 'WARNING', message: `storage holds neither a backup nor WAL on timeline ${timeline}'s history: nothing to recover from` });
  if (findings.length === 0) {
    findings.push({ state: 'OK', message: `${plural(integrity.counts.FOUND, 'WAL segment')} from ${integrity.from?.backup ?? firstName ?? '-'} to ${lastName ?? '-'} in storage` });
  }
  const start = integrity.from && (integrity.from.backup ? `the start of ${integrity.from.backup}, the oldest backup on timeline ${timeline}'s history` : 'the oldest segment stored (no backup is on the history)');
  const details = [
    `integrity: ${worstState(findings.map((finding) => finding.state))}: ${start ? `from ${start} to ${upTo}` : `nothing to check up to ${upTo}`}`,
    ...(integrity.runs.length > 0 ? plainTable(integrity.runs.map((run) => runRow(wal.segmentName.bind(wal), run))).split('\n').map((line) => `  ${line}`) : []),
  ];
  return {
    state: worstState(findings.map((finding) => finding.state)),
    findings,
    details,
    json: {
      details: integrity.runs.map((run) => ({
        timeline_id: run.timeline,
        start_segment: wal.segmentName(run.timeline, run.first),
        end_segment: wal.segmentName(run.timeline, run.last),
        segments_count: Number(run.last - run.first + 1n),
        status: run.status,
      })),
      counts: integrity.counts,
      from: integrity.from && { backup: integrity.from.backup ?? null, segment: firstName ?? null },
      through_segment: lastName ?? null,
      position:
        position.from === 'server'
          ? { source: 'server', lsn: formatLsn(position.server.lsn), timeline, in_recovery: position.server.inRecovery, last_archived_wal: position.server.lastArchivedWal ?? null }
          : { source: 'storage', timeline, reason: position.reason },
      windows: { delayed: windows.delayed, uploading: windows.uploading },
    },
  };
}

/** A timeline past 1 needs its history file, or recovery cannot follow it. */
function historyFinding(catalog: ArchiveCatalog, timeline: number): Finding | undefined {
  if (timeline === 1 || catalog.timelines().hasHistory(timeline)) return undefined;
  const file = `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
  // The history file is archived first at promotion: with the timeline's segments stored, it is lost.
  return catalog.wal.runs(timeline).length > 0
    ? { state: 'CRITICAL', message: `${file} is not in storage: recovery cannot follow timeline ${timeline}` }
    : { state: 'WARNING', message: `${file} is not in storage yet` };
}

function checkTimeline(catalog: ArchiveCatalog, position: Position) {
  const highest = catalog.wal.namedTimelines().at(-1);
  if (position.from === 'storage') {
    const message = `cannot tell the cluster's timeline: ${position.reason}; the highest in storage is ${highest ?? 'none'}`;
    return { state: 'UNKNOWN' as const, findings: [{ state: 'UNKNOWN' as const, message }], details: [`timeline: UNKNOWN: ${message}`], json: { details: { current_timeline_id: null, highest_storage_timeline_id: highest ?? null } } };
  }
  const current = position.server.timeline;
  let finding: Finding;
  if (highest === undefined) finding = { state: 'WARNING', message: `storage holds no WAL yet; the cluster is on timeline ${current}` };
  else if (current === highest) finding = { state: 'OK', message: `the cluster's timeline ${current} is the highest in storage` };
  else if (current < highest) {
    finding = {
      state: 'CRITICAL',
      message: `the cluster is on timeline ${current}, but storage holds timeline ${highest}: another server promoted from this cluster archives here; archive this cluster, or that one, into another prefix`,
    };
  } else finding = { state: 'WARNING', message: `the cluster is on timeline ${current}, which is not in storage yet (the highest there is ${highest})` };
  return {
    state: finding.state,
    findings: [finding],
    details: [`timeline: ${finding.state}: ${finding.message}`],
    json: { details: { current_timeline_id: current, highest_storage_timeline_id: highest ?? null } },
  };
}

function runRow(segmentName: (timeline: number, segment: bigint) => string, run: StatusRun): Record<string, string> {
  return { TLI: String(run.timeline), START: segmentName(run.timeline, run.first), END: segmentName(run.timeline, run.last), SEGMENTS: String(run.last - run.first + 1n), STATUS: run.status };
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
