import type { Queryable } from '../persistence/transaction.js';
import { ACCESS_TARGET_SQL, type AccessTarget } from './catalog.repo.js';
import { attemptOf, INVITE_COLUMNS, recordAttempt, type Invite, type LinkAttempt } from './invites.repo.js';
import {
  grantCtes,
  grantMade,
  grantValues,
  LOCKED_FOR_GRANT,
  lockForGrantCtes,
  priorGrantOf,
  type Grant,
  type GrantInput,
  type LockedForGrant,
} from './subscriptions.repo.js';

// The invite's claim (its lease on the order's invites row), and the invite actor's first transaction:
// BEGIN; what to grant and where, with the subscription's lock; the grant with the claim; COMMIT.
// Round trips are what a payment costs the service and Postgres, so the transaction's four reads and
// writes go as two statements, composed from the pieces their owners keep (the route/channel/plan read
// in catalog.repo.ts, the lock and the grant in subscriptions.repo.ts, the attempt record in
// invites.repo.ts); the grant's period stays grantPeriod's rule, computed here between the two.
// Locks are taken as grantSubscription and the claim took them one statement each: the subscription
// row (the upsert), then the grant's order_id, then the invites row. The CTEs of one statement share
// its snapshot and none writes a row another writes (subscriptions vs subscription_grants; invites vs
// invite_link_attempts, where `lost` settles older attempts and `recorded` inserts a new one).

export interface ClaimInput {
  orderId: string;
  paymentId: string;
  chatId: string;
  buyerTelegramId: string;
  /**
   * Who holds the lease: `<pg-boss job id>#<retry count>` (leaseOwner). A retry of the same job takes
   * the lease over at once (pg-boss retries a job only once it judged the earlier attempt dead: failed,
   * expired, heartbeat lost), and the owner string fences the earlier attempt out if it was still alive.
   */
  owner: string;
  leaseMs: number;
  /** The job's invite attempt (operator.reinvite / operator.retry bump it); a new row starts at it. */
  attempt: number;
  /** The expiry the next createChatInviteLink asks for, when the claim records that call (see claimInvite). */
  linkExpireDate: Date;
}

export interface Claim {
  invite: Invite;
  /**
   * The createChatInviteLink the caller is to make next, recorded (committed) with the claim: set when
   * the claimed row has no link and no newer invite attempt is to start (the caller's very next step is
   * that call), null otherwise.
   */
  linkAttempt: LinkAttempt | null;
}

/**
 * The claim as CTEs (`claimed`, `needs_link`, recordAttempt's), ClaimInput's values numbered from
 * $first (claimValues), selected with CLAIMED. `after`: a CTE of the same statement to finish first.
 * Postgres promises no order among a statement's CTEs; the insert takes its one row from that CTE's
 * count, so the invites row is inserted or locked only once all of that CTE's rows are made.
 */
const claimCtes = (first = 1, after?: string) => {
  const $ = (n: number) => `$${first + n - 1}`;
  const row = `${$(1)}, ${$(2)}, ${$(3)}, ${$(4)}, ${$(5)}, now() + ${$(6)} * interval '1 millisecond', 1, ${$(7)}`;
  return `claimed AS (
    INSERT INTO invites (order_id, payment_id, chat_id, buyer_telegram_id, lease_owner, lease_until, create_attempts, invite_attempt)
    ${after ? `SELECT ${row} FROM (SELECT count(*) FROM ${after}) AS after_${after}` : `VALUES (${row})`}
    ON CONFLICT (order_id) DO UPDATE SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until, updated_at = now(),
      -- No link yet means this job is about to ask Telegram for one: counted before the call.
      create_attempts = invites.create_attempts + CASE WHEN invites.invite_link IS NULL THEN 1 ELSE 0 END
      WHERE invites.lease_until IS NULL OR invites.lease_until < now()
         OR split_part(invites.lease_owner, '#', 1) = split_part(EXCLUDED.lease_owner, '#', 1)
    RETURNING *
  ), needs_link AS (
    -- The caller's next step is createChatInviteLink exactly when the row it now holds has no link and
    -- no newer invite attempt is to start first (that one may revoke and reset, see takeInviteAttempt).
    SELECT order_id, chat_id FROM claimed WHERE invite_link IS NULL AND invite_attempt >= ${$(7)}
  ), ${recordAttempt('needs_link', $(8))}`;
};
const CLAIMED = `${INVITE_COLUMNS}, (SELECT attempt FROM recorded) AS "attemptNo", (SELECT name FROM recorded) AS "attemptName",
         (SELECT expire_date FROM recorded) AS "attemptExpireDate"`;
type ClaimedRow = Invite & { attemptNo: number | null; attemptName: string | null; attemptExpireDate: Date | null };

const claimValues = (c: ClaimInput) => [c.orderId, c.paymentId, c.chatId, c.buyerTelegramId, c.owner, c.leaseMs, c.attempt, c.linkExpireDate];

function claimOf(row: ClaimedRow | undefined, orderId: string): Claim | null {
  if (!row) return null;
  const { attemptNo: _n, attemptName: _m, attemptExpireDate: _e, ...invite } = row;
  return { invite, linkAttempt: attemptOf(row, orderId) };
}

const CLAIM = { name: 'invite-claim', text: `WITH ${claimCtes()} SELECT ${CLAIMED} FROM claimed` };

/**
 * Creates the order's invite row if absent and leases it to this job; counts a link creation about to
 * happen (no link stored yet), so more than one attempt shows a timed-out call may have left a link
 * behind. When that creation is the caller's next step, it is recorded here too (`linkAttempt`), in
 * the same statement: committed with the lease, before the call, as beginLinkAttempt would.
 * Null when another job holds an unexpired lease (a second payment for the same order): then nothing
 * is written. A later attempt of the same job takes over at once; every write that acts on the
 * invite's behalf is then fenced on the owner.
 */
export async function claimInvite(db: Queryable, c: ClaimInput): Promise<Claim | null> {
  const { rows } = await db.query<ClaimedRow>({ ...CLAIM, values: claimValues(c) });
  return claimOf(rows[0], c.orderId);
}

// The subscription is upserted (and so locked) only when the payment's channel and plan both exist: the
// actor answers a missing one with invite.failed before any grant, and must leave no subscription behind.
// The buyer, the channel and the order come from the same row the actor is answered with.
const TARGET_AND_LOCK = {
  name: 'invite-target-and-lock',
  text: `WITH target AS (${ACCESS_TARGET_SQL}
    ), ${lockForGrantCtes({
      buyer: `(target.route->>'buyerTelegramId')::bigint`,
      channel: `(target.channel->>'openChannelId')::bigint`,
      orderId: `(SELECT target.route->>'orderId' FROM target)`,
      from: 'target WHERE target.channel IS NOT NULL AND target.plan IS NOT NULL',
    })}
    SELECT target.route, target.channel, target.plan, ${LOCKED_FOR_GRANT}
      FROM target LEFT JOIN sub ON true LEFT JOIN prior ON true`,
};

/**
 * The payment's route, channel and plan (AccessTarget) and, when the channel and the plan are there,
 * the buyer's subscription to the channel locked for the grant (`locked`; null otherwise), in one
 * statement. Call inside a transaction, then grantAndClaim.
 */
export async function lockAccessTarget(tx: Queryable, paymentId: string): Promise<AccessTarget & { locked: LockedForGrant | null }> {
  const { rows } = await tx.query<AccessTarget & Nullable<LockedForGrant>>({ ...TARGET_AND_LOCK, values: [paymentId] });
  if (!rows[0]) return { route: null, channel: null, plan: null, locked: null };
  const { route, channel, plan, ...locked } = rows[0];
  return { route, channel, plan, locked: locked.subscriptionId === null ? null : (locked as LockedForGrant) };
}

// The claim follows the grant's CTEs (after 'extended'), so the invites row is locked last, as when
// they were two statements. One row always: the grant's columns are NULL when its insert skipped, the
// claim's when the lease was not won.
const GRANT_AND_CLAIM = {
  name: 'invite-grant-and-claim',
  text: `WITH ${grantCtes}, ${claimCtes(9, 'extended')}
    SELECT extended."subscriptionId", extended."startsAt", extended."expiresAt", ${CLAIMED}
      FROM (SELECT) AS answer LEFT JOIN extended ON true LEFT JOIN claimed ON true`,
};

type Nullable<T> = { [K in keyof T]: T[K] | null };

export interface GrantAndClaimInput extends ClaimInput, Pick<GrantInput, 'planId' | 'durationDays'> {
  remindersMs: readonly number[];
}

/**
 * The order's grant (grantSubscription's, on the subscription lockAccessTarget locked) and the invite's
 * claim (claimInvite's), in one statement; an order granted before is answered with that grant
 * (fresh: false) and only claimed. A lost claim (null) writes nothing of the invite; the grant stands.
 */
export async function grantAndClaim(tx: Queryable, locked: LockedForGrant, g: GrantAndClaimInput): Promise<{ grant: Grant; claim: Claim | null }> {
  const prior = priorGrantOf(locked);
  if (prior) return { grant: prior, claim: await claimInvite(tx, g) };
  const { rows } = await tx.query<Nullable<Omit<Grant, 'fresh'>> & Nullable<ClaimedRow>>({
    ...GRANT_AND_CLAIM,
    values: [...grantValues(locked, g, g.remindersMs), ...claimValues(g)],
  });
  const { subscriptionId, startsAt, expiresAt, ...claimed } = rows[0]!;
  const extended = subscriptionId === null ? undefined : { subscriptionId, startsAt: startsAt!, expiresAt: expiresAt! };
  return { grant: await grantMade(tx, extended, g.orderId), claim: claimOf(claimed.orderId === null ? undefined : (claimed as ClaimedRow), g.orderId) };
}
