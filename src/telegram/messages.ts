import { renderText } from '../channels/owner-texts.js';

// What the bot says to a buyer about one channel, in the owner's words where the owner chose some
// (channels.texts, src/channels/owner-texts.ts) and in the built-in ones otherwise. Every text here is
// sent as plain text — never with a parse_mode — so nothing an owner (or a channel title) contains is
// read as Markdown or HTML by Telegram.

/** The channel as these texts need it: its title and its stored texts (absent or null: the defaults). */
export interface ChannelWords {
  title: string;
  texts?: unknown;
}

/** "2026-05-01 12:00 UTC": how the bot writes a moment (minutes, UTC). */
export function formatDate(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Above the plan buttons. */
export function plansPrompt(channel: ChannelWords): string {
  return renderText('plans_prompt', channel.texts, { channel: channel.title, until: '' });
}

/**
 * The invite DM: the owner's thank-you line, then what the service always says — until when, and that
 * the link admits once. The invite actor sends it (with the "Open the channel" button).
 */
export function inviteText(channel: ChannelWords, grant: { expiresAt: Date }): string {
  const until = formatDate(grant.expiresAt);
  const thanks = renderText('invite_thanks', channel.texts, { channel: channel.title, until });
  return `${thanks} Your access to ${channel.title} runs until ${until}. The button opens the channel; the link admits you once.`;
}

/** Before the subscription ends (with a renew button). */
export function reminderText(channel: ChannelWords, expiresAt: Date): string {
  return renderText('reminder', channel.texts, { channel: channel.title, until: formatDate(expiresAt) });
}

/** After the buyer was removed (with a renew button). */
export function expiredText(channel: ChannelWords): string {
  return renderText('expired', channel.texts, { channel: channel.title, until: '' });
}

/** The DM with the single-use link for a buyer an admin let in by hand (src/channels/owner-access.ts). */
export function grantInviteText(channel: ChannelWords, until: Date, linkExpiresAt: Date): string {
  return `You were given access to ${channel.title} until ${formatDate(until)}. The button opens the channel; the link admits you once and works until ${formatDate(linkExpiresAt)}.`;
}
