import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Service } from './service.js';

// What `npm start` says once it listens: where each surface is, and what is switched off and why.
// In a terminal it is a block of text for a person; otherwise (a container, a log collector) one
// structured log line with the same facts, so JSON logs stay JSON.

export interface BannerFacts {
  baseUrl: string;
  /** Label -> URL (or path hint). */
  urls: Array<[string, string]>;
  /** Label -> why it is off or simulated. */
  off: Array<[string, string]>;
}

export function bannerFacts(config: Config, service: Pick<Service, 'app' | 'runtime' | 'sandbox'>): BannerFacts {
  const base = service.runtime.publicBaseUrl();
  const has = (url: string) => service.app.hasRoute({ method: 'GET', url });
  const urls: Array<[string, string]> = [
    ['API', `${base}/api/orders (POST), ${base}/api/payment-status`],
    ['success page', `${base}/pay/success?order_id=<order>&token=<token> (the status_url of each order)`],
    ['dashboard', `${base}/admin/dashboard`],
    ['docs', has('/docs') ? `${base}/docs (OpenAPI: ${base}/docs/openapi.json)` : `${base}/docs/openapi.json`],
    ['health', `${base}/health/ready`],
  ];
  const { sandbox } = service;
  if (sandbox.telegram) urls.push(['sandbox chat', `${base}/sandbox/chat (talk to the bot as a buyer)`]);
  if (sandbox.nowPayments) urls.push(['sandbox checkout', `${base}/sandbox/checkout/<invoice> (the invoice_url of each sandbox order)`]);
  urls.push(['database', config.DATABASE_URL ? redactedDatabase(config.DATABASE_URL) : `embedded Postgres in ${config.EMBEDDED_PG_DIR} on port ${config.EMBEDDED_PG_PORT}`]);

  const off: Array<[string, string]> = [];
  if (!config.ADMIN_TOKEN) off.push(['admin API', 'ADMIN_TOKEN not set: /admin/* and /metrics answer 503 (the dashboard page loads but cannot read)']);
  if (sandbox.nowPayments) off.push(['NowPayments', 'sandbox: no NOWPAYMENTS_API_KEY / NOWPAYMENTS_IPN_SECRET, payments are simulated (POST /sandbox/orders/<order>/pay)']);
  if (sandbox.telegram) off.push(['Telegram', 'sandbox: no TELEGRAM_BOT_TOKEN, a fake Bot API; nothing reaches Telegram']);
  else if (config.TELEGRAM_UPDATES === 'off') off.push(['bot updates', 'TELEGRAM_UPDATES=off: the bot sends invites but hears no /start or joins (set webhook or polling)']);
  if (sandbox.payouts) off.push(['payouts', 'sandbox: no CHANGENOW_API_KEY / ETH_RPC_URL / HOST_WALLET_PRIVATE_KEY, owners are paid on a local EVM chain']);
  if (!config.STATUS_TOKEN_SECRET) off.push(['status links', 'STATUS_TOKEN_SECRET not set: a random one, so success-page links stop working after a restart']);
  if (!config.SUPPORT_CONTACT) off.push(['support contact', 'SUPPORT_CONTACT not set: buyer pages and /help tell buyers to write to the channel\'s admin']);
  return { baseUrl: base, urls, off };
}

function redactedDatabase(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    u.username = u.username ? u.username : '';
    return `${u.protocol}//${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return 'DATABASE_URL';
  }
}

export function bannerText(config: Config, facts: BannerFacts, version: string): string {
  const width = Math.max(...[...facts.urls, ...facts.off].map(([label]) => label.length)) + 2;
  const row = ([label, text]: [string, string]) => `  ${label.padEnd(width)}${text}`;
  const lines = [
    '',
    `TelePay Engine ${version} is up (${config.NODE_ENV}, Node ${process.version}) at ${facts.baseUrl}`,
    ...facts.urls.map(row),
  ];
  if (facts.off.length) lines.push('', 'Off or simulated:', ...facts.off.map(row));
  lines.push('');
  return `${lines.join('\n')}\n`;
}

/** Prints the banner: text on a terminal, one log line otherwise. */
export function printBanner(config: Config, service: Pick<Service, 'app' | 'runtime' | 'sandbox'>, log: Logger, version = process.env.npm_package_version ?? ''): void {
  const facts = bannerFacts(config, service);
  if (process.stdout.isTTY) process.stdout.write(bannerText(config, facts, version || 'dev'));
  else log.info({ urls: Object.fromEntries(facts.urls), off: Object.fromEntries(facts.off) }, 'TelePay Engine: where things are, and what is off');
}
