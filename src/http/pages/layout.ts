import { DICTIONARIES, fill, type Dictionary } from './i18n/index.js';

// The shell every buyer page shares: self-contained (no external assets: the pages must work behind
// any network policy and leak nothing to third parties), a per-response CSP nonce for the inline
// script and style, the language links, and the help line. Anything from a URL, the database or
// configuration is written through escapeHtml, or by the page's script through textContent.

export const BASE_STYLE = `
  :root { color-scheme: light dark; --bg: #f3f5f9; --card: #ffffff; --fg: #1b1f27; --muted: #687182; --line: #e2e6ee;
    --accent: #2f6fd6; --accent-fg: #ffffff; --ok: #2e9d5b; --warn: #c9731f; --bad: #c94444; --warn-bg: #fff6ec; --bad-bg: #fdf0f0;
    font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  @media (prefers-color-scheme: dark) {
    :root { --bg: #0f1217; --card: #1a1e26; --fg: #e8ebf1; --muted: #9aa3b2; --line: #2b313c; --accent: #5b8ef0; --warn-bg: #2c2216; --bad-bg: #2e1a1a; }
  }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 1.25rem .75rem 2rem; background: var(--bg); color: var(--fg); line-height: 1.45; }
  .top, main, .help { max-width: 34rem; margin-left: auto; margin-right: auto; }
  .top { display: flex; justify-content: space-between; align-items: center; margin-bottom: .75rem; font-size: .9rem; color: var(--muted); }
  .brand { font-weight: 700; letter-spacing: .02em; color: var(--fg); }
  .langs a { color: var(--muted); text-decoration: none; margin-left: .6rem; }
  .langs a[aria-current] { color: var(--fg); font-weight: 600; }
  main { background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 1.5rem 1.4rem; box-shadow: 0 1px 3px rgba(0,0,0,.06); }
  h1 { font-size: 1.4rem; margin: 0 0 .2rem; }
  .order { color: var(--muted); font-size: .85rem; margin: 0 0 1rem; word-break: break-all; }
  dl { margin: 0 0 1.25rem; border-top: 1px solid var(--line); }
  dl > div { display: flex; justify-content: space-between; gap: 1rem; padding: .5rem 0; border-bottom: 1px solid var(--line); }
  dt { color: var(--muted); white-space: nowrap; }
  dd { margin: 0; text-align: right; font-weight: 600; word-break: break-word; }
  .button { display: inline-block; margin-top: .75rem; padding: .75rem 1.25rem; border-radius: 10px; border: 0; background: var(--accent); color: var(--accent-fg);
    text-decoration: none; font: inherit; font-weight: 600; cursor: pointer; text-align: center; }
  .button.secondary { background: transparent; color: var(--accent); border: 1px solid var(--accent); }
  .button[disabled] { opacity: .55; cursor: default; }
  .box { border-radius: 10px; padding: .75rem 1rem; margin: 1rem 0 0; }
  .box.warn { background: var(--warn-bg); border-left: 4px solid var(--warn); }
  .box.bad { background: var(--bad-bg); border-left: 4px solid var(--bad); }
  .box p { margin: 0 0 .5rem; }
  .box p:last-child { margin-bottom: 0; }
  .fine { color: var(--muted); font-size: .85rem; margin: .75rem 0 0; }
  .help { color: var(--muted); font-size: .85rem; margin-top: 1rem; padding: 0 .25rem; }
  .help a { color: var(--accent); }
  /* Author display rules (.button) beat the UA's [hidden] rule; without this a hidden button shows. */
  [hidden] { display: none !important; }
`;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch);
}

/** Inline script and style only with this response's nonce; the page may talk to us and nothing else. */
export function contentSecurityPolicy(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** A support contact as HTML: a Telegram @handle, an e-mail address (or mailto:) or an http(s) URL become links; anything else is text. */
export function contactHtml(contact: string): string {
  const c = contact.trim();
  const handle = /^@([A-Za-z0-9_]{4,32})$/.exec(c);
  if (handle) return `<a href="https://t.me/${handle[1]}" rel="noopener noreferrer" target="_blank">${escapeHtml(c)}</a>`;
  const mail = /^(?:mailto:)?([^\s@<>"']+@[^\s@<>"']+\.[A-Za-z]{2,})$/i.exec(c);
  if (mail) return `<a href="mailto:${escapeHtml(mail[1]!)}">${escapeHtml(mail[1]!)}</a>`;
  if (/^https?:\/\/[^\s<>"']+$/i.test(c)) return `<a href="${escapeHtml(c)}" rel="noopener noreferrer" target="_blank">${escapeHtml(c.replace(/^https?:\/\//i, ''))}</a>`;
  return escapeHtml(c);
}

/** The help line under every buyer page. */
export function helpHtml(dict: Dictionary, supportContact: string | null | undefined): string {
  return supportContact?.trim()
    ? escapeHtml(dict.help.withContact).replace('{contact}', contactHtml(supportContact))
    : escapeHtml(dict.help.withoutContact);
}

/** Links to this page in every language (the query kept, lang replaced). */
function languageLinks(dict: Dictionary, query: URLSearchParams): string {
  return Object.values(DICTIONARIES)
    .map((d) => {
      const q = new URLSearchParams(query);
      q.set('lang', d.lang);
      const current = d.lang === dict.lang ? ' aria-current="true"' : '';
      return `<a href="?${escapeHtml(q.toString())}" hreflang="${d.lang}" lang="${d.lang}"${current}>${escapeHtml(d.lang.toUpperCase())}</a>`;
    })
    .join('');
}

export interface PageOptions {
  nonce: string;
  dict: Dictionary;
  title: string;
  /** The <main> content (HTML). */
  body: string;
  /** The page's query, for the language links (omit for no links). */
  query?: URLSearchParams;
  /** The help line's contact; undefined: no help line. */
  help?: { supportContact: string | null | undefined };
  brand?: string;
  style?: string;
  /** Data for the script, as JSON in a non-executed block (id "page-data"). */
  data?: unknown;
  script?: string;
}

/** JSON that can sit inside <script>: no "</script>", no "<!--". */
const jsonForScript = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');

export function page(o: PageOptions): string {
  const nonce = escapeHtml(o.nonce);
  return `<!doctype html>
<html lang="${escapeHtml(o.dict.lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(o.title)}</title>
<style nonce="${nonce}">${BASE_STYLE}${o.style ?? ''}</style>
</head>
<body>
<header class="top"><span class="brand">${escapeHtml(o.brand ?? 'TelePay')}</span>${o.query ? `<nav class="langs">${languageLinks(o.dict, o.query)}</nav>` : ''}</header>
<main>
${o.body}
</main>
${o.help ? `<footer class="help" id="help">${helpHtml(o.dict, o.help.supportContact)}</footer>` : ''}
${o.data === undefined ? '' : `<script type="application/json" id="page-data" nonce="${nonce}">${jsonForScript(o.data)}</script>`}
${o.script ? `<script nonce="${nonce}">${o.script}</script>` : ''}
</body>
</html>`;
}

export { fill };
