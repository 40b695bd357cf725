/**
 * The record of each attempt of a job cron runs (backup-push, delete, drill,
 * dump-push, copy), stored outside WAL-G's folders (keys in layout.ts): one
 * small object at the start, one at the end with the result and the error's
 * one line. A failing nightly job thus leaves a trace that `status` reports,
 * even while older backups still exist. Recording is best effort: a record
 * that cannot be written is a warning, never the job's failure. The newest
 * ATTEMPTS_KEPT attempts of each job are kept.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describeError } from '../errors.ts';
import { log } from '../log/logger.ts';
import type { Storage } from '../storage/storage.ts';
import { VERSION } from '../version.ts';
import { type AttemptKey, attemptFolder, attemptKey, parseAttemptKey } from './layout.ts';

export const ATTEMPT_JOBS = ['backup-push', 'delete', 'drill', 'dump-push', 'copy'] as const;
export type AttemptJob = (typeof ATTEMPT_JOBS)[number];

/** Attempts kept per job; older ones are deleted when a new one ends. */
export const ATTEMPTS_KEPT = 100;
/** An error line longer than this is cut: a record stays small. */
const ERROR_LINE_LIMIT = 500;

export interface AttemptOutcome {
  result: 'success' | 'failure';
  /** The failure's one line. */
  error?: string;
  /** A copy job's: the copies it brought up to date with all the source held when it started. */
  upToDate?: string[];
}

/** What an attempt record holds. */
export interface AttemptRecord {
  job: string;
  started_at: string;
  /** Absent while the attempt runs (or when it never ended: killed, the host down). */
  finished_at?: string;
  result: 'running' | 'success' | 'failure';
  error?: string;
  /** See AttemptOutcome.upToDate: status bounds the lag of a copy it cannot reach with it. */
  up_to_date?: string[];
  host: string;
  walship_version: string;
}

/** One attempt, as the keys of its records tell: `ended` once its end record exists. */
export interface AttemptRef {
  job: string;
  started: Date;
  id: string;
  ended?: { result: 'success' | 'failure'; key: string };
}

/**
 * Runs `run` as an attempt of `job`, recorded at its start and its end.
 * `judge` tells a resolved run's outcome (by default a success); a rejected
 * run is a failure with its error's line, and is rethrown.
 */
export async function recordAttempt<T>(storage: Storage, job: AttemptJob, run: () => Promise<T>, judge: (value: T) => AttemptOutcome = () => ({ result: 'success' })): Promise<T> {
  const key: Omit<AttemptKey, 'phase'> = { job, started: new Date(), id: randomBytes(4).toString('hex') };
  const record: AttemptRecord = { job, started_at: key.started.toISOString(), result: 'running', host: hostname(), walship_version: VERSION };
  await store(storage, { ...key, phase: 'started' }, record);
  let outcome: AttemptOutcome;
  try {
    const value = await run();
    outcome = judge(value);
    await end(storage, key, record, outcome);
    return value;
  } catch (error) {
    outcome = { result: 'failure', error: describeError(error) };
    await end(storage, key, record, outcome);
    throw error;
  }
}

async function end(storage: Storage, key: Omit<AttemptKey, 'phase'>, record: AttemptRecord, outcome: AttemptOutcome): Promise<void> {
  const error = outcome.error?.replace(/\s*\n\s*/g, '; ').slice(0, ERROR_LINE_LIMIT);
  const ended: AttemptRecord = {
    ...record,
    finished_at: new Date().toISOString(),
    result: outcome.result,
    ...(error === undefined ? {} : { error }),
    ...(outcome.upToDate === undefined ? {} : { up_to_date: outcome.upToDate }),
  };
  if (await store(storage, { ...key, phase: outcome.result === 'success' ? 'succeeded' : 'failed' }, ended)) await prune(storage, key.job);
}

/** Writes one record; false (with a warning) when it could not. */
async function store(storage: Storage, key: AttemptKey, record: AttemptRecord): Promise<boolean> {
  try {
    await storage.put(attemptKey(key), Readable.from([Buffer.from(`${JSON.stringify(record)}\n`)]), { createOnly: true });
    return true;
  } catch (error) {
    log.warning(`could not record this ${key.job} attempt in storage (status will not see it): ${describeError(error)}`);
    return false;
  }
}

/** Deletes the records of all but the newest ATTEMPTS_KEPT attempts of `job`. */
async function prune(storage: Storage, job: string): Promise<void> {
  try {
    const keys: string[] = [];
    for await (const object of storage.list(attemptFolder(job))) keys.push(object.key);
    const attempts = attemptsOf(keys);
    const old = new Set(attempts.slice(0, Math.max(attempts.length - ATTEMPTS_KEPT, 0)).map(attemptIdentity));
    const doomed = keys.filter((key) => {
      const parsed = parseAttemptKey(key);
      return parsed !== undefined && old.has(attemptIdentity(parsed));
    });
    if (doomed.length > 0) await storage.deleteMany(doomed);
  } catch (error) {
    log.warning(`could not prune old ${job} attempt records: ${describeError(error)}`);
  }
}

const attemptIdentity = (attempt: { started: Date; id: string }) => `${attempt.started.getTime()}_${attempt.id}`;

/** The attempts that `keys` (any keys: others are skipped) record, oldest first, each with its end when recorded. */
export function attemptsOf(keys: Iterable<string>): AttemptRef[] {
  const attempts = new Map<string, AttemptRef>();
  for (const key of keys) {
    const parsed = parseAttemptKey(key);
    if (!parsed) continue;
    const identity = `${parsed.job}/${attemptIdentity(parsed)}`;
    const attempt = attempts.get(identity) ?? { job: parsed.job, started: parsed.started, id: parsed.id };
    if (parsed.phase !== 'started') attempt.ended = { result: parsed.phase === 'succeeded' ? 'success' : 'failure', key };
    attempts.set(identity, attempt);
  }
  return [...attempts.values()].sort((a, b) => a.started.getTime() - b.started.getTime() || a.id.localeCompare(b.id));
}

/** The end record of an attempt, for its error line and finish time. */
export async function readAttemptRecord(storage: Storage, key: string): Promise<AttemptRecord> {
  return JSON.parse(await text((await storage.get(key)).body)) as AttemptRecord;
}
