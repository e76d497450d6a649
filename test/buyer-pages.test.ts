import { describe, expect, it } from 'vitest';
import { acceptedLanguages, DICTIONARIES, pickLanguage, plural } from '../src/http/pages/i18n/index.js';
import { contactHtml } from '../src/http/pages/layout.js';
import { buyData, CALLBACK_MAX_BYTES, parseBuyData, planMatches } from '../src/telegram/keyboards.js';

// The pieces of the buyer pages and the bot that need no service: language choice, plural forms, the
// support contact as HTML, and plan buttons within Telegram's 64 bytes.

describe('languages', () => {
  it('?lang= first, then Accept-Language by quality, then English', () => {
    expect(pickLanguage('ru', 'en').lang).toBe('ru');
    expect(pickLanguage('RU-ru', null).lang).toBe('ru');
    expect(pickLanguage('xx', 'de;q=1, ru;q=0.8, en;q=0.5').lang).toBe('ru');
    expect(pickLanguage(undefined, 'en-GB,ru;q=0.9').lang).toBe('en');
    expect(pickLanguage(undefined, 'fr, ru;q=0').lang).toBe('en');
    expect(pickLanguage(undefined, '<script>').lang).toBe('en');
    expect(acceptedLanguages('ru;q=0.5, en-US, *;q=0.1')).toEqual(['en-US', 'ru']); // "*" names no language
  });

  it('every language has every text, and plural forms for its own rules', () => {
    const keys = (o: object): string[] => Object.entries(o).flatMap(([k, v]) => (typeof v === 'object' && v !== null && !('other' in v) ? keys(v).map((s) => `${k}.${s}`) : [k]));
    for (const d of Object.values(DICTIONARIES)) expect(keys(d).sort()).toEqual(keys(DICTIONARIES.en!).sort());
    expect([1, 2, 5, 30, 365].map((n) => plural('ru', DICTIONARIES.ru!.page.days, n))).toEqual(['1 день', '2 дня', '5 дней', '30 дней', '365 дней']);
    expect([1, 30].map((n) => plural('en', DICTIONARIES.en!.page.days, n))).toEqual(['1 day', '30 days']);
  });
});

describe('the support contact', () => {
  it('links a Telegram handle, an e-mail address and an https URL; anything else is escaped text', () => {
    expect(contactHtml('@telepay_help')).toBe('<a href="https://t.me/telepay_help" rel="noopener noreferrer" target="_blank">@telepay_help</a>');
    expect(contactHtml('mailto:help@example.com')).toBe('<a href="mailto:help@example.com">help@example.com</a>');
    expect(contactHtml('https://example.com/help')).toContain('href="https://example.com/help"');
    expect(contactHtml('javascript:alert(1)')).toBe('javascript:alert(1)');
    expect(contactHtml('<b onclick="x">')).toBe('&lt;b onclick=&quot;x&quot;&gt;');
  });
});

describe('plan buttons', () => {
  it('name the channel and the plan within 64 bytes, the longest ids by a digest', () => {
    const channel = '-1009223372036854775';
    for (const plan of ['month', 'a'.repeat(39), 'b'.repeat(40), 'c'.repeat(64)]) {
      const data = buyData(channel, plan);
      expect(Buffer.byteLength(data)).toBeLessThanOrEqual(CALLBACK_MAX_BYTES);
      const parsed = parseBuyData(data)!;
      expect(parsed.openChannelId).toBe(channel);
      expect(planMatches(plan, parsed.planRef)).toBe(true);
      expect(planMatches(`${plan}x`, parsed.planRef)).toBe(false);
    }
    expect(parseBuyData('buy:month')).toBeNull();
  });
});
