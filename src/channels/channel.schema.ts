import { getAddress, isAddress } from 'ethers';
import { z } from 'zod';
import { InvalidInputError } from '../domain/errors.js';
import { channelTextsPatchSchema } from './owner-texts.js';

// What a channel owner's configuration may look like, shared by the admin API (which also turns these
// schemas into its OpenAPI document) and the CLI. Telegram ids and money never become JS numbers:
// ids are digit strings checked to fit Postgres bigint, money is a decimal string with the scale of its
// NUMERIC column, so nothing is rounded on the way in.

const BIGINT_MIN = -(2n ** 63n);
const BIGINT_MAX = 2n ** 63n - 1n;

// zod runs every check even after one failed, so this must not throw on text that is not an integer.
const fitsBigint = (value: string) => {
  if (!/^-?\d+$/.test(value)) return true; // reported by the regex check
  const n = BigInt(value);
  return n >= BIGINT_MIN && n <= BIGINT_MAX;
};

const STRING_ID_HINT = 'send ids as JSON strings: a JSON number above 2^53 has already lost digits';

/** A Telegram channel id: negative, digits only, no leading zeros, within bigint. */
export const channelIdSchema = z
  .string({ error: (issue) => (issue.input === undefined ? 'required' : `must be a string such as "-1001234567890" (${STRING_ID_HINT})`) })
  .regex(/^-?\d+$/, 'must be an integer written as a string of digits with an optional leading "-", e.g. "-1001234567890"')
  .regex(/^-[1-9]\d*$/, 'Telegram channel ids are negative and have no leading zeros, e.g. "-1001234567890"')
  .refine(fitsBigint, 'does not fit a 64-bit integer')
  .meta({ description: 'Telegram channel id as a string (negative; kept exact beyond 2^53)', example: '-1001234567890' });

/** A Telegram user id: positive, digits only, within bigint. */
export const userIdSchema = z
  .string({ error: (issue) => (issue.input === undefined ? 'required' : `must be a string of digits such as "123456789" (${STRING_ID_HINT})`) })
  .regex(/^[1-9]\d*$/, 'must be a positive integer written as a string of digits, e.g. "123456789"')
  .refine(fitsBigint, 'does not fit a 64-bit integer');

export const planIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, "_" or "-"');

/** A non-negative decimal string with at most `places` decimals and `digits` integer digits (the NUMERIC column's scale). */
const decimalString = (places: number, digits: number, example: string) =>
  z
    .string({ error: (issue) => (issue.input === undefined ? 'required' : `must be a decimal string such as "${example}" (money is never sent as a JSON number)`) })
    .regex(/^-?\d+(\.\d+)?$/, `must be a decimal string such as "${example}"`)
    .refine((v) => !v.startsWith('-'), 'must not be negative')
    .refine((v) => (v.split('.')[1] ?? '').length <= places, `must have at most ${places} decimal places`)
    .refine((v) => v.split('.')[0]!.replace(/^0+(?=\d)/, '').length <= digits, `must be below 10^${digits}`);

const isZero = (v: string) => /^0+(\.0+)?$/.test(v);

export const priceUsdSchema = decimalString(2, 12, '9.99')
  .refine((v) => !isZero(v), 'must be greater than 0')
  .meta({ description: 'Price in USD, a decimal string with at most 2 decimals', example: '9.99' });

export const thresholdUsdSchema = decimalString(8, 12, '100')
  .refine((v) => !isZero(v), 'must be greater than 0')
  .meta({ description: 'Accumulated owner share (USD) at which a batch payout is made', example: '100' });

export const feePercentSchema = decimalString(2, 2, '10')
  .meta({ description: 'Platform fee in percent of the price, from 0 to 99.99', example: '10' });

// Networks whose addresses are EVM addresses (ChangeNow network codes and their common aliases). Only
// these are checked with ethers; see walletProblem for the rest.
export const EVM_NETWORKS: ReadonlySet<string> = new Set([
  'eth', 'erc20', 'ethereum', 'bsc', 'bep20', 'matic', 'polygon', 'arbitrum', 'arb', 'op', 'optimism', 'base',
  'avaxc', 'avax', 'ftm', 'fantom', 'linea', 'zksync', 'scroll', 'celo', 'cronos', 'cro', 'gnosis', 'xdai', 'blast', 'mantle',
]);

const tickerSchema = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[a-z0-9]{2,20}$/, 'must be a ticker of 2 to 20 letters or digits, e.g. "usdt" or "eth"');

const strategySchema = z.enum(['instant', 'threshold'], { error: 'must be "instant" or "threshold"' });

/**
 * Why an owner's wallet address cannot receive payouts on `network`, or null when it can.
 * EVM networks: ethers `isAddress`, with the 0x prefix required (ethers also accepts bare hex) and a
 * mixed-case address held to its checksum. Other networks (TRON, Bitcoin, TON, ...) have formats we do
 * not validate here: only a plausible shape is required, and ChangeNow rejects a bad address when the
 * payout exchange is created, which parks that payout for review rather than losing money.
 */
export function walletProblem(address: string, network: string): string | null {
  if (EVM_NETWORKS.has(network)) {
    if (!/^0x[0-9a-fA-F]{40}$/.test(address)) return `must be a 0x-prefixed EVM address (40 hex digits) for network "${network}"`;
    if (!isAddress(address)) return `is not a valid EVM address (mixed-case checksum does not match) for network "${network}"`;
    return null;
  }
  // The classic mistake: an Ethereum address given for another chain, where the coins would be lost.
  if (/^0x[0-9a-fA-F]{40}$/.test(address)) return `is an EVM address, but network "${network}" is not an EVM network: choose the network the wallet is on (e.g. "eth")`;
  if (network === 'trx' && !/^T[1-9A-HJ-NP-Za-km-z]{33}$/.test(address)) return 'must be a TRON address (T followed by 33 base58 characters) for network "trx"';
  if (!/^[A-Za-z0-9:_-]{20,128}$/.test(address)) return `does not look like an address for network "${network}" (20 to 128 letters, digits, ":", "_" or "-")`;
  return null;
}

/** EVM addresses are stored in checksum form so the same wallet always compares equal. */
export function normalizeWallet(address: string, network: string): string {
  return EVM_NETWORKS.has(network) ? getAddress(address) : address;
}

const settingsShape = {
  closed_channel_id: channelIdSchema,
  title: z.string().trim().min(1, 'must not be empty').max(200),
  wallet_address: z.string().trim().min(1, 'must not be empty').max(128),
  currency: tickerSchema.meta({ description: 'Currency the owner is paid in (ChangeNow ticker)', example: 'usdt' }),
  network: tickerSchema.meta({ description: 'Network of the owner wallet (ChangeNow network code)', example: 'eth' }),
  strategy: strategySchema,
  threshold_usd: thresholdUsdSchema.nullish(),
  platform_fee_percent: feePercentSchema,
};

export interface SettingsInput {
  closed_channel_id: string;
  title: string;
  wallet_address: string;
  currency: string;
  network: string;
  strategy: 'instant' | 'threshold';
  threshold_usd?: string | null;
  platform_fee_percent: string;
  open_channel_id?: string;
}

// Only addIssue is used, so one helper serves every object schema that embeds the settings.
type IssueSink = Pick<z.core.$RefinementCtx, 'addIssue'>;

function checkSettings(value: SettingsInput, ctx: IssueSink): void {
  if (value.strategy === 'threshold' && (value.threshold_usd === undefined || value.threshold_usd === null)) {
    ctx.addIssue({ code: 'custom', path: ['threshold_usd'], message: 'is required (greater than 0) when strategy is "threshold"' });
  }
  const wallet = walletProblem(value.wallet_address, value.network);
  if (wallet) ctx.addIssue({ code: 'custom', path: ['wallet_address'], message: wallet });
  if (value.open_channel_id !== undefined && value.open_channel_id === value.closed_channel_id) {
    ctx.addIssue({ code: 'custom', path: ['closed_channel_id'], message: 'must differ from open_channel_id' });
  }
}

/** The settings of a channel without its plans; PATCH checks the merged result of current + patch against it. */
export const channelSettingsSchema = z
  .strictObject({ open_channel_id: channelIdSchema.optional(), ...settingsShape, texts: channelTextsPatchSchema.nullish() })
  .superRefine(checkSettings)
  .transform((v) => ({ ...v, wallet_address: normalizeWallet(v.wallet_address, v.network) }));

const planTitle = z.string().trim().min(1, 'must not be empty').max(200);
const durationDays = z.int({ error: 'must be a whole number of days' }).min(1, 'must be at least 1').max(36_500);

export const newPlanSchema = z.strictObject({
  plan_id: planIdSchema.optional().meta({ description: 'Optional; generated when absent' }),
  title: planTitle,
  price_usd: priceUsdSchema,
  duration_days: durationDays,
  active: z.boolean().optional(),
});

/** In a PATCH: a plan_id of this channel updates that plan (only the fields given); anything else adds a plan. */
export const planPatchSchema = z.strictObject({
  plan_id: planIdSchema.optional(),
  title: planTitle.optional(),
  price_usd: priceUsdSchema.optional(),
  duration_days: durationDays.optional(),
  active: z.boolean().optional(),
});

function uniquePlanIds(plans: { plan_id?: string | undefined }[], ctx: IssueSink): void {
  const seen = new Set<string>();
  plans.forEach((plan, i) => {
    if (plan.plan_id === undefined) return;
    if (seen.has(plan.plan_id)) ctx.addIssue({ code: 'custom', path: ['plans', i, 'plan_id'], message: `"${plan.plan_id}" appears twice` });
    seen.add(plan.plan_id);
  });
}

export const createChannelSchema = z
  .strictObject({
    open_channel_id: channelIdSchema,
    ...settingsShape,
    plans: z.array(newPlanSchema).min(1, 'a channel needs at least one plan').max(50),
  })
  .superRefine((value, ctx) => {
    checkSettings(value, ctx);
    uniquePlanIds(value.plans, ctx);
  })
  .transform((v) => ({ ...v, wallet_address: normalizeWallet(v.wallet_address, v.network) }));

export const patchChannelSchema = z
  .strictObject({
    closed_channel_id: settingsShape.closed_channel_id.optional(),
    title: settingsShape.title.optional(),
    wallet_address: settingsShape.wallet_address.optional(),
    currency: settingsShape.currency.optional(),
    network: settingsShape.network.optional(),
    strategy: settingsShape.strategy.optional(),
    threshold_usd: settingsShape.threshold_usd,
    platform_fee_percent: settingsShape.platform_fee_percent.optional(),
    plans: z.array(planPatchSchema).max(50).optional(),
    // The owner's wording of bot messages (src/channels/owner-texts.ts); null restores every default.
    texts: channelTextsPatchSchema.nullish(),
  })
  .superRefine((value, ctx) => {
    if (Object.keys(value).length === 0) ctx.addIssue({ code: 'custom', message: 'nothing to update: give at least one field' });
    if (value.plans) uniquePlanIds(value.plans, ctx);
  });

export type CreateChannelInput = z.output<typeof createChannelSchema>;
export type PatchChannelInput = z.output<typeof patchChannelSchema>;
export type NewPlanInput = z.output<typeof newPlanSchema>;
export type PlanPatchInput = z.output<typeof planPatchSchema>;

export const planViewSchema = z.object({
  plan_id: z.string(),
  title: z.string(),
  price_usd: z.string(),
  duration_days: z.number(),
  active: z.boolean(),
});

export const channelViewSchema = z.object({
  open_channel_id: z.string(),
  closed_channel_id: z.string(),
  title: z.string(),
  wallet_address: z.string(),
  currency: z.string(),
  network: z.string(),
  strategy: z.enum(['instant', 'threshold']),
  threshold_usd: z.string().nullable(),
  platform_fee_percent: z.string(),
  plans: z.array(planViewSchema),
  created_at: z.string(),
  updated_at: z.string(),
});

export type ChannelView = z.infer<typeof channelViewSchema>;
export type PlanView = z.infer<typeof planViewSchema>;

/** Input that failed validation, each problem naming its field (e.g. "plans.0.price_usd"): a 400 over HTTP, a message in the CLI. */
export class ChannelInputError extends InvalidInputError {
  override name = 'ChannelInputError';

  static fromZod(error: z.ZodError, prefix: (string | number)[] = []): ChannelInputError {
    return new ChannelInputError(error.issues.map((issue) => ({ field: [...prefix, ...issue.path].map(String).join('.'), message: issue.message })));
  }
}
