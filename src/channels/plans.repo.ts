import { channelColumns, splitJoined, type ChannelRow, type Queryable } from './channels.repo.js';

// Plans are never deleted: orders reference them and keep the price they were sold at. A plan that is
// no longer sold is marked inactive. A plan is keyed by (open_channel_id, plan_id): two channels may
// both have a plan called "month", so every lookup names the channel.

export interface PlanRow {
  planId: string;
  openChannelId: string;
  title: string;
  priceUsd: string;
  durationDays: number;
  active: boolean;
  createdAt: Date;
}

export type NewPlan = Omit<PlanRow, 'createdAt'>;

/** The columns read as a PlanRow; `from` and `as` qualify and prefix them in a join (as channelColumns). */
function planColumns(from = '', as = ''): string {
  return `${from}plan_id AS "${as}planId", ${from}open_channel_id::text AS "${as}openChannelId", ${from}title AS "${as}title",
  ${from}price_usd::text AS "${as}priceUsd", ${from}duration_days AS "${as}durationDays", ${from}active AS "${as}active", ${from}created_at AS "${as}createdAt"`;
}

const COLUMNS = planColumns();

export async function insertPlan(db: Queryable, p: NewPlan): Promise<PlanRow> {
  const { rows } = await db.query<PlanRow>(
    `INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days, active)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [p.planId, p.openChannelId, p.title, p.priceUsd, p.durationDays, p.active],
  );
  return rows[0]!;
}

export async function updatePlan(db: Queryable, p: NewPlan): Promise<PlanRow> {
  const { rows } = await db.query<PlanRow>(
    `UPDATE plans SET title = $3, price_usd = $4, duration_days = $5, active = $6
      WHERE plan_id = $1 AND open_channel_id = $2 RETURNING ${COLUMNS}`,
    [p.planId, p.openChannelId, p.title, p.priceUsd, p.durationDays, p.active],
  );
  if (!rows[0]) throw new Error(`plan ${p.planId} of channel ${p.openChannelId} vanished during its update`);
  return rows[0];
}

const FIND = { name: 'plan-find', text: `SELECT ${COLUMNS} FROM plans WHERE open_channel_id = $1 AND plan_id = $2` };

/** A plan is named by its channel and its id: ids are unique per channel only (migration 010). */
export async function findPlan(db: Queryable, openChannelId: string, planId: string): Promise<PlanRow | null> {
  const { rows } = await db.query<PlanRow>({ ...FIND, values: [openChannelId, planId] });
  return rows[0] ?? null;
}

const CHANNEL_WITH_PLAN = {
  name: 'channel-with-plan',
  text: `SELECT ${channelColumns('c.')}, ${planColumns('p.', 'plan.')}
           FROM channels c LEFT JOIN plans p ON p.open_channel_id = c.open_channel_id AND p.plan_id = $2
          WHERE c.open_channel_id = $1`,
};

/**
 * The channel and its plan in one round trip (an order being created needs both): channel null when
 * there is no such channel, plan null when the channel has no plan of that id.
 */
export async function findChannelWithPlan(db: Queryable, openChannelId: string, planId: string): Promise<{ channel: ChannelRow | null; plan: PlanRow | null }> {
  const { rows } = await db.query<Record<string, unknown>>({ ...CHANNEL_WITH_PLAN, values: [openChannelId, planId] });
  if (!rows[0]) return { channel: null, plan: null };
  const [channel, plan] = splitJoined<ChannelRow, PlanRow>(rows[0], 'plan.', 'planId');
  return { channel, plan };
}

const CHANNEL_WITH_PLAN_ORDERED = {
  name: 'channel-with-plan+order-insert',
  text: `WITH target AS (${CHANNEL_WITH_PLAN.text}),
         ordered AS (
           INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source)
           SELECT $3, $4, "openChannelId"::bigint, "plan.planId", "plan.priceUsd"::numeric, $5 FROM target WHERE "plan.active"
           RETURNING order_id)
         SELECT target.*, EXISTS (SELECT 1 FROM ordered) AS "ordered" FROM target`,
};

/**
 * findChannelWithPlan, and in the same statement the order, written when the plan is sold (it exists
 * and is active), at its price: one round trip for an order made through the API. `ordered` says
 * whether it was written; when not, channel and plan say why.
 */
export async function findChannelWithPlanOrdering(
  db: Queryable,
  order: { orderId: string; buyerTelegramId: string; openChannelId: string; planId: string; source: string },
): Promise<{ channel: ChannelRow | null; plan: PlanRow | null; ordered: boolean }> {
  const { rows } = await db.query<Record<string, unknown>>({
    ...CHANNEL_WITH_PLAN_ORDERED,
    values: [order.openChannelId, order.planId, order.orderId, order.buyerTelegramId, order.source],
  });
  if (!rows[0]) return { channel: null, plan: null, ordered: false };
  const { ordered, ...row } = rows[0];
  const [channel, plan] = splitJoined<ChannelRow, PlanRow>(row, 'plan.', 'planId');
  return { channel, plan, ordered: ordered === true };
}

export async function plansOfChannels(db: Queryable, openChannelIds: string[]): Promise<PlanRow[]> {
  if (openChannelIds.length === 0) return [];
  const { rows } = await db.query<PlanRow>(
    `SELECT ${COLUMNS} FROM plans WHERE open_channel_id = ANY($1::bigint[]) ORDER BY created_at, plan_id`,
    [openChannelIds],
  );
  return rows;
}

/** The plans a buyer can choose, shortest first. */
export async function activePlansOf(db: Queryable, openChannelId: string): Promise<PlanRow[]> {
  const { rows } = await db.query<PlanRow>(
    `SELECT ${COLUMNS} FROM plans WHERE open_channel_id = $1 AND active ORDER BY duration_days, price_usd, plan_id`,
    [openChannelId],
  );
  return rows;
}

/**
 * The active plan a legacy order (which carried no plan) paid for, recognised by its price. When two
 * active plans share a price the oldest wins, so the same IPN always maps to the same plan.
 */
export async function findActivePlanByPrice(db: Queryable, openChannelId: string, priceUsd: string): Promise<PlanRow | null> {
  const { rows } = await db.query<PlanRow>(
    `SELECT ${COLUMNS} FROM plans
      WHERE open_channel_id = $1 AND active AND price_usd = $2::numeric
      ORDER BY created_at, plan_id LIMIT 1`,
    [openChannelId, priceUsd],
  );
  return rows[0] ?? null;
}
