/**
 * A TLS endpoint on loopback in front of a plain TCP port, with a fresh
 * self-signed certificate for 127.0.0.1: the emulators speak HTTP, and what
 * walship does only over HTTPS (S3 uploads with unsigned payloads), and
 * pgBackRest's S3 client, need TLS. Both legs run with TCP_NODELAY, as S3
 * endpoints and HTTP servers do: without it, Nagle's algorithm held back the
 * end of the first response on each connection until the client's delayed
 * ACK, about 40 ms (curl: 47 ms to the first byte of a 404, 5 ms with it).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { freePort } from './processes.ts';

export interface TlsProxy {
  port: number;
  /** The certificate's PEM file, for WALG_S3_CA_CERT_FILE. */
  certificate: string;
  stop(): Promise<void>;
}

/** Starts a TLS proxy to 127.0.0.1:`upstreamPort`; its key and certificate go into `directory`. */
export async function startTlsProxy(directory: string, upstreamPort: number): Promise<TlsProxy> {
  const key = join(directory, 'key.pem');
  const certificate = join(directory, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', certificate, '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const sockets = new Set<Socket>();
  const server = createTlsServer({ key: readFileSync(key), cert: readFileSync(certificate), noDelay: true }, (client) => {
    const upstream = connect({ port: upstreamPort, host: '127.0.0.1', noDelay: true });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => (socket === client ? upstream : client).destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    certificate,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
