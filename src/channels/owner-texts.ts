import { z } from 'zod';
import { textProblem } from '../domain/text.js';
import type { Queryable } from '../persistence/transaction.js';

// The owner's own wording of some bot messages, per channel (channels.texts, migration 014). Every
// text has a built-in default, so a channel without texts (or with one that stopped being valid)
// speaks exactly as before. Texts are checked when they are saved — known keys only, a length limit,
// no NUL or control characters, only the placeholders the message can fill ({channel}, {until}), the
// ones it needs present — and checked again when read, falling back to the default. The bot sends them
// as plain text (no parse_mode), so nothing in them is ever read as Markdown or HTML.

export const PLACEHOLDERS = ['channel', 'until'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

interface TextRule {
  default: string;
  /** Placeholders the text may use. */
  allowed: readonly Placeholder[];
  /** Placeholders the text must use (the message would not make sense without them). */
  required: readonly Placeholder[];
  max: number;
  description: string;
}

export const TEXT_RULES = {
  plans_prompt: {
    default: '{channel}: choose a plan.',
    allowed: ['channel'],
    required: [],
    max: 1000,
    description: 'Above the plan buttons (/start <channel>, the renew button). {channel}: the channel title.',
  },
  invite_thanks: {
    default: 'Payment received, thank you.',
    allowed: ['channel', 'until'],
    required: [],
    max: 500,
    description:
      'The first line of the invite message. The service always adds "Your access to {channel} runs until {until}. The button opens the channel; the link admits you once."',
  },
  reminder: {
    default: 'Your subscription to {channel} ends on {until}. Renew now to keep your access.',
    allowed: ['channel', 'until'],
    required: ['until'],
    max: 1000,
    description: 'Sent before the subscription ends (SUBSCRIPTION_REMINDERS), with a renew button. Must say when: {until}.',
  },
  expired: {
    default: 'Your subscription to {channel} has ended, so you were removed from the channel. Renew any time to come back.',
    allowed: ['channel'],
    required: [],
    max: 1000,
    description: 'Sent when the buyer was removed at expiry (or by an admin), with a renew button.',
  },
} as const satisfies Record<string, TextRule>;

export type TextKey = keyof typeof TEXT_RULES;
export const TEXT_KEYS = Object.keys(TEXT_RULES) as TextKey[];

/** What is stored: only the keys the owner set. */
export type ChannelTexts = Partial<Record<TextKey, string>>;
/** A change: a string sets a text, null puts the default back. */
export type ChannelTextsPatch = Partial<Record<TextKey, string | null>>;

// C0 controls except tab and newline, DEL, and the bidirectional overrides that can make a text read
// differently from what it says (a spoofed amount or link).
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F\u202A-\u202E\u2066-\u2069]/;
const TOKEN = /\{([^{}]*)\}/g;

/** Why `text` cannot be the text `key`, or null when it can. */
export function textRuleProblem(key: TextKey, text: string): string | null {
  const rule: TextRule = TEXT_RULES[key];
  const storable = textProblem(text);
  if (storable) return storable;
  if (CONTROL.test(text)) return 'must not contain control characters (only line breaks and tabs) or bidirectional overrides';
  if (text.trim().length === 0) return 'must not be empty (send null to use the default)';
  if ([...text].length > rule.max) return `must be at most ${rule.max} characters`;
  const used = new Set<string>();
  for (const [, name] of text.matchAll(TOKEN)) {
    if (!(rule.allowed as readonly string[]).includes(name!)) {
      const allowed = rule.allowed.map((p) => `{${p}}`).join(', ');
      return `unknown placeholder {${name}}: this text may use ${allowed}`;
    }
    used.add(name!);
  }
  if (/[{}]/.test(text.replace(TOKEN, ''))) return `a brace must be part of a placeholder (${rule.allowed.map((p) => `{${p}}`).join(', ')})`;
  const missing = rule.required.filter((p) => !used.has(p));
  if (missing.length) return `must contain ${missing.map((p) => `{${p}}`).join(', ')}`;
  return null;
}

function textSchema(key: TextKey) {
  return z
    .string({ error: 'must be a string, or null for the default' })
    .transform((v) => v.replace(/\r\n?/g, '\n').trim())
    .superRefine((value, ctx) => {
      const problem = textRuleProblem(key, value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .meta({ description: TEXT_RULES[key].description, example: TEXT_RULES[key].default });
}

const known = TEXT_KEYS.join(', ');

/** The `texts` of a channel PATCH: known keys only; null for a key (or for the whole object) restores the default. */
export const channelTextsPatchSchema = z
  .strictObject(Object.fromEntries(TEXT_KEYS.map((k) => [k, textSchema(k).nullable().optional()])) as Record<TextKey, z.ZodOptional<z.ZodNullable<ReturnType<typeof textSchema>>>>, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown text ${issue.keys.map((k) => `"${k}"`).join(', ')}: the known texts are ${known}` : undefined),
  })
  .meta({ description: `The owner's wording of bot messages (${known}); null restores a default. Sent as plain text.` });

/** A stored value as the bot uses it: each valid text kept, anything else (bad key, bad text) dropped. */
export function storedTexts(value: unknown): ChannelTexts {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  const texts: ChannelTexts = {};
  for (const key of TEXT_KEYS) {
    const text = (value as Record<string, unknown>)[key];
    if (typeof text === 'string' && textRuleProblem(key, text) === null) texts[key] = text;
  }
  return texts;
}

/** The text to send: the owner's if set and valid, else the default, with its placeholders filled in one pass. */
export function renderText(key: TextKey, texts: unknown, values: Record<Placeholder, string>): string {
  const template = storedTexts(texts)[key] ?? TEXT_RULES[key].default;
  // One pass: a value that itself contains "{until}" (a channel title) is not expanded again.
  return template.replace(TOKEN, (whole, name: string) => ((PLACEHOLDERS as readonly string[]).includes(name) ? values[name as Placeholder] : whole));
}

/** What the admin API shows: the owner's texts and what each message says in effect. */
export function textsView(value: unknown) {
  const texts = storedTexts(value);
  return {
    texts,
    effective: Object.fromEntries(TEXT_KEYS.map((k) => [k, texts[k] ?? TEXT_RULES[k].default])) as Record<TextKey, string>,
    defaults: Object.fromEntries(TEXT_KEYS.map((k) => [k, TEXT_RULES[k].default])) as Record<TextKey, string>,
  };
}

/** The channel's stored texts (the raw jsonb), or undefined when there is no such channel. */
export async function channelTexts(db: Queryable, openChannelId: string): Promise<ChannelTexts | undefined> {
  const { rows } = await db.query<{ texts: unknown }>('SELECT texts FROM channels WHERE open_channel_id = $1', [openChannelId]);
  return rows[0] ? storedTexts(rows[0].texts) : undefined;
}

/**
 * Applies a texts change (null: all defaults again; per key: a string sets it, null removes it). Call
 * inside the transaction that holds the channel's row lock (the channel PATCH does), so two changes
 * merge one after the other.
 */
export async function saveChannelTexts(db: Queryable, openChannelId: string, patch: ChannelTextsPatch | null): Promise<ChannelTexts> {
  const set = Object.fromEntries(Object.entries(patch ?? {}).filter(([, v]) => typeof v === 'string'));
  const removed = patch === null ? TEXT_KEYS : Object.entries(patch).filter(([, v]) => v === null).map(([k]) => k);
  const { rows } = await db.query<{ texts: unknown }>(
    `UPDATE channels SET texts = nullif((coalesce(texts, '{}'::jsonb) - $3::text[]) || $2::jsonb, '{}'::jsonb), updated_at = now()
      WHERE open_channel_id = $1 RETURNING texts`,
    [openChannelId, JSON.stringify(set), removed],
  );
  return storedTexts(rows[0]?.texts);
}
