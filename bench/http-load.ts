import { Pool } from 'undici';
import { percentile } from './support.js';

// The load generator's HTTP/1.1 keep-alive client: undici, one connection per client loop. On a
// 2-core machine the generator's CPU is taken from the service and Postgres, so it must be lean:
// measured here, undici spends about half the CPU per request of node:http's client (and fetch
// several times more).

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
  const pool = new Pool(target.origin, { connections: sockets, headersTimeout: 30_000, bodyTimeout: 30_000 });
  return {
    async request(method, path, headers = {}, body) {
      const res = await pool.request({ method, path, headers, ...(body && { body }) });
      return { status: res.statusCode, body: await res.body.text() };
    },
    close: () => void pool.destroy(),
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
