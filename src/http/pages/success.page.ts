import { fill, type Dictionary } from './i18n/index.js';
import { escapeHtml, page } from './layout.js';

// The buyer's pages after checkout: the success page (NowPayments' success_url) and the cancel page
// (cancel_url). The success page reads order_id and token from its own URL and follows the payment
// through the status API, in the buyer's language; it names the channel, the plan, the amount paid,
// when access ends, that the invite works once and until when, and how to get help. It writes what it
// reads only through textContent and encodeURIComponent, so nothing from the URL or the API is ever
// parsed as HTML.

export { contentSecurityPolicy, escapeHtml } from './layout.js';

const STYLE = `
  .badge { display: inline-block; margin: 0 0 1rem; padding: .2rem .65rem; border-radius: 999px; font-size: .8rem; font-weight: 600; }
  .badge.underpaid, .badge.needs_review { background: var(--warn-bg); color: var(--warn); }
  .badge.failed { background: var(--bad-bg); color: var(--bad); }
  ol { list-style: none; padding: 0; margin: 0 0 1rem; }
  li { padding: .4rem 0 .4rem 2rem; position: relative; color: var(--muted); }
  li::before { content: ""; position: absolute; left: .35rem; top: .72rem; width: .8rem; height: .8rem; border-radius: 50%; border: 2px solid var(--line); box-sizing: border-box; }
  li.done { color: var(--fg); }
  li.done::before { background: var(--ok); border-color: var(--ok); }
  li.current { color: var(--fg); font-weight: 600; }
  li.current::before { border-color: var(--accent); background: var(--card); box-shadow: 0 0 0 3px rgba(47,111,214,.18); }
  #description { margin: 0; }
  #description.problem { margin-top: .25rem; }
  #open { display: block; width: 100%; font-size: 1.05rem; }
`;

// Plain ES2017 for old in-app browsers (Telegram's webview). Backoff: 1 s, x1.5, at most 10 s; back to
// 1 s whenever the step changes (things are moving); stops once the answer is final.
const SCRIPT = `
(function () {
  var STEPS = ['waiting_for_payment', 'confirming', 'confirmed', 'invite_sent', 'done'];
  var DATA = JSON.parse(document.getElementById('page-data').textContent);
  var T = DATA.texts;
  var LANG = DATA.lang;
  var params = new URLSearchParams(window.location.search);
  var orderId = params.get('order_id') || '';
  var token = params.get('token') || '';
  var $ = function (id) { return document.getElementById(id); };
  var delay = 1000;
  var lastStep = null;

  function fill(template, vars) {
    return template.replace(/\\{(\\w+)\\}/g, function (whole, name) { return Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : whole; });
  }
  function days(n) {
    var category = 'other';
    try { category = new Intl.PluralRules(LANG).select(n); } catch (e) { /* old browser: "other" */ }
    return fill(T.days[category] || T.days.other, { n: n });
  }
  function when(iso) {
    var d = new Date(iso);
    try { return new Intl.DateTimeFormat(LANG, { dateStyle: 'long', timeStyle: 'short' }).format(d); } catch (e) { return d.toLocaleString(); }
  }
  function fact(id, value) {
    var row = $(id);
    row.hidden = !value;
    if (value) row.querySelector('dd').textContent = value;
    return Boolean(value);
  }

  $('order').textContent = orderId ? fill(T.order, { id: orderId }) : '';
  if (!orderId) {
    setText(T.missingId, true);
    return;
  }

  function setText(text, problem) {
    var d = $('description');
    d.textContent = text;
    d.className = problem ? 'problem' : '';
  }

  function render(s) {
    document.body.setAttribute('data-step', s.step);
    var reached = STEPS.indexOf(s.step);
    var items = document.querySelectorAll('#steps li');
    for (var i = 0; i < items.length; i++) {
      var at = STEPS.indexOf(items[i].getAttribute('data-step'));
      items[i].className = reached < 0 ? '' : at < reached || s.step === 'done' ? 'done' : at === reached ? 'current' : '';
    }
    $('steps').hidden = reached < 0;
    var badge = $('badge');
    badge.hidden = reached >= 0;
    badge.className = 'badge ' + s.step;
    badge.textContent = T.badges[s.step] || '';

    var o = s.order;
    var shown = 0;
    shown += fact('f-channel', o && o.channel_title);
    shown += fact('f-plan', o && o.plan_title ? (o.duration_days ? fill(T.planLine, { plan: o.plan_title, days: days(o.duration_days) }) : o.plan_title) : '');
    shown += fact('f-price', o ? o.price_usd + ' USD' : '');
    shown += fact('f-paid', s.paid ? s.paid.amount + ' ' + s.paid.currency.toUpperCase() : '');
    shown += fact('f-access', s.access_ends_at ? when(s.access_ends_at) : '');
    $('facts').hidden = shown === 0;

    var under = s.step === 'underpaid';
    $('underpaid').hidden = !under;
    var amounts = $('underpaid-amounts');
    amounts.hidden = !(under && s.paid && s.paid.expected && s.paid.missing);
    if (!amounts.hidden) {
      var c = s.paid.currency.toUpperCase();
      amounts.textContent = fill(T.underpaidAmounts, { paid: s.paid.amount, expected: s.paid.expected, missing: s.paid.missing, currency: c });
    }
    // The box below says what arrived and how to pay the rest: the headline need not say it twice.
    setText(amounts.hidden ? s.description : T.underpaidLead, reached < 0);
    // The invoice: to pay the rest of an underpayment, or to pay at all while nothing arrived.
    var invoice = s.invoice_url && /^https?:\\/\\//i.test(s.invoice_url) ? s.invoice_url : null;
    [['pay-rest', under], ['pay-invoice', s.step === 'waiting_for_payment' && !s.paid]].forEach(function (link) {
      var a = $(link[0]);
      a.hidden = !(link[1] && invoice);
      if (a.hidden) a.removeAttribute('href');
      else a.setAttribute('href', invoice);
    });

    var open = $('open');
    // Only http(s) links become a button: a javascript: URL must never get a click target.
    if (s.invite && /^https?:\\/\\//i.test(s.invite.url)) {
      open.setAttribute('href', s.invite.url);
      open.hidden = false;
      $('invite-once').textContent = s.invite.expires_at ? fill(T.inviteOnce, { date: when(s.invite.expires_at) }) : T.inviteOnceNoDate;
      $('invite-once').hidden = false;
    } else {
      open.hidden = true;
      open.removeAttribute('href');
      $('invite-once').hidden = true;
    }
    $('note').textContent = s.final ? '' : T.updates;
  }

  // data-polls counts answered polls, with the next one already scheduled: a hook for the browser test.
  var polls = 0;
  function answered() { document.body.setAttribute('data-polls', String(++polls)); }

  function later() {
    window.setTimeout(poll, delay);
    delay = Math.min(delay * 1.5, 10000);
    answered();
  }

  function poll() {
    var url = '/api/payment-status?order_id=' + encodeURIComponent(orderId) + (token ? '&token=' + encodeURIComponent(token) : '') + '&lang=' + encodeURIComponent(LANG);
    fetch(url, { cache: 'no-store', credentials: 'omit', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (res.status === 404) {
          setText(T.notFound, true);
          return later();
        }
        if (res.status === 429) { delay = 10000; return later(); }
        if (!res.ok) throw new Error('status ' + res.status);
        return res.json().then(function (s) {
          render(s);
          if (s.final) return answered();
          if (s.step !== lastStep) delay = 1000;
          lastStep = s.step;
          later();
        });
      })
      .catch(function () {
        $('note').textContent = T.connection;
        later();
      });
  }

  poll();
})();
`;

const STEP_ORDER = ['waiting_for_payment', 'confirming', 'confirmed', 'invite_sent', 'done'] as const;

export interface BuyerPageContext {
  nonce: string;
  dict: Dictionary;
  /** The request's query (language links keep it). */
  query: URLSearchParams;
  supportContact: string | null | undefined;
}

export function renderSuccessPage(c: BuyerPageContext): string {
  const t = c.dict.page;
  const steps = STEP_ORDER.map((step) => `<li data-step="${step}">${escapeHtml(t.steps[step])}</li>`).join('\n  ');
  const factRow = (id: string, label: string) => `<div id="${id}" hidden><dt>${escapeHtml(label)}</dt><dd></dd></div>`;
  return page({
    nonce: c.nonce,
    dict: c.dict,
    title: t.title,
    query: c.query,
    help: { supportContact: c.supportContact },
    style: STYLE,
    data: { lang: c.dict.lang, texts: t },
    script: SCRIPT,
    body: `<h1>${escapeHtml(t.title)}</h1>
<p class="order" id="order"></p>
<span id="badge" class="badge" hidden></span>
<dl id="facts" hidden>
  ${factRow('f-channel', t.channel)}
  ${factRow('f-plan', t.plan)}
  ${factRow('f-price', t.price)}
  ${factRow('f-paid', t.paid)}
  ${factRow('f-access', t.accessUntil)}
</dl>
<ol id="steps">
  ${steps}
</ol>
<p id="description" aria-live="polite">${escapeHtml(t.checking)}</p>
<div id="underpaid" class="box warn" hidden>
  <p id="underpaid-amounts" hidden></p>
  <p>${escapeHtml(t.underpaidHow)}</p>
  <a id="pay-rest" class="button secondary" hidden rel="noopener noreferrer" target="_blank">${escapeHtml(t.payRest)}</a>
</div>
<a id="pay-invoice" class="button secondary" hidden rel="noopener noreferrer" target="_blank">${escapeHtml(t.payRest)}</a>
<a id="open" class="button" hidden rel="noopener noreferrer" target="_blank">${escapeHtml(t.openChannel)}</a>
<p id="invite-once" class="fine" hidden></p>
<p id="note" class="fine"></p>
<noscript><p>${escapeHtml(c.dict.noscript)}</p></noscript>`,
  });
}

/** What the cancel page shows about the order (null when the link names no known order). */
export interface CancelledOrder {
  orderId: string;
  channelTitle: string | null;
  planTitle: string | null;
  priceUsd: string;
}

export function renderCancelPage(c: BuyerPageContext, order: CancelledOrder | null): string {
  const t = c.dict.cancel;
  const what = order
    ? `<dl>
  <div><dt>${escapeHtml(t.order)}</dt><dd class="order-id">${escapeHtml(order.orderId)}</dd></div>
  ${order.channelTitle ? `<div><dt>${escapeHtml(c.dict.page.channel)}</dt><dd>${escapeHtml(order.channelTitle)}</dd></div>` : ''}
  ${order.planTitle ? `<div><dt>${escapeHtml(c.dict.page.plan)}</dt><dd>${escapeHtml(order.planTitle)}</dd></div>` : ''}
  <div><dt>${escapeHtml(c.dict.page.price)}</dt><dd>${escapeHtml(order.priceUsd)} USD</dd></div>
</dl>`
    : '';
  return page({
    nonce: c.nonce,
    dict: c.dict,
    title: t.title,
    query: c.query,
    help: { supportContact: c.supportContact },
    style: '.order-id { font-weight: 400; font-size: .85rem; word-break: break-all; }',
    body: `<h1>${escapeHtml(t.title)}</h1>
<p>${escapeHtml(t.lead)}</p>
${what}
<p>${escapeHtml(t.next)}</p>`,
  });
}

export { fill };
