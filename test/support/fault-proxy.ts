/**
 * A fault-injecting HTTP proxy on loopback, in front of a storage emulator.
 * Requests pass through unchanged (Host header included, so request
 * signatures stay valid) unless a fault is queued: an error status (500,
 * 503, S3's SlowDown, a 403 refusal), a connection reset before or in the middle of the
 * response, or a stall before or in the middle of the response.
 */
import { createServer, type IncomingMessage, request as forward, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { freePort } from './processes.ts';

export type Fault =
  /** An answer of that status, not forwarded: S3's XML error body with `code` and `message`, or `json` (GCS's errors), or `xml` as the body (say, a DeleteObjects result with per-key errors). */
  | { kind: 'status'; status: number; code?: string; message?: string; json?: object; xml?: string }
  /** Drops the connection without answering. */
  | { kind: 'reset' }
  /** Forwards the request, sends the headers and some of the body, then drops the connection. */
  | { kind: 'reset-mid-body' }
  /** Forwards the request, sends the headers and some of the body, then sends nothing more. */
  | { kind: 'stall-mid-body' }
  /** Reads the request and never answers. */
  | { kind: 'stall' };

export const SLOW_DOWN: Fault = { kind: 'status', status: 503, code: 'SlowDown' };

export interface FaultRule {
  fault: Fault;
  /** Only requests with this method (GET, PUT, HEAD, ...); any when absent. */
  method?: string;
  /** Only requests whose path and query match; any when absent. */
  url?: RegExp;
  /** How many matching requests get the fault; forever when absent. */
  times?: number;
  /** How many matching requests pass unharmed before the fault applies (default 0). */
  after?: number;
}

export class FaultProxy {
  readonly port: number;
  readonly url: string;
  /** Requests seen, faults injected, and stalled requests whose client gave up on them (closed the connection), since the last inject(). */
  readonly seen = { requests: 0, faults: 0, stallsAbandoned: 0 };
  /** Method, URL, headers and body bytes received of every request since the last inject(). */
  readonly recorded: { method: string; url: string; headers: IncomingMessage['headers']; bodyBytes: number }[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private rules: FaultRule[] = [];

  private constructor(server: Server, port: number) {
    this.server = server;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Starts a proxy to http://127.0.0.1:targetPort. */
  static async start(targetPort: number): Promise<FaultProxy> {
    const port = await freePort();
    const server = createServer();
    const proxy = new FaultProxy(server, port);
    server.on('request', (request, response) => proxy.handle(request, response, targetPort));
    server.on('connection', (socket) => {
      proxy.sockets.add(socket);
      socket.once('close', () => proxy.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return proxy;
  }

  /** Replaces the fault rules; the first rule matching a request applies. */
  inject(...rules: FaultRule[]): void {
    this.rules = rules.map((rule) => ({ ...rule }));
    this.seen.requests = 0;
    this.seen.faults = 0;
    this.seen.stallsAbandoned = 0;
    this.recorded.length = 0;
  }

  clear(): void {
    this.inject();
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private takeFault(method: string, url: string): Fault | undefined {
    const rule = this.rules.find(
      (candidate) => (candidate.method ?? method) === method && (candidate.url?.test(url) ?? true) && (candidate.times ?? 1) > 0,
    );
    if (!rule) return undefined;
    if (rule.after) {
      rule.after--;
      return undefined;
    }
    if (rule.times !== undefined) rule.times--;
    this.seen.faults++;
    return rule.fault;
  }

  private handle(request: IncomingMessage, response: ServerResponse, targetPort: number): void {
    this.seen.requests++;
    const entry = { method: request.method ?? 'GET', url: request.url ?? '', headers: request.headers, bodyBytes: 0 };
    this.recorded.push(entry);
    request.on('data', (chunk: Buffer) => (entry.bodyBytes += chunk.length));
    const fault = this.takeFault(request.method ?? 'GET', request.url ?? '/');
    if (fault?.kind === 'reset') {
      request.socket.destroy();
      return;
    }
    if (fault?.kind === 'stall') {
      request.resume();
      request.socket.once('close', () => this.seen.stallsAbandoned++);
      return;
    }
    if (fault?.kind === 'status') {
      request.resume();
      request.once('end', () => {
        const body = fault.json
          ? JSON.stringify(fault.json)
          : fault.xml ?? `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.code ?? 'InternalError'}</Code><Message>${fault.message ?? 'injected fault'}</Message></Error>`;
        response.writeHead(fault.status, {
          'content-type': fault.json ? 'application/json' : 'application/xml',
          'content-length': Buffer.byteLength(body),
          ...(fault.code ? { 'x-ms-error-code': fault.code } : {}),
        });
        response.end(request.method === 'HEAD' ? undefined : body);
      });
      return;
    }
    const upstream = forward(
      { host: '127.0.0.1', port: targetPort, method: request.method, path: request.url, headers: request.headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        if (fault?.kind === 'reset-mid-body' || fault?.kind === 'stall-mid-body') {
          answer.once('data', (chunk: Buffer) => {
            response.write(chunk.subarray(0, Math.ceil(chunk.length / 2)), () => {
              if (fault.kind === 'reset-mid-body') request.socket.destroy();
            });
            if (fault.kind === 'stall-mid-body') request.socket.once('close', () => this.seen.stallsAbandoned++);
            answer.destroy();
          });
          answer.once('end', () => response.end());
          return;
        }
        answer.pipe(response);
      },
    );
    upstream.on('error', () => request.socket.destroy());
    request.pipe(upstream);
  }
}
