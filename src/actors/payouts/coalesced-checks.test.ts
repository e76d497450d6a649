import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { coalesced } from './coalesced-checks.js';

/** A run the test finishes by hand, recording when it started. */
function runs() {
  const started: number[] = [];
  const finish: Array<() => void> = [];
  let clock = 0;
  const run = () =>
    new Promise<number>((resolve) => {
      const n = started.length;
      started.push(++clock);
      finish.push(() => resolve(n));
    });
  return { started, finish, run, tick: () => ++clock };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('checks after a commit, coalesced', () => {
  it('requests made while a check runs share one next check, which starts after they were made', async () => {
    const checks = coalesced<string>();
    const r = runs();
    const first = checks('ch', r.run);
    await settle();
    expect(r.started).toHaveLength(1);
    const asked = r.tick();
    const shared = [checks('ch', r.run), checks('ch', r.run), checks('ch', r.run)];
    await settle();
    expect(r.started).toHaveLength(1); // the next waits for the running one
    r.finish[0]!();
    expect(await first).toBe(0);
    await settle();
    expect(r.started).toHaveLength(2);
    expect(r.started[1]).toBeGreaterThan(asked);
    r.finish[1]!();
    expect(await Promise.all(shared)).toEqual([1, 1, 1]);
  });

  it('a request made after the shared check started gets a check of its own', async () => {
    const checks = coalesced<string>();
    const r = runs();
    const a = checks('ch', r.run);
    await settle();
    const b = checks('ch', r.run);
    r.finish[0]!();
    await settle();
    const asked = r.tick();
    const c = checks('ch', r.run); // b's check is running: c must not share it
    r.finish[1]!();
    await settle();
    expect(r.started).toHaveLength(3);
    expect(r.started[2]).toBeGreaterThan(asked);
    r.finish[2]!();
    expect([await a, await b, await c]).toEqual([0, 1, 2]);
  });

  it('keys do not share, and a failure reaches every request that shared the run and not the next', async () => {
    const checks = coalesced<string>();
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error('connection lost');
    };
    const one = checks('a', failing);
    const other = checks('b', async () => 'b');
    const together = checks('a', failing);
    await expect(one).rejects.toThrow('connection lost');
    await expect(together).rejects.toThrow('connection lost');
    expect(await other).toBe('b');
    expect(calls).toBe(1);
    expect(await checks('a', async () => 'again')).toBe('again');
  });

  it('property: whatever the interleaving, every request is answered by a check that started after it, one runs at a time, never more checks than requests', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom('ask', 'finish', 'yield'), { minLength: 1, maxLength: 40 }), async (script) => {
        const checks = coalesced<string>();
        let clock = 0;
        let running = 0;
        let maxRunning = 0;
        const starts: number[] = [];
        const open: Array<() => void> = [];
        const run = () =>
          new Promise<number>((resolve) => {
            running++;
            maxRunning = Math.max(maxRunning, running);
            const n = starts.length;
            starts.push(++clock);
            open.push(() => {
              running--;
              resolve(n);
            });
          });
        const asked: Array<{ at: number; answer: Promise<unknown> }> = [];
        for (const step of script) {
          if (step === 'ask') asked.push({ at: ++clock, answer: checks('ch', run) });
          else if (step === 'finish') open.shift()?.();
          await settle();
        }
        // Let everything still queued run to the end.
        while (open.length > 0) {
          open.shift()!();
          await settle();
        }
        const answers = (await Promise.all(asked.map((a) => a.answer))) as number[];
        asked.forEach((a, i) => expect(starts[answers[i]!]!).toBeGreaterThan(a.at));
        expect(maxRunning).toBeLessThanOrEqual(1);
        expect(starts.length).toBeLessThanOrEqual(asked.length);
      }),
      { numRuns: 200 },
    );
  });
});
