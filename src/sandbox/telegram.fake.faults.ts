import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { ApiError } from './telegram.fake.wire.js';

// Fault injection for the fake Bot API: failNext(method, fault, times) queues answers that replace
// the fake's own for the next calls of that method. Error faults answer as Telegram does; the two
// timeouts never answer and drop the connection later, which the client sees as a network error or
// its own timeout.

export type Fault =
  | { kind: '429'; retryAfter: number }
  | { kind: '403'; description?: string }
  | { kind: '400'; description: string }
  | { kind: '500' }
  // Telegram acted (link created, message sent) but the answer never arrives: the case that makes a
  // blind retry produce a duplicate.
  | { kind: 'timeout-after-acting'; hangMs?: number }
  | { kind: 'timeout-before-acting'; hangMs?: number };

export interface Faults {
  failNext(method: string, fault: Fault, times?: number): void;
  /** The fault for this call of `method`, if one is queued (and counts it). */
  take(method: string): Fault | undefined;
  /** Never answer; drop the connection after hangMs (the fault's, else the default) or at release(). */
  hang(req: IncomingMessage, hangMs: number | undefined): void;
  /** Drops every held connection (close()). */
  release(): void;
}

/** The Telegram error a fault answers with; undefined for the timeouts, which never answer. */
export function faultError(fault: Fault): ApiError | undefined {
  switch (fault.kind) {
    case '429':
      return new ApiError(429, `Too Many Requests: retry after ${fault.retryAfter}`, { retry_after: fault.retryAfter });
    case '403':
      return new ApiError(403, fault.description ?? 'Forbidden: bot was blocked by the user');
    case '400':
      return new ApiError(400, fault.description);
    case '500':
      return new ApiError(500, 'Internal Server Error');
    default:
      return undefined;
  }
}

/** @param defaultHangMs how long a timeout holds the request when the fault does not say; Infinity: until release(). */
export function createFaults(defaultHangMs: number): Faults {
  const queues = new Map<string, { fault: Fault; remaining: number }[]>();
  const held = new Set<{ socket: Socket; timer: NodeJS.Timeout | undefined }>();

  return {
    failNext(method, fault, times = 1) {
      const queue = queues.get(method) ?? [];
      queue.push({ fault, remaining: times });
      queues.set(method, queue);
    },

    take(method) {
      const queue = queues.get(method);
      const head = queue?.[0];
      if (queue === undefined || head === undefined) return undefined;
      head.remaining -= 1;
      if (head.remaining <= 0) queue.shift();
      return head.fault;
    },

    hang(req, hangMs) {
      const ms = hangMs ?? defaultHangMs;
      const entry: { socket: Socket; timer: NodeJS.Timeout | undefined } = { socket: req.socket, timer: undefined };
      if (Number.isFinite(ms)) {
        entry.timer = setTimeout(() => {
          held.delete(entry);
          entry.socket.destroy();
        }, ms);
      }
      held.add(entry);
      req.socket.once('close', () => {
        clearTimeout(entry.timer);
        held.delete(entry);
      });
    },

    release() {
      for (const entry of held) {
        clearTimeout(entry.timer);
        entry.socket.destroy();
      }
      held.clear();
    },
  };
}
