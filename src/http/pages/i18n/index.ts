import type { Dictionary } from './dictionary.js';
import { en } from './en.js';
import { ru } from './ru.js';

export { fill, plural, type Dictionary, type Plural } from './dictionary.js';

// The languages the buyer's pages speak. To add one: copy en.ts to <tag>.ts, translate it (the
// Dictionary type says what is missing), and list it here. The bot carries the buyer's Telegram
// language as ?lang=; without it the browser's Accept-Language decides; English is the fallback.

export const DICTIONARIES: Readonly<Record<string, Dictionary>> = { en, ru };
export const FALLBACK = en;

/** The dictionary for a tag ("ru", "ru-RU", "RU"), or null when that language is not spoken here. */
export function dictionaryFor(tag: string | null | undefined): Dictionary | null {
  if (!tag) return null;
  const base = tag.trim().toLowerCase().split(/[-_]/)[0] ?? '';
  return Object.hasOwn(DICTIONARIES, base) ? DICTIONARIES[base]! : null;
}

/** Accept-Language's tags, best first (q=0 dropped; malformed parts ignored). */
export function acceptedLanguages(header: string | null | undefined): string[] {
  if (!header) return [];
  return header
    .split(',')
    .slice(0, 20)
    .map((part, index) => {
      const [tag = '', ...params] = part.trim().split(';');
      const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
      return { tag: tag.trim(), q: q === undefined ? 1 : Number(q), index };
    })
    .filter((l) => /^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$/.test(l.tag) && l.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index)
    .map((l) => l.tag);
}

/** ?lang= first, then Accept-Language, then English. */
export function pickLanguage(lang: string | null | undefined, acceptLanguage?: string | null): Dictionary {
  return dictionaryFor(lang) ?? acceptedLanguages(acceptLanguage).map(dictionaryFor).find((d) => d !== null) ?? FALLBACK;
}
