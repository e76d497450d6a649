import type pg from 'pg';

/**
 * The real pool, recording every statement sent through it or through a client checked out of it:
 * a named statement by its name, a plain string as it is, other text by its first word. Tests pin the
 * round trips a path costs with it; the statements still run on the real database.
 */
export function recordingPool(pool: pg.Pool): { pool: pg.Pool; sent: string[] } {
  const sent: string[] = [];
  const record = (config: unknown) =>
    sent.push(typeof config === 'string' ? config : ((config as { name?: string }).name ?? (config as { text: string }).text.trim().split(/\s+/)[0]!));
  const recorded = <T extends pg.Pool | pg.PoolClient>(target: T): T['query'] =>
    ((config: unknown, ...rest: unknown[]) => {
      record(config);
      return (target.query as (...a: unknown[]) => unknown).call(target, config, ...rest);
    }) as T['query'];
  const recording = new Proxy(pool, {
    get(target, prop) {
      if (prop === 'query') return recorded(target);
      if (prop === 'connect')
        return async () => {
          const client = await target.connect();
          return new Proxy(client, { get: (c, p) => (p === 'query' ? recorded(c) : Reflect.get(c, p, c)) });
        };
      return Reflect.get(target, prop, target) as unknown;
    },
  });
  return { pool: recording, sent };
}
