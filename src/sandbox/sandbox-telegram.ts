import type { Logger } from 'pino';
import { startFakeTelegram, type FakeTelegram } from './telegram.fake.js';

// Sandbox mode for Telegram (no TELEGRAM_BOT_TOKEN, not production): the fake Bot API runs in-process
// and what the bot "sent" is logged so a developer sees the invite.

export const SANDBOX_TELEGRAM_TOKEN = '1000001:sandbox-token';

export interface SandboxTelegram {
  fake: FakeTelegram;
  stop(): Promise<void>;
}

export async function startSandboxTelegram(log: Logger): Promise<SandboxTelegram> {
  const fake = await startFakeTelegram({ token: SANDBOX_TELEGRAM_TOKEN });
  // The links are the fake's own and grant nothing, so logging them is fine here (never with a real token).
  const stopLogging = fake.onCall((call) => {
    if (call.method !== 'sendMessage' || !call.acted) return;
    const markup = typeof call.body.reply_markup === 'string' ? (JSON.parse(call.body.reply_markup) as unknown) : call.body.reply_markup;
    const button = (markup as { inline_keyboard?: { url?: string }[][] } | undefined)?.inline_keyboard?.flat().find((b) => b.url?.startsWith('https://t.me/+'));
    log.info({ chatId: call.body.chat_id, text: call.body.text, sandboxLink: button?.url }, 'sandbox Telegram: message sent');
  });
  return {
    fake,
    async stop() {
      stopLogging();
      await fake.close();
    },
  };
}
