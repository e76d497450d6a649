import type { DescribeStatus } from '../../../intake/payment-status.js';

// What the buyer's pages say, in one language. One file per language (en.ts, ru.ts, ...) exports a
// Dictionary; index.ts lists them. Texts are plain strings with {placeholders} (fill() on the server,
// the same few lines in the pages' scripts) and plural forms keyed by Intl.PluralRules categories, so
// the part the browser uses travels to it as JSON. The status description is a function: its wording
// depends on several facts at once.

/** Plural forms by Intl.PluralRules category; `other` is required, the rest as the language needs. */
export type Plural = Partial<Record<Intl.LDMLPluralRule, string>> & { other: string };

export interface Dictionary {
  /** BCP 47 tag, as written in <html lang> and taken from ?lang= ("en", "ru"). */
  lang: string;
  /** The language's own name, for a language switcher. */
  name: string;
  describeStatus: DescribeStatus;
  /** Sent to the browser: the success page script words what the status API answers with these. */
  page: {
    title: string;
    order: string; // {id}
    checking: string;
    steps: { waiting_for_payment: string; confirming: string; confirmed: string; invite_sent: string; done: string };
    badges: { underpaid: string; failed: string; needs_review: string };
    channel: string;
    plan: string;
    price: string;
    paid: string;
    accessUntil: string;
    days: Plural; // {n}
    planLine: string; // {plan}, {days}
    openChannel: string;
    inviteOnce: string; // {date}
    inviteOnceNoDate: string;
    underpaidAmounts: string; // {paid} {expected} {missing} {currency}
    /** The headline when the amounts box says the rest. */
    underpaidLead: string;
    underpaidHow: string;
    payRest: string;
    updates: string;
    connection: string;
    notFound: string;
    missingId: string;
  };
  help: {
    /** {contact}: the support contact as a link */
    withContact: string;
    withoutContact: string;
  };
  cancel: {
    title: string;
    lead: string;
    order: string;
    next: string;
  };
  checkout: {
    title: string;
    sandbox: string;
    amount: string;
    send: string; // {amount} {currency}
    address: string;
    scan: string;
    timeLeft: string;
    expired: string;
    pay: string;
    payPart: string;
    payRest: string;
    paying: string;
    paid: string;
    partlyPaid: string; // {paid} {expected} {currency}
    status: string;
    cancel: string;
    failed: string;
  };
  noscript: string;
}

/** Replaces {name} with vars.name; an unknown name stays as written. */
export function fill(template: string, vars: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in vars ? String(vars[name]) : whole));
}

export function plural(lang: string, forms: Plural, n: number): string {
  const category = new Intl.PluralRules(lang).select(n);
  return fill(forms[category] ?? forms.other, { n });
}
