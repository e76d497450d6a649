import net from 'node:net';
import { percentile } from './support.js';

// The load generator's HTTP/1.1 keep-alive client: one socket per client loop, each request written as
// one buffer and its answer read by Content-Length. On a 2-core machine every microsecond the generator
// spends is taken from the service and Postgres, and the generator is NowPayments' side, not ours:
// measured at 8 clients of new IPNs, undici's pool took about 150 µs of CPU per request, this about
// 85 µs (at 32 clients of status reads, 0.71 of a core against 0.33). It speaks only what the service
// answers here (no chunked bodies, no pipelining): anything else fails the request with a clear error.

export interface HttpAnswer {
  status: number;
  body: string;
}

export interface HttpClient {
  request(method: 'GET' | 'POST', path: string, headers?: Record<string, string>, body?: Buffer): Promise<HttpAnswer>;
  close(): void;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/** One keep-alive connection: one request at a time, reconnected when the server closed it. */
class Connection {
  private socket: net.Socket | null = null;
  private chunks: Buffer[] = [];
  private size = 0;
  private pending: { resolve(answer: HttpAnswer): void; reject(error: Error): void } | null = null;

  constructor(private readonly host: string, private readonly port: number) {}

  request(bytes: Buffer): Promise<HttpAnswer> {
    if (this.pending) throw new Error('http-load: a connection carries one request at a time');
    const socket = this.socket ?? this.connect();
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      socket.write(bytes);
    });
  }

  private connect(): net.Socket {
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    socket.on('data', (data) => this.onData(data));
    const lost = (error?: Error) => {
      if (this.socket === socket) this.socket = null;
      this.chunks = [];
      this.size = 0;
      const pending = this.pending;
      this.pending = null;
      pending?.reject(error ?? new Error('http-load: the server closed the connection before answering'));
    };
    socket.on('error', lost);
    socket.on('close', () => lost());
    this.socket = socket;
    return socket;
  }

  private onData(data: Buffer): void {
    this.chunks.push(data);
    this.size += data.length;
    const buffer = this.chunks.length === 1 ? data : Buffer.concat(this.chunks, this.size);
    const headEnd = buffer.indexOf(HEADER_END);
    if (headEnd < 0) return this.keep(buffer);
    const head = buffer.toString('latin1', 0, headEnd);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    const pending = this.pending;
    if (!length || !pending) {
      this.pending = null;
      this.socket?.destroy();
      pending?.reject(new Error(`http-load: an answer without Content-Length (or none asked for): ${head.split('\r\n')[0]}`));
      return;
    }
    const bodyStart = headEnd + HEADER_END.length;
    const bodyEnd = bodyStart + Number(length[1]);
    if (buffer.length < bodyEnd) return this.keep(buffer);
    this.chunks = [];
    this.size = 0;
    this.pending = null;
    if (/\r\nconnection: *close/i.test(head)) this.socket?.end();
    pending.resolve({ status, body: buffer.toString('utf8', bodyStart, bodyEnd) });
  }

  private keep(buffer: Buffer): void {
    this.chunks = [buffer];
    this.size = buffer.length;
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }
}

export function httpClient(baseUrl: string, sockets: number): HttpClient {
  const target = new URL(baseUrl);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) throw new Error(`benchmarks only run against loopback, not ${target.hostname}`);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const port = Number(target.port || 80);
  const idle: Connection[] = Array.from({ length: sockets }, () => new Connection(host, port));
  const all = [...idle];
  const waiting: ((connection: Connection) => void)[] = [];
  const release = (connection: Connection) => {
    const next = waiting.shift();
    if (next) next(connection);
    else idle.push(connection);
  };
  return {
    async request(method, path, headers = {}, body) {
      const connection = idle.pop() ?? (await new Promise<Connection>((resolve) => waiting.push(resolve)));
      let head = `${method} ${path} HTTP/1.1\r\nhost: ${target.host}\r\n`;
      for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
      if (body) head += `content-length: ${body.length}\r\n`;
      head += '\r\n';
      const bytes = body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1');
      try {
        return await connection.request(bytes);
      } finally {
        release(connection);
      }
    },
    close: () => all.forEach((c) => c.close()),
  };
}

export interface LoadResult {
  ops: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers other than the expected one. */
  failures: number;
  /** The first unexpected answer, to say what went wrong. */
  firstFailure: string | null;
}

/** `clients` loops, each issuing `op` back to back for `seconds`; `op` answers whether the reply was the expected one. */
export function closedLoop(clients: number, seconds: number, op: (client: number, i: number) => Promise<true | string>): Promise<LoadResult> {
  return loops(clients, seconds, () => true, op);
}

/**
 * `clients` loops sending each of `items` EXACTLY ONCE, back to back: ends when the items run out or
 * `seconds` are up, whichever comes first. For requests whose second send would measure another path
 * (a body the service has answered once, it remembers).
 */
export function closedLoopOnce<T>(clients: number, seconds: number, items: readonly T[], op: (item: T) => Promise<true | string>): Promise<LoadResult> {
  let next = 0;
  // The check and the take run in one synchronous step: no two loops get the same item.
  return loops(clients, seconds, () => next < items.length, () => op(items[next++]!));
}

async function loops(clients: number, seconds: number, more: () => boolean, op: (client: number, i: number) => Promise<true | string>): Promise<LoadResult> {
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure: string | null = null;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = 0; performance.now() < deadline && more(); i++) {
        const t0 = performance.now();
        let outcome: true | string;
        try {
          outcome = await op(client, i);
        } catch (error) {
          outcome = (error as Error).message;
        }
        latencies.push(performance.now() - t0);
        if (outcome !== true) {
          failures++;
          firstFailure ??= outcome;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { ops: latencies.length, seconds: elapsed, perSecond: latencies.length / elapsed, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), failures, firstFailure };
}
