/**
 * Splitting one tar stream into parts at member boundaries. A part closes at
 * the first member boundary after it holds `threshold` bytes, and gets its own
 * end-of-archive blocks, so every stored part is a complete tar archive that
 * can be extracted on its own, in any order, in parallel. One member may be
 * held back from the parts (global/pg_control, which WAL-G's backup-fetch
 * looks for in a part of its own, uploaded last).
 */
import { END_OF_ARCHIVE, type TarEvent } from './tar.ts';

export class PartSplitter {
  private readonly events: AsyncIterator<TarEvent>;
  private readonly threshold: number;
  private readonly lookahead: TarEvent[] = [];
  private exhausted = false;
  private readonly observe: (event: TarEvent) => void;
  private readonly heldBack: string | undefined;
  private readonly held: Buffer[] = [];
  private holding = false;

  /** `observe` sees every event once, in order, as it is read, the held-back member's too. */
  constructor(events: AsyncIterable<TarEvent>, threshold: number, observe: (event: TarEvent) => void = () => undefined, options: { holdBack?: string } = {}) {
    this.events = events[Symbol.asyncIterator]();
    this.threshold = threshold;
    this.observe = observe;
    this.heldBack = options.holdBack;
  }

  /** The held-back member as a complete tar archive; undefined when the archive had no such member. */
  heldBackArchive(): Buffer | undefined {
    return this.held.length > 0 ? Buffer.concat([...this.held, END_OF_ARCHIVE]) : undefined;
  }

  /** True once the whole archive has been handed out in parts. */
  get finished(): boolean {
    return this.exhausted && this.lookahead.length === 0;
  }

  /** Reads ahead (without handing anything out) until `enough()` holds or the archive ends. */
  async readAheadUntil(enough: () => boolean): Promise<void> {
    while (!enough() && !this.exhausted) {
      const event = await this.pull();
      if (event) this.lookahead.push(event);
    }
  }

  /** The bytes of the next part. Consume it fully before asking for the next one. */
  async *nextPart(): AsyncGenerator<Buffer> {
    let size = 0;
    for (;;) {
      const event = this.lookahead.shift() ?? (await this.pull());
      if (!event) return;
      if (event.kind === 'entry' && size >= this.threshold) {
        this.lookahead.unshift(event);
        yield END_OF_ARCHIVE;
        return;
      }
      size += event.raw.length;
      yield event.raw;
    }
  }

  private async pull(): Promise<TarEvent | undefined> {
    for (;;) {
      if (this.exhausted) return undefined;
      const result = await this.events.next();
      if (result.done) {
        this.exhausted = true;
        return undefined;
      }
      const event = result.value;
      this.observe(event);
      if (event.kind === 'entry') this.holding = event.entry.path === this.heldBack;
      else if (event.kind === 'end') this.holding = false;
      if (!this.holding) return event;
      this.held.push(Buffer.from(event.raw));
    }
  }
}
