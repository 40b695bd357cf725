/**
 * Timeline history files (TTTTTTTT.history), written by PostgreSQL when a
 * server is promoted: one line per ancestor timeline, oldest first,
 *
 *   parentTLI <TAB> switchpoint LSN <TAB> reason
 *
 * where the switch point is the first position that belongs to the next
 * timeline. Blank lines and lines starting with # are ignored. The history of
 * timeline N lists its whole ancestry, so, like PostgreSQL
 * (readTimeLineHistory in src/backend/access/transam/timeline.c), walship
 * reads only N's own file to follow it; a timeline without one has no parents.
 */
import { WalshipError } from '../errors.ts';

export interface HistoryEntry {
  /** An ancestor timeline... */
  timeline: number;
  /** ...and where it ended: the first LSN of the timeline that followed it. */
  switchPoint: bigint;
  reason: string;
}

/** The span of WAL positions [begin, end) that a timeline holds on the way to another. */
export interface TimelineSpan {
  timeline: number;
  begin: bigint;
  /** Undefined for the last timeline of the path, which runs on. */
  end?: bigint;
}

// sscanf's "%u\t%X/%X" in PostgreSQL: any whitespace separates the fields.
const HISTORY_LINE = /^\s*(\d+)\s+([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})(?:\s+(.*))?$/;

/** Parses the history file of `timeline`; `source` names it in errors. */
export function parseHistory(text: string, timeline: number, source: string): HistoryEntry[] {
  const entries: HistoryEntry[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const match = HISTORY_LINE.exec(line.replace(/\r$/, ''));
    if (!match) throw new WalshipError(`${source} is not a timeline history file: "${trimmed}" is not "timeline<TAB>switch point LSN<TAB>reason"`);
    const entry = { timeline: Number(match[1]), switchPoint: (BigInt(`0x${match[2]}`) << 32n) | BigInt(`0x${match[3]}`), reason: match[4]?.trim() ?? '' };
    const previous = entries.at(-1);
    if (previous && (entry.timeline <= previous.timeline || entry.switchPoint < previous.switchPoint)) {
      throw new WalshipError(`${source} is damaged: its timelines and switch points must increase from line to line`);
    }
    entries.push(entry);
  }
  if ((entries.at(-1)?.timeline ?? 0) >= timeline) throw new WalshipError(`${source} is damaged: it names timeline ${entries.at(-1)!.timeline} as an ancestor of timeline ${timeline}`);
  return entries;
}

/** Timelines and where each one branched off, from the history files the archive holds. */
export class TimelineGraph {
  private readonly histories: ReadonlyMap<number, readonly HistoryEntry[]>;

  constructor(histories: ReadonlyMap<number, readonly HistoryEntry[]>) {
    this.histories = histories;
  }

  /** The timelines with a history file, in order. */
  withHistory(): number[] {
    return [...this.histories.keys()].sort((a, b) => a - b);
  }

  hasHistory(timeline: number): boolean {
    return this.histories.has(timeline);
  }

  /** The timeline `timeline` branched off; undefined for timeline 1 or one without a history file. */
  parent(timeline: number): number | undefined {
    return this.histories.get(timeline)?.at(-1)?.timeline;
  }

  /** The first LSN of `timeline` that is not its parent's. */
  switchPoint(timeline: number): bigint | undefined {
    return this.histories.get(timeline)?.at(-1)?.switchPoint;
  }

  /** The path of timelines that leads to `timeline`, oldest first, each with the positions it holds on the way. */
  ancestry(timeline: number): TimelineSpan[] {
    const path: TimelineSpan[] = [];
    let begin = 0n;
    for (const entry of this.histories.get(timeline) ?? []) {
      path.push({ timeline: entry.timeline, begin, end: entry.switchPoint });
      begin = entry.switchPoint;
    }
    path.push({ timeline, begin });
    return path;
  }
}
