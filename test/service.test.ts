import { describe, expect, it } from 'vitest';
import type { EffectActor } from '../src/actors/effect-actor.js';
import { jobsFor, paymentRow } from './support/engine.js';
import { startTestService } from './support/service.js';
import { queueOf } from '../src/persistence/queues.js';

describe('service lifecycle', () => {
  it('starts on a test database, answers ready, and on shutdown finishes the job in flight before closing', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const jobStarted = new Promise<void>((resolve) => (started = resolve));
    const slowRoute: EffectActor = {
      effect: 'route',
      async perform() {
        started();
        await released;
        return { type: 'route.rejected', reason: 'finished during shutdown' };
      },
    };
    const t = await startTestService({}, { effects: ['route'], actors: { route: slowRoute } });
    let closed = false;
    try {
      const ready = await fetch(`${t.url}/health/ready`);
      expect(ready.status).toBe(200);

      await t.service.engine.applyEvent('shutdown-1', { type: 'np.finished', facts: { payAmount: '1', actuallyPaid: '1' } }, { source: 'test' });
      await jobStarted;
      const closing = t.service.close().then(() => (closed = true));
      // The HTTP server stops taking requests while the job is still running.
      await expect(fetch(`${t.url}/health/live`)).rejects.toThrow();
      expect(closed).toBe(false);
      release();
      await closing;
      // The in-flight job completed and its result was applied before the pool closed.
      const db = t.db;
      expect((await paymentRow(db, 'shutdown-1'))?.review_reason).toBe('payment: finished during shutdown');
      expect((await jobsFor(db, queueOf('route'), 'shutdown-1'))[0]?.state).toBe('completed');
    } finally {
      release();
      if (!closed) await t.service.close();
      await t.db.drop();
    }
  });
});
