import http from 'node:http';
import { percentile } from './support.js';

// A lean HTTP/1.1 keep-alive client for the load loops (node:http, one socket per client loop): fetch
// costs several times more CPU per request, and on a 2-core machine the load generator's CPU is taken
// from the service and Postgres.

export interface HttpAnswer {
  status: number;
  body: string;
}

export interface HttpClient {
  request(method: 'GET' | 'POST', path: string, headers?: Record<string, string>, body?: Buffer): Promise<HttpAnswer>;
  close(): void;
}

export function httpClient(baseUrl: string, sockets: number): HttpClient {
  const target = new URL(baseUrl);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) throw new Error(`benchmarks only run against loopback, not ${target.hostname}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  return {
    request(method, path, headers = {}, body) {
      return new Promise((resolve, reject) => {
        const req = http.request(
          {
            agent,
            host: target.hostname,
            port: target.port,
            method,
            path,
            headers: body ? { ...headers, 'content-length': String(body.length) } : headers,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
        req.end(body);
      });
    },
    close: () => agent.destroy(),
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
export async function closedLoop(clients: number, seconds: number, op: (client: number, i: number) => Promise<true | string>): Promise<LoadResult> {
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure: string | null = null;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = 0; performance.now() < deadline; i++) {
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
