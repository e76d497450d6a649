import type { Api } from 'grammy';
import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { EffectName } from '../machines/payment.events.js';
import type { InlineEffect } from '../persistence/apply-event.js';
import type { PayoutExecutor } from '../payouts/payout-executor.js';
import type { EffectActor } from './effect-actor.js';
import { accumulateInline, createAccumulateActor } from './payouts/accumulate.actor.js';
import { createSettleActor } from './payouts/settle.actor.js';
import { createSplitActor } from './payouts/split.actor.js';
import { createRouteActor, routeInline } from './route/route.actor.js';
import { createInviteActor } from './telegram/invite.actor.js';

// Effect name -> the actor that performs it. The machine names effects (src/machines/payment.machine.ts,
// `effect.<name>` actions); the engine turns each into a job on queue `effect-<name>`; the actor listed
// here works that queue. This table is the whole map from a decision to the code that carries it out.
// An effect that needs only our own tables is not a job: the engine performs it inside the transition's
// own transaction (inlineEffects). Routing and the threshold owner's ledger credit are such effects.
// Their workers remain: route's only drains jobs queued by an earlier version; accumulate's also runs
// the credits whose inline run failed (onError 'queue').

export function inlineEffects(deps: { boss: PgBoss }): Partial<Record<EffectName, InlineEffect>> {
  return { route: routeInline, accumulate: accumulateInline(deps) };
}

export interface ActorDeps {
  pool: pg.Pool;
  boss: PgBoss;
  log: Logger;
  config: Pick<Config, 'INVITE_EXPIRE_AFTER' | 'JOB_EXPIRE_AFTER'>;
  telegram: Api;
  remindersMs: number[];
  payouts: PayoutExecutor;
}

// Threshold batches are not an effect of one payment: their job chain (queue payout-batch) lives in
// ./payouts/batches.ts and tells each payment batch.paid when the batch settles.
export function createActors(deps: ActorDeps): Record<EffectName, EffectActor> {
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
    split: createSplitActor({ pool: deps.pool, payouts: deps.payouts }),
    settle: createSettleActor({ pool: deps.pool, payouts: deps.payouts }),
    accumulate: createAccumulateActor({ pool: deps.pool, boss: deps.boss }),
  };
}
