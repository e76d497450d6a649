import type { Api } from 'grammy';
import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { EffectName } from '../machines/payment.events.js';
import type { EffectActor } from './effect-actor.js';
import { createRouteActor } from './route/route.actor.js';
import { createInviteActor } from './telegram/invite.actor.js';

// Effect name -> the actor that performs it. The machine names effects (src/machines/payment.machine.ts,
// `effect.<name>` actions); the engine turns each into a job on queue `effect-<name>`; the actor listed
// here works that queue. This table is the whole map from a decision to the code that carries it out.

export interface ActorDeps {
  pool: pg.Pool;
  boss: PgBoss;
  log: Logger;
  config: Pick<Config, 'INVITE_EXPIRE_AFTER' | 'JOB_EXPIRE_AFTER'>;
  telegram: Api;
  remindersMs: number[];
}

export function createActors(deps: ActorDeps): Partial<Record<EffectName, EffectActor>> {
  return {
    route: createRouteActor({ pool: deps.pool }),
    invite: createInviteActor({
      pool: deps.pool,
      boss: deps.boss,
      api: deps.telegram,
      log: deps.log,
      inviteExpireAfterMs: deps.config.INVITE_EXPIRE_AFTER,
      leaseMs: deps.config.JOB_EXPIRE_AFTER,
      remindersMs: deps.remindersMs,
    }),
  };
}
