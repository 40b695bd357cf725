/**
 * backup-verify: proves a backup restorable without restoring it. Each part
 * streams from storage, in parallel, through what backup-fetch does to it
 * (stored-part.ts: SHA-256 against the sentinel, decompression) into a tar
 * walk that checksums every member as it goes by; nothing touches the disk.
 * The manifest is the archive's last member, so the members' sizes and
 * checksums are kept (memory grows with the number of files, not their
 * size) and compared with it at the end: every file, no file missing or
 * extra, the manifest's own checksum. Then the WAL from the backup's start
 * to its consistency point must be in the backup (pg_wal/) or the archive.
 */
import type { BackupPart, BackupSentinel } from '../archive/backups.ts';
import { readSentinel, requireBackupName } from '../archive/backups.ts';
import { ArchiveCatalog } from '../archive/catalog.ts';
import { classifyKey, walKey } from '../archive/layout.ts';
import { checkLinkTarget, safeMemberPath, UnsafeArchiveError } from '../backup/extract.ts';
import { openPart } from '../backup/stored-part.ts';
import { TarParser, type TarEvent } from '../backup/tar.ts';
import { type CheckResult, type CheckState, type Finding, summarize, worstState } from '../checks/verdict.ts';
import { describeError, IntegrityError, NotFoundError, WalshipError } from '../errors.ts';
import { type BackupManifest, fileChecksum, type FileChecksum, type ManifestChecksumAlgorithm, parseManifest, type WalRange } from '../postgres/backup-manifest.ts';
import { formatLsn, segmentNumberOfLsn } from '../postgres/lsn.ts';
import { parseWalLongPageHeader, WAL_LONG_HEADER_SIZE } from '../postgres/wal-header.ts';
import { parseWalFileName, segmentName } from '../postgres/wal-name.ts';
import { formatBytes, Progress, transferSummary } from '../progress/progress.ts';
import { Pipeline } from '../stages/pipeline.ts';
import type { Storage } from '../storage/storage.ts';
import { forEachConcurrently } from '../util/concurrency.ts';

export type BackupChoice = { name: string } | 'LATEST' | 'ALL';

export interface BackupVerifySettings {
  storage: Storage;
  backups: BackupChoice;
  /** Parts read at once (WALG_DOWNLOAD_CONCURRENCY). */
  downloadConcurrency: number;
}

/** walship's backups ask pg_basebackup for CRC-32C (postgres/basebackup.ts); another algorithm costs a second pass. */
const EXPECTED_ALGORITHM: ManifestChecksumAlgorithm = 'CRC32C';
const MANIFEST = 'backup_manifest';
const MAX_MANIFEST_BYTES = 1 << 30;
const DEFAULT_SEGMENT_SIZE = 16 << 20;
/** Problems named per backup; the rest are counted. */
const NAMED_PROBLEMS = 10;
/** The WAL pg_basebackup fetched into pg_wal/ (segments, history files): outside the manifest, which lists their archive_status files. */
const isFetchedWal = (path: string) => path.startsWith('pg_wal/') && path.indexOf('/', 'pg_wal/'.length) < 0 && parseWalFileName(path.slice('pg_wal/'.length)) !== undefined;

interface BackupReport {
  backup: string;
  state: CheckState;
  problems: Finding[];
  files: number;
  bytes: number;
  milliseconds: number;
  algorithm: ManifestChecksumAlgorithm | undefined;
  wal: { segment: string; where: 'backup' | 'archive' | 'missing' }[];
}

export async function verifyBackups(settings: BackupVerifySettings): Promise<CheckResult> {
  const chosen = await chooseBackups(settings.storage, settings.backups);
  if ('problem' in chosen) return { state: 'CRITICAL', summary: chosen.problem, json: { backups: [], status: 'CRITICAL', problem: chosen.problem } };
  const reports: BackupReport[] = [];
  for (const sentinel of chosen.sentinels) reports.push(await verifyBackup(settings, sentinel));
  const findings = reports.flatMap((report) => report.problems.map((problem) => ({ ...problem, message: `${report.backup}: ${problem.message}` })));
  const okSummary =
    reports.length === 1
      ? `${reports[0]!.backup}: ${reports[0]!.files} files match backup_manifest (${formatBytes(reports[0]!.bytes)} read); ${walSummary(reports[0]!)}`
      : `${reports.length} backups verified: every file matches its backup_manifest, and the WAL each needs is stored`;
  const { state, summary } = summarize(findings, okSummary);
  return {
    state,
    summary,
    details: reports.map((report) => `${report.backup}: ${report.state}: ${report.files} files, ${formatBytes(report.bytes)} in ${(report.milliseconds / 1000).toFixed(1)} s; ${walSummary(report)}`),
    json: { status: state, backups: reports.map(reportJson) },
  };
}

async function chooseBackups(storage: Storage, choice: BackupChoice): Promise<{ sentinels: BackupSentinel[] } | { problem: string }> {
  if (typeof choice === 'object') {
    try {
      return { sentinels: [await readSentinel(storage, requireBackupName(choice.name))] };
    } catch (error) {
      if (error instanceof NotFoundError) return { problem: error.message };
      throw error;
    }
  }
  const backups = (await ArchiveCatalog.load(storage, { wal: false })).backups();
  if (backups.length === 0) return { problem: `${storage.location} holds no complete backup: run backup-push first` };
  return { sentinels: choice === 'ALL' ? [...backups] : [backups.at(-1)!] };
}

async function verifyBackup(settings: BackupVerifySettings, sentinel: BackupSentinel): Promise<BackupReport> {
  const started = Date.now();
  const report: BackupReport = { backup: sentinel.BackupName, state: 'OK', problems: [], files: 0, bytes: 0, milliseconds: 0, algorithm: undefined, wal: [] };
  let contents = await readParts(settings, sentinel, EXPECTED_ALGORITHM);
  const manifest = contents.problems.length === 0 ? readManifest(contents, report) : undefined;
  // A manifest without checksums is checked by sizes alone; one with another algorithm takes a second pass.
  if (manifest && report.algorithm !== EXPECTED_ALGORITHM && report.algorithm !== 'NONE') contents = await readParts(settings, sentinel, report.algorithm!);
  report.problems.push(...contents.problems);
  if (manifest && contents.problems.length === 0) {
    if (manifest.checksumProblem) report.problems.push({ state: 'CRITICAL', message: `${MANIFEST}: ${manifest.checksumProblem}` });
    report.problems.push(...compareWithManifest(contents.files, manifest.files));
    report.wal = await neededWal(settings.storage, sentinel, manifest.walRanges, contents.walFiles);
    const absent = report.wal.filter((segment) => segment.where === 'missing').map((segment) => segment.segment);
    if (absent.length > 0) {
      const range = manifest.walRanges.map((walRange) => `${formatLsn(walRange.startLsn)} to ${formatLsn(walRange.endLsn)}`).join(', ');
      report.problems.push({ state: 'CRITICAL', message: `WAL ${absent.join(', ')}, which the backup needs to become consistent (${range}), is neither in the backup nor in the archive` });
    }
  }
  report.files = contents.files.size;
  report.bytes = contents.bytes;
  report.problems = namedProblems(report.problems);
  report.state = worstState(report.problems.map((problem) => problem.state));
  report.milliseconds = Date.now() - started;
  return report;
}

/** The backup's manifest and its files' checksum algorithm, or a problem in `report`. */
function readManifest(contents: Contents, report: BackupReport): BackupManifest | undefined {
  if (!contents.manifest) {
    report.problems.push({ state: 'CRITICAL', message: `it has no ${MANIFEST}: it cannot be checked, and backup-fetch would refuse it` });
    return undefined;
  }
  try {
    const manifest = parseManifest(contents.manifest, MANIFEST);
    report.algorithm = manifest.files.find((file) => file.algorithm !== 'NONE')?.algorithm ?? 'NONE';
    return manifest;
  } catch (error) {
    if (!(error instanceof WalshipError)) throw error;
    report.problems.push({ state: 'CRITICAL', message: error.message });
    return undefined;
  }
}

interface Contents {
  /** Every regular member the manifest should list, with its size and checksum. */
  files: Map<string, { size: number; checksum: string | undefined }>;
  manifest: Buffer | undefined;
  /** pg_wal/ members: their sizes and the start of their content. */
  walFiles: Map<string, { size: number; start: Buffer }>;
  bytes: number;
  /** Damaged parts (CRITICAL) and parts storage would not give (UNKNOWN). */
  problems: Finding[];
}

/** Streams every part, `downloadConcurrency` at once, checksumming members with `algorithm`. */
async function readParts(settings: BackupVerifySettings, sentinel: BackupSentinel, algorithm: ManifestChecksumAlgorithm): Promise<Contents> {
  const contents: Contents = { files: new Map(), manifest: undefined, walFiles: new Map(), bytes: 0, problems: [] };
  const progress = new Progress({ label: `backup-verify ${sentinel.BackupName}`, total: sentinel.UncompressedSize });
  let storageFailed = false;
  await forEachConcurrently(sentinel.Parts, settings.downloadConcurrency, async (part) => {
    if (storageFailed) return;
    const problem = await readPart(settings.storage, sentinel, part, await fileChecksum(algorithm), contents, progress);
    if (problem) contents.problems.push(problem);
    storageFailed ||= problem?.state === 'UNKNOWN';
  });
  progress.finish(`backup-verify: ${sentinel.BackupName}: ${transferSummary(sentinel.UncompressedSize, sentinel.CompressedSize, progress.elapsedMs)}`);
  return contents;
}

/** Reads one part into `contents`; returns what kept it from being read whole. */
async function readPart(storage: Storage, sentinel: BackupSentinel, part: BackupPart, checksum: FileChecksum, contents: Contents, progress: Progress): Promise<Finding | undefined> {
  // A failure of storage itself (unreachable, refused) means the part could not be checked; anything else, that it is damaged.
  const unreadable = (key: string, error: unknown): Finding => ({ state: 'UNKNOWN', message: `${key} could not be read: ${describeError(error)}` });
  let opened;
  try {
    opened = await openPart(storage, sentinel, part);
  } catch (error) {
    if (error instanceof IntegrityError) return { state: 'CRITICAL', message: error.message };
    return unreadable(part.Name, error);
  }
  const { key, body, stages } = opened;
  let storageError: unknown;
  body.once('error', (error) => (storageError ??= error));
  try {
    const walk = new TarWalk(contents, checksum, progress);
    await new Pipeline(body, stages).drain((piece) => walk.push(piece));
    walk.finish();
    return undefined;
  } catch (error) {
    if (storageError !== undefined || !(error instanceof WalshipError)) return unreadable(key, storageError ?? error);
    if (error instanceof IntegrityError || error instanceof UnsafeArchiveError) return { state: 'CRITICAL', message: error.message.includes(key) ? error.message : `${key}: ${error.message}` };
    return { state: 'CRITICAL', message: `${key} is damaged: ${error.message}` };
  }
}

/** The members of one part, checksummed as their bytes go by. */
class TarWalk {
  private readonly parser = new TarParser();
  private readonly contents: Contents;
  private readonly checksum: FileChecksum;
  private readonly progress: Progress;
  private member: { path: string; size: number; seen: number; kind: 'file' | 'manifest' | 'wal'; chunks: Buffer[] } | undefined;

  constructor(contents: Contents, checksum: FileChecksum, progress: Progress) {
    this.contents = contents;
    this.checksum = checksum;
    this.progress = progress;
  }

  /** A piece of the part's tar bytes; it may be reused memory, read at once. */
  push(piece: Buffer): void {
    for (const event of this.parser.push(piece)) this.onEvent(event);
  }

  finish(): void {
    this.parser.finish();
  }

  private onEvent(event: TarEvent): void {
    if (event.kind === 'entry') {
      const { entry } = event;
      const path = safeMemberPath(entry.path);
      if (entry.type === 'symlink') checkLinkTarget(path, entry.linkTarget);
      if (entry.type === 'hardlink' || entry.type === 'other') {
        throw new UnsafeArchiveError(`refusing tar member "${path}": ${entry.type === 'hardlink' ? 'hard links' : 'device files and FIFOs'} have no place in a PostgreSQL backup`);
      }
      if (entry.type !== 'file') return;
      if (this.contents.files.has(path) || this.contents.walFiles.has(path) || (path === MANIFEST && this.contents.manifest)) {
        throw new IntegrityError(`tar member "${path}" appears twice`);
      }
      const kind = path === MANIFEST ? 'manifest' : isFetchedWal(path) ? 'wal' : 'file';
      if (kind === 'manifest' && entry.size > MAX_MANIFEST_BYTES) throw new IntegrityError(`${MANIFEST} is ${formatBytes(entry.size)}, too large to be one`);
      this.member = { path, size: entry.size, seen: 0, kind, chunks: [] };
      if (kind === 'file') this.checksum.start();
      if (entry.size === 0) this.endMember();
    } else if (event.kind === 'data' && this.member) {
      const member = this.member;
      const data = event.raw;
      if (member.kind === 'file') this.checksum.update(data);
      else if (member.kind === 'manifest' || member.seen < WAL_LONG_HEADER_SIZE) member.chunks.push(Buffer.from(data.subarray(0, member.kind === 'manifest' ? data.length : WAL_LONG_HEADER_SIZE)));
      member.seen += data.length;
      this.contents.bytes += data.length;
      this.progress.advance(data.length);
      if (member.seen === member.size) this.endMember();
    }
  }

  private endMember(): void {
    const { path, size, kind, chunks } = this.member!;
    this.member = undefined;
    if (kind === 'file') this.contents.files.set(path, { size, checksum: this.checksum.finish() });
    else if (kind === 'manifest') this.contents.manifest = Buffer.concat(chunks);
    else this.contents.walFiles.set(path, { size, start: Buffer.concat(chunks).subarray(0, WAL_LONG_HEADER_SIZE) });
  }
}

function compareWithManifest(files: Contents['files'], listed: BackupManifest['files']): Finding[] {
  const problems: Finding[] = [];
  const critical = (message: string) => problems.push({ state: 'CRITICAL', message });
  const names = new Set<string>();
  for (const file of listed) {
    names.add(file.path);
    const found = files.get(file.path);
    if (!found) critical(`${file.path} is in ${MANIFEST} but not in the backup`);
    else if (found.size !== file.size) critical(`${file.path} has ${found.size} bytes, ${MANIFEST} says ${file.size}`);
    else if (file.checksum !== undefined && found.checksum !== file.checksum) critical(`${file.path} does not match ${MANIFEST}: ${algorithmName(file.algorithm)} ${found.checksum}, expected ${file.checksum}`);
  }
  for (const path of files.keys()) if (!names.has(path)) critical(`${path} is in the backup but not in ${MANIFEST}`);
  return problems;
}

/** Each segment the manifest's WAL ranges need, and where it is: in pg_wal/ (whole, of this cluster) or in the archive. */
async function neededWal(storage: Storage, sentinel: BackupSentinel, ranges: readonly WalRange[], walFiles: Contents['walFiles']): Promise<BackupReport['wal']> {
  const segmentSize = sentinel.WalSegmentSize ?? DEFAULT_SEGMENT_SIZE;
  const needed: { segment: string; where: 'backup' | 'archive' | 'missing' }[] = [];
  for (const range of ranges) {
    const first = segmentNumberOfLsn(range.startLsn, segmentSize);
    // The segment holding the byte before the end: an end at a segment boundary needs nothing of the next one.
    const last = range.endLsn > range.startLsn ? segmentNumberOfLsn(range.endLsn - 1n, segmentSize) : first;
    for (let segment = first; segment <= last; segment++) {
      const name = segmentName(range.timeline, segment, segmentSize);
      const where = wholeSegment(walFiles.get(`pg_wal/${name}`), sentinel, segmentSize) ? 'backup' : (await isArchived(storage, name)) ? 'archive' : 'missing';
      needed.push({ segment: name, where });
    }
  }
  return needed;
}

function wholeSegment(file: { size: number; start: Buffer } | undefined, sentinel: BackupSentinel, segmentSize: number): boolean {
  if (!file || file.size !== segmentSize) return false;
  try {
    const header = parseWalLongPageHeader(file.start, 'pg_wal segment');
    return header.segmentSize === segmentSize && (!sentinel.SystemIdentifier || header.systemIdentifier === sentinel.SystemIdentifier);
  } catch {
    return false; // not a segment's start: the archive's copy must serve
  }
}

/** Whether the archive stores segment `name`, under any extension: one listing of its key. */
async function isArchived(storage: Storage, name: string): Promise<boolean> {
  for await (const object of storage.list(walKey(name, { extension: '' }))) {
    const kind = classifyKey(object.key);
    if (kind.kind === 'wal' && kind.file.kind === 'segment' && kind.file.name === name) return true;
  }
  return false;
}

function namedProblems(problems: Finding[]): Finding[] {
  if (problems.length <= NAMED_PROBLEMS) return problems;
  const state = worstState(problems.slice(NAMED_PROBLEMS).map((problem) => problem.state));
  return [...problems.slice(0, NAMED_PROBLEMS), { state, message: `and ${problems.length - NAMED_PROBLEMS} more problems` }];
}

function walSummary(report: BackupReport): string {
  if (report.wal.length === 0) return 'WAL not checked';
  const inBackup = report.wal.filter((segment) => segment.where === 'backup').length;
  const inArchive = report.wal.filter((segment) => segment.where === 'archive').length;
  return `the WAL to its consistency point (${report.wal.length} segment${report.wal.length === 1 ? '' : 's'}) is in the backup${inArchive > 0 ? ` (${inBackup}) and the archive (${inArchive})` : ''}`;
}

function reportJson(report: BackupReport): Record<string, unknown> {
  return {
    backup_name: report.backup,
    status: report.state,
    problems: report.problems.map((problem) => ({ status: problem.state, message: problem.message })),
    files: report.files,
    bytes: report.bytes,
    seconds: report.milliseconds / 1000,
    checksum_algorithm: report.algorithm ?? null,
    wal_segments: report.wal,
  };
}

function algorithmName(algorithm: ManifestChecksumAlgorithm): string {
  return algorithm === 'CRC32C' ? 'CRC-32C' : algorithm.replace(/^SHA/, 'SHA-');
}
