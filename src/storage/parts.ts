/**
 * Uploading a stream of unknown length with bounded memory: it is cut into
 * fixed-size parts, a few uploaded at a time (S3 multipart upload, Azure
 * block list). Each part is held in memory while it uploads, so a failed
 * part request can be retried; at most `concurrency + 1` parts are held.
 * An object that fits in one part goes up in a single request, from the
 * pieces it was read in: joined, it would be held twice while they wait for
 * a collection.
 */
import type { Readable } from 'node:stream';
import { InFlight } from '../util/concurrency.ts';

/** The requests a backend makes for one parted upload. */
export interface PartedUpload {
  /** Starts a parted upload; called only once the object is known to need more than one part. */
  begin(): Promise<void>;
  /** Stores a whole object that fits in one part, given as the pieces it was read in (none for an empty object). */
  putWhole(pieces: Buffer[]): Promise<void>;
  /** Uploads part `partNumber` (from 1), after begin(). */
  putPart(partNumber: number, data: Buffer): Promise<void>;
  /** Assembles parts 1..partCount into the object. */
  complete(partCount: number): Promise<void>;
  /** Discards uploaded parts after a failure; must not throw. */
  abort(): Promise<void>;
}

export interface PartOptions {
  partSize: number;
  concurrency: number;
}

export async function uploadInParts(body: Readable, upload: PartedUpload, { partSize, concurrency }: PartOptions): Promise<void> {
  const parts = readPartPieces(body, partSize)[Symbol.asyncIterator]();
  const first = await parts.next();
  const firstPart = first.done ? [] : first.value;
  let next = await parts.next();
  if (next.done) return upload.putWhole(firstPart);

  await upload.begin();
  const inFlight = new InFlight(concurrency);
  try {
    let partNumber = 1;
    inFlight.add(upload.putPart(partNumber, Buffer.concat(firstPart, partSize)));
    while (!next.done) {
      inFlight.add(upload.putPart(++partNumber, Buffer.concat(next.value)));
      // The next part is read only once there is room to send it.
      await inFlight.room();
      next = await parts.next();
    }
    await inFlight.done();
    await upload.complete(partNumber);
  } catch (error) {
    body.destroy();
    await inFlight.settled();
    await upload.abort();
    throw error;
  }
}

/** Yields `body` in parts of exactly `partSize` bytes; the last may be shorter; an empty body is one empty part. */
export async function* readParts(body: Readable, partSize: number): AsyncGenerator<Buffer> {
  for await (const pieces of readPartPieces(body, partSize)) yield Buffer.concat(pieces);
}

/** readParts' parts as the pieces of `body` they are made of (views, not copies); an empty body is one part of no pieces. */
async function* readPartPieces(body: Readable, partSize: number): AsyncGenerator<Buffer[]> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let yielded = false;
  for await (const chunk of body) {
    let data = chunk as Buffer;
    while (pendingBytes + data.length >= partSize) {
      const take = partSize - pendingBytes;
      pending.push(data.subarray(0, take));
      yield pending;
      yielded = true;
      data = data.subarray(take);
      pending = [];
      pendingBytes = 0;
    }
    if (data.length > 0) {
      pending.push(data);
      pendingBytes += data.length;
    }
  }
  if (pendingBytes > 0 || !yielded) yield pending;
}
