/**
 * The retention plan: which backups `delete` keeps and deletes, and why;
 * which leftover backup folders go; which WAL goes, per timeline. The backup
 * part is a pure function of the backups, the request, the time and the time
 * zone; the WAL part reads the catalog's WAL index. Nothing here touches
 * storage: execute.ts carries a plan out.
 *
 * Whatever the verb (but `everything`), these are kept: permanent backups
 * and the WAL from their start to their finish LSN; the newest complete
 * backup of each cluster; timeline history files; and every WAL segment a
 * kept backup needs for point-in-time recovery from it to the end of the
 * archive, which means every segment from the start of the oldest kept
 * backup on (all timelines: a segment number is a position in the one WAL
 * stream, whatever the timeline). Backups are ordered by finish time, never
 * by name: after pg_upgrade, names start over at timeline 1.
 *
 * Dump sets (`delete --dumps`) get the same verbs and rules, by finish time:
 * permanent ones and the newest are kept; no backup and no WAL is touched.
 */
import type { BackupSentinel } from '../archive/backups.ts';
import type { ArchiveCatalog, IncompleteBackup } from '../archive/catalog.ts';
import type { DrillReportRef } from '../archive/drills.ts';
import type { DumpSentinel } from '../archive/dumps.ts';
import type { SegmentRange, WalRun } from '../archive/wal-index.ts';
import { ConfigError } from '../errors.ts';
import { parseLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { segmentNumberOfName } from '../postgres/wal-name.ts';
import { type Duration, hasRules, type KeepRules, keptByRules, subtractDuration } from './gfs.ts';

/** A backup or a dump set by name, or a time; `retain --after` and `before` take either. */
export type Boundary = { kind: 'set'; name: string } | { kind: 'time'; text: string; epochMs: number };

/** What the verbs ask for. `FULL` and `FIND_FULL` mean the same as nothing: walship has no delta backups. */
export type Selection =
  | { verb: 'retain'; rules: KeepRules; after?: Boundary }
  | { verb: 'before'; boundary: Boundary }
  | { verb: 'everything'; force: boolean }
  | { verb: 'target'; name: string; force: boolean }
  | { verb: 'garbage'; scope: 'all' | 'archives' | 'backups' };

export interface RetentionRequest {
  selection: Selection;
  /** The verb applies to dump sets (`delete --dumps`) instead of backups; then no backup and no WAL is touched. */
  dumps?: boolean;
  /** Point-in-time recovery only from backups that finished within this span; older kept backups keep their own WAL only. */
  pitrWindow?: Duration;
  /** Folders without a sentinel whose newest object is younger than this are left: a backup-push or dump-push may be writing them. */
  incompleteAge: Duration;
}

interface Decision {
  finishTime: number;
  action: 'keep' | 'delete';
  reasons: string[];
}

export interface BackupDecision extends Decision {
  backup: BackupSentinel;
  /** A kept backup whose point-in-time recovery is given up: it stays restorable to its own finish LSN only. */
  toItsEndOnly?: string;
}

export interface DumpDecision extends Decision {
  dump: DumpSentinel;
}

/** A backup folder or a dump set's folder without a sentinel: the leftover of an earlier delete, or an incomplete push. */
export interface FolderDecision {
  name: string;
  objects: number;
  bytes: number;
  newest: Date;
  action: 'delete' | 'leave';
  reason: string;
  /** An earlier delete removed its sentinel: it goes whatever its age. */
  deletionBegun: boolean;
}

/** The WAL of one timeline that goes: stored segments from first to last, but for those a kept backup needs. */
export interface WalDeletion {
  timeline: number;
  first: bigint;
  last: bigint;
  segments: number;
  bytes: number;
  /** The bytes are prorated from runs cut by the plan's bounds: the listing gives a size per run, not per segment. */
  bytesEstimated: boolean;
}

export interface WalPlan {
  /** Why no WAL at all is deleted, if none is. */
  keptBecause?: string;
  /** Every WAL file goes, history files too (`everything`). */
  everything: boolean;
  /** Segments numbered below this go (on every timeline), but for `protected`. */
  below?: bigint;
  /** The first segment kept for point-in-time recovery, and the backup it is for. */
  keptFrom?: { segment: string; backup: string };
  /** Segments kept below `below`: the WAL of permanent backups and of backups restorable to their end only. */
  protected: (SegmentRange & { backup: string })[];
  deletions: WalDeletion[];
  /** History, .partial and .backup files that go. */
  otherFiles: number;
}

export interface RetentionPlan {
  selection: Selection;
  /** A plan over dump sets (`delete --dumps`): `backups` and `folders` are empty, and no WAL goes. */
  dumps: boolean;
  location: string;
  /** The archive's WAL segment size, for segment names. */
  segmentSize: number;
  backups: BackupDecision[];
  folders: FolderDecision[];
  dumpSets: DumpDecision[];
  /** Dump set folders without a sentinel that go or are left (`--dumps`, and `garbage`). */
  dumpFolders: FolderDecision[];
  /** Records of deletions begun earlier whose backup or dump set and folder are gone: removed with the plan. */
  finishedDeletionRecords: string[];
  /** Records of deletions begun earlier whose backup or dump set still has its sentinel (the delete stopped before it): removed. */
  staleDeletionRecords: string[];
  /** Drill reports that go: those of deleted backups drilled long enough ago, but the newest report (archive/drills.ts). */
  drillReports: DrillReportRef[];
  /** Folders without a sentinel that this verb leaves alone (only `garbage` and `everything` remove them). */
  incompleteLeftAlone: number;
  wal: WalPlan;
  notes: string[];
}

export interface PlanContext {
  now: number;
  timeZone: string;
}

/** What the plan says of backups or of dump sets, in its decisions and its refusals. */
export interface SetKind {
  noun: string;
  plural: string;
  list: string;
  mark: string;
  push: string;
  /** Why the newest complete one is always kept. */
  newestKept: string;
}

export const BACKUPS: SetKind = { noun: 'backup', plural: 'backups', list: 'backup-list', mark: 'backup-mark', push: 'backup-push', newestKept: 'so that the archive stays restorable' };
export const DUMP_SETS: SetKind = { noun: 'dump set', plural: 'dump sets', list: 'dump-list', mark: 'dump-mark', push: 'dump-push', newestKept: 'so that every database has a logical copy' };

/** What a decision needs to know of its backup or dump set. */
interface Candidate {
  name: string;
  permanent: boolean;
  /** The system identifier: several clusters may share a prefix. */
  cluster: string;
}

const describeBoundary = (boundary: Boundary) => (boundary.kind === 'set' ? boundary.name : boundary.text);

/**
 * Decides, for every complete backup (oldest first by finish time), keep or
 * delete and why. A request that cannot be honoured safely (an unknown
 * name, a permanent backup without --force or FORCE, the newest backup as
 * a target) is refused with one line, before anything is deleted.
 */
export function planBackups(backups: readonly BackupSentinel[], selection: Selection, context: PlanContext): BackupDecision[] {
  const decisions = backups.map((backup): BackupDecision => ({ backup, finishTime: Date.parse(backup.FinishTime), action: 'keep', reasons: [] }));
  return decide(decisions, ({ backup }) => ({ name: backup.BackupName, permanent: backup.IsPermanent, cluster: backup.SystemIdentifier }), selection, context, BACKUPS);
}

/** The same for dump sets (`delete --dumps`): the same verbs and rules, permanent sets (dump-mark) and the newest one kept. */
export function planDumps(sets: readonly DumpSentinel[], selection: Selection, context: PlanContext): DumpDecision[] {
  const decisions = sets.map((dump): DumpDecision => ({ dump, finishTime: Date.parse(dump.FinishTime), action: 'keep', reasons: [] }));
  return decide(decisions, ({ dump }) => ({ name: dump.DumpName, permanent: dump.IsPermanent, cluster: dump.SystemIdentifier }), selection, context, DUMP_SETS);
}

function decide<D extends Decision>(unordered: D[], candidate: (decision: D) => Candidate, selection: Selection, context: PlanContext, kind: SetKind): D[] {
  const decisions = unordered.sort((a, b) => a.finishTime - b.finishTime || candidate(a).name.localeCompare(candidate(b).name));
  const byName = new Map(decisions.map((decision) => [candidate(decision).name, decision]));
  const unknown = (name: string) => new ConfigError(`${kind.noun} ${name} is not among the complete ${kind.plural}: ${kind.list} shows their names`);
  /** The finish time of the set or the time a boundary names. */
  const boundaryTime = (boundary: Boundary) => {
    if (boundary.kind === 'time') return boundary.epochMs;
    const named = byName.get(boundary.name);
    if (!named) throw unknown(boundary.name);
    return named.finishTime;
  };
  const remove = (decision: D, reason: string) => {
    decision.action = 'delete';
    decision.reasons = [reason];
  };

  switch (selection.verb) {
    case 'retain': {
      if (!hasRules(selection.rules) && !selection.after) throw new ConfigError('delete retain needs a rule: a count, --keep-last/daily/weekly/monthly/yearly/within, or the WALSHIP_RETAIN_* settings');
      const kept = keptByRules(decisions.map((decision) => ({ name: candidate(decision).name, time: decision.finishTime })), selection.rules, context.timeZone);
      const after = selection.after && { time: boundaryTime(selection.after), text: describeBoundary(selection.after) };
      for (const decision of decisions) {
        const reasons = kept.get(candidate(decision).name) ?? [];
        if (after && decision.finishTime >= after.time) reasons.push(`from ${after.text} on`);
        if (reasons.length > 0) decision.reasons = reasons;
        else remove(decision, 'kept by no rule');
      }
      break;
    }
    case 'before': {
      const limit = boundaryTime(selection.boundary);
      const text = describeBoundary(selection.boundary);
      for (const decision of decisions) {
        if (decision.finishTime < limit) remove(decision, `finished before ${text}`);
        else decision.reasons = [`from ${text} on`];
      }
      break;
    }
    case 'everything': {
      const permanent = decisions.filter((decision) => candidate(decision).permanent).map((decision) => candidate(decision).name);
      if (permanent.length > 0 && !selection.force) {
        throw new ConfigError(`delete everything refuses while permanent ${kind.plural} exist (${permanent.join(', ')}): unmark them with ${kind.mark} --impermanent, or add FORCE to delete them too`);
      }
      for (const decision of decisions) remove(decision, selection.force && candidate(decision).permanent ? 'everything FORCE' : 'everything');
      return decisions;
    }
    case 'target': {
      const target = byName.get(selection.name);
      if (!target) throw unknown(selection.name);
      if (candidate(target).permanent && !selection.force) {
        throw new ConfigError(`${kind.noun} ${selection.name} is permanent: unmark it with ${kind.mark} --impermanent first, or add --force to delete it anyway`);
      }
      for (const decision of decisions) decision.reasons = ['not the target'];
      remove(target, 'the target');
      break;
    }
    case 'garbage':
      for (const decision of decisions) decision.reasons = [`complete: garbage keeps every complete ${kind.noun}`];
      break;
  }

  for (const decision of decisions) {
    if (candidate(decision).permanent && !(selection.verb === 'target' && selection.force)) keepFor(decision, 'permanent');
  }
  // The newest of each system identifier.
  const newest = new Map<string, D>();
  for (const decision of decisions) newest.set(candidate(decision).cluster, decision);
  for (const decision of newest.values()) {
    if (selection.verb === 'target' && decision.action === 'delete') {
      throw new ConfigError(`${kind.noun} ${selection.name} is the newest complete ${kind.noun}, which walship always keeps ${kind.newestKept}: take a newer one first, or use delete everything`);
    }
    keepFor(decision, `newest complete ${kind.noun}`);
  }
  return decisions;
}

function keepFor(decision: Decision, reason: string): void {
  if (decision.action === 'delete') decision.reasons = [];
  decision.action = 'keep';
  if (!decision.reasons.includes(reason)) decision.reasons.push(reason);
}

/**
 * Folders without a sentinel, of backups or (with DUMP_SETS) of dump sets.
 * Those an earlier delete began (its record is there, its sentinel gone) are
 * always finished; other ones are removed only by `garbage` (not ARCHIVES)
 * and `everything`, and only once their newest object is older than the
 * limit, so a running push keeps what it uploaded.
 */
export function planFolders(incomplete: readonly IncompleteBackup[], deletionsBegun: ReadonlySet<string>, request: RetentionRequest, now: number, kind = BACKUPS): FolderDecision[] {
  const { selection } = request;
  const removesIncomplete = selection.verb === 'everything' || (selection.verb === 'garbage' && selection.scope !== 'archives');
  const youngerThan = subtractDuration(now, request.incompleteAge);
  return incomplete.flatMap((folder): FolderDecision[] => {
    const described = { name: folder.name, objects: folder.objects, bytes: folder.bytes, newest: folder.newest, deletionBegun: deletionsBegun.has(folder.name) };
    if (described.deletionBegun) return [{ ...described, action: 'delete', reason: 'left by an earlier delete, which removed its sentinel' }];
    if (!removesIncomplete) return [];
    if (folder.newest.getTime() > youngerThan) {
      return [{ ...described, action: 'leave', reason: `no sentinel, but its newest object is younger than ${request.incompleteAge.text}: a ${kind.push} may still be writing it` }];
    }
    return [{ ...described, action: 'delete', reason: `no sentinel: an incomplete ${kind.noun}` }];
  });
}

/** What the WAL part of the plan reads from the catalog. */
export type WalSource = Pick<ArchiveCatalog, 'wal' | 'walNeededBy' | 'backupOrigins' | 'unreadableSentinels'>;

/**
 * The WAL that goes. Nothing, when walship cannot tell what is old: no
 * complete backup, a sentinel it cannot read, or backups of several clusters
 * (whose WAL names collide). Else every segment below the start of the
 * oldest backup kept for point-in-time recovery, but the WAL from start to
 * finish of every other kept backup (permanent ones, and with a PITR window
 * the older ones, which it marks restorable to their end only).
 */
export function planWal(catalog: WalSource, decisions: BackupDecision[], request: RetentionRequest, context: PlanContext): WalPlan {
  const { selection } = request;
  const none = (keptBecause: string): WalPlan => ({ keptBecause, everything: false, protected: [], deletions: [], otherFiles: 0 });
  if (selection.verb === 'target') return none('delete target never deletes WAL');
  if (selection.verb === 'garbage' && selection.scope === 'backups') return none('delete garbage BACKUPS removes backup leftovers only');
  const { wal } = catalog;
  if (selection.verb === 'everything') {
    const deletions = wal.timelines().map((timeline) => deletionWithin(wal.runs(timeline), timeline, 0n, undefined)).filter((deletion) => deletion !== undefined);
    return { everything: true, protected: [], deletions, otherFiles: wal.otherFiles().length };
  }

  const clusters = [...new Set(catalog.backupOrigins().map((origin) => origin.systemIdentifier))];
  if (clusters.length > 1) {
    return none(`backups of ${clusters.length} clusters share this prefix (system identifiers ${clusters.join(', ')}), and WAL names do not tell which cluster wrote a segment: archive each cluster into a prefix of its own`);
  }
  const unreadable = catalog.unreadableSentinels()[0];
  if (unreadable) return none(`the sentinel of ${unreadable.backup} cannot be read (${unreadable.reason}), so walship cannot tell which WAL that backup needs`);
  const kept = decisions.filter((decision) => decision.action === 'keep');
  if (kept.length === 0) return none('there is no complete backup, so walship cannot tell which WAL is old');

  // The newest backup is always restorable to the end of the archive; others while they are not permanent and within the PITR window.
  const windowStart = request.pitrWindow && subtractDuration(context.now, request.pitrWindow);
  const newest = kept.at(-1)!;
  const withPitr = kept.filter((decision) => decision === newest || (!decision.backup.IsPermanent && (windowStart === undefined || decision.finishTime >= windowStart)));
  const oldest = withPitr.reduce((first, decision) => (parseLsn(decision.backup.LSN) < parseLsn(first.backup.LSN) ? decision : first));
  const below = segmentNumberOfLsn(parseLsn(oldest.backup.LSN), wal.segmentSize);
  const protectedRanges: WalPlan['protected'] = [];
  for (const decision of kept) {
    if (parseLsn(decision.backup.LSN) >= parseLsn(oldest.backup.LSN)) continue;
    decision.toItsEndOnly = decision.backup.IsPermanent ? 'permanent: its own WAL is kept' : `finished before the --pitr-window of ${request.pitrWindow!.text}: its own WAL is kept`;
    for (const range of catalog.walNeededBy(decision.backup)) protectedRanges.push({ ...range, backup: decision.backup.BackupName });
  }
  const deletions: WalDeletion[] = [];
  for (const timeline of wal.timelines()) {
    const keptHere = protectedRanges.filter((range) => range.timeline === timeline).sort((a, b) => (a.first < b.first ? -1 : 1));
    let start = 0n;
    const pieces: WalDeletion[] = [];
    for (const range of [...keptHere, { first: below, last: below }]) {
      const end = range.first < below ? range.first : below;
      if (start < end) {
        const piece = deletionWithin(wal.runs(timeline), timeline, start, end - 1n);
        if (piece) pieces.push(piece);
      }
      if (range.last + 1n > start) start = range.last + 1n;
      if (start >= below) break;
    }
    if (pieces.length > 0) deletions.push(joinPieces(pieces));
  }
  const plan: WalPlan = {
    everything: false,
    below,
    keptFrom: { segment: wal.segmentName(oldest.backup.Timeline, below), backup: oldest.backup.BackupName },
    protected: protectedRanges,
    deletions,
    otherFiles: 0,
  };
  plan.otherFiles = wal
    .otherFiles()
    .filter(({ file }) => file.segment !== undefined && walSegmentGoes(plan, file.timeline, segmentNumberOfName(file.segment, wal.segmentSize))).length;
  return plan;
}

/** The stored segments of `runs` from `first` to `last` (undefined: to the end), with their bytes. */
function deletionWithin(runs: readonly WalRun[], timeline: number, first: bigint, last: bigint | undefined): WalDeletion | undefined {
  let deletion: WalDeletion | undefined;
  for (const run of runs) {
    const from = run.first > first ? run.first : first;
    const to = last === undefined || run.last < last ? run.last : last;
    if (from > to) continue;
    const count = Number(to - from + 1n);
    const whole = from === run.first && to === run.last;
    const bytes = whole ? run.bytes : Math.round((run.bytes * count) / Number(run.last - run.first + 1n));
    if (!deletion) deletion = { timeline, first: from, last: to, segments: 0, bytes: 0, bytesEstimated: false };
    deletion.last = to;
    deletion.segments += count;
    deletion.bytes += bytes;
    deletion.bytesEstimated ||= !whole;
  }
  return deletion;
}

function joinPieces(pieces: WalDeletion[]): WalDeletion {
  return pieces.reduce((joined, piece) => ({
    ...joined,
    last: piece.last,
    segments: joined.segments + piece.segments,
    bytes: joined.bytes + piece.bytes,
    bytesEstimated: joined.bytesEstimated || piece.bytesEstimated,
  }));
}

/** Whether the WAL file of segment number `segment` on any timeline goes, by the plan. */
export function walSegmentGoes(plan: WalPlan, timeline: number, segment: bigint): boolean {
  if (plan.everything) return true;
  if (plan.below === undefined || segment >= plan.below) return false;
  return !plan.protected.some((range) => range.timeline === timeline && range.first <= segment && segment <= range.last);
}
