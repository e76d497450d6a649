import { fill, type Dictionary } from './i18n/index.js';
import { escapeHtml, page } from './layout.js';

// The sandbox's stand-in for NowPayments' hosted invoice page (the invoice_url a sandbox order gets):
// what to send, where, a QR code for a wallet, the time left, and buttons that play the buyer through
// POST /sandbox/orders/:order_id/pay (the whole paid, or half of it to see an underpayment). Rendered
// on the server; the script only counts down and posts.

export interface CheckoutView {
  invoiceId: string;
  orderId: string;
  description: string | null;
  priceUsd: string;
  payAmount: string;
  payCurrency: string;
  address: string;
  /** The QR code as an SVG document (server-rendered). */
  qrSvg: string;
  expiresAt: Date;
  /** What the fake has seen paid to this invoice. */
  paid: { state: 'unpaid' } | { state: 'partly'; paid: string; expected: string } | { state: 'paid' };
  successUrl: string | null;
  cancelUrl: string | null;
  /** The "pay" endpoint for this order (POST). */
  payPath: string;
  /** Half the price in USD, for the underpayment button. */
  halfUsd: string;
}

const STYLE = `
  .sandbox { background: var(--warn-bg); border-left: 4px solid var(--warn); border-radius: 10px; padding: .6rem .9rem; font-size: .85rem; margin: 0 0 1rem; }
  .amount { font-size: 1.6rem; font-weight: 700; margin: .1rem 0 0; }
  .usd { color: var(--muted); margin: 0 0 1rem; }
  .pay-to { display: grid; grid-template-columns: 1fr; gap: 1rem; align-items: center; }
  @media (min-width: 560px) { .pay-to { grid-template-columns: 1fr 180px; } }
  .address { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9rem; word-break: break-all; background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .7rem; margin: .3rem 0 0; }
  .label { color: var(--muted); font-size: .85rem; margin: 0; }
  .qr { background: #fff; border-radius: 10px; padding: 8px; width: 180px; height: 180px; margin: 0 auto; }
  .qr svg { width: 100%; height: 100%; display: block; }
  .timer { display: flex; justify-content: space-between; margin: 1rem 0 0; padding: .6rem 0; border-top: 1px solid var(--line); border-bottom: 1px solid var(--line); }
  .timer strong { font-variant-numeric: tabular-nums; }
  .actions .button { display: block; width: 100%; }
  .links { display: flex; justify-content: space-between; gap: 1rem; margin-top: 1rem; font-size: .9rem; }
  .links a { color: var(--accent); }
`;

const SCRIPT = `
(function () {
  var DATA = JSON.parse(document.getElementById('page-data').textContent);
  var $ = function (id) { return document.getElementById(id); };
  var end = Date.parse(DATA.expiresAt);
  var buttons = document.querySelectorAll('[data-pay]');
  function expired() {
    $('left').textContent = '00:00';
    $('expired').hidden = false;
    for (var i = 0; i < buttons.length; i++) buttons[i].hidden = true;
  }
  function tick() {
    var ms = end - Date.now();
    if (ms <= 0) return expired();
    var s = Math.floor(ms / 1000);
    var m = Math.floor(s / 60);
    $('left').textContent = (m < 10 ? '0' : '') + m + ':' + ((s % 60) < 10 ? '0' : '') + (s % 60);
    window.setTimeout(tick, 1000 - (ms % 1000) + 5);
  }
  tick();
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener('click', function (event) {
      var button = event.currentTarget;
      var part = button.getAttribute('data-pay');
      for (var j = 0; j < buttons.length; j++) buttons[j].disabled = true;
      $('progress').textContent = DATA.texts.paying;
      $('progress').hidden = false;
      fetch(DATA.payPath, {
        method: 'POST',
        credentials: 'omit',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(part === 'half' ? { actually_paid: DATA.halfUsd } : {}),
      })
        .then(function (res) {
          return res.json().then(function (answer) {
            if (!res.ok) throw new Error(answer && answer.message ? answer.message : 'HTTP ' + res.status);
            document.body.setAttribute('data-paid', part);
            window.location.assign(DATA.successUrl || answer.status_page);
          });
        })
        .catch(function (error) {
          $('progress').textContent = DATA.texts.failed.replace('{error}', error.message);
          for (var j = 0; j < buttons.length; j++) buttons[j].disabled = false;
        });
    });
  }
})();
`;

export function renderCheckoutPage(c: { nonce: string; dict: Dictionary; query: URLSearchParams }, v: CheckoutView): string {
  const t = c.dict.checkout;
  const currency = v.payCurrency.toUpperCase();
  const expired = v.expiresAt.getTime() <= Date.now();
  const paidNote =
    v.paid.state === 'paid'
      ? `<p class="box" id="paid-note">${escapeHtml(t.paid)}</p>`
      : v.paid.state === 'partly'
        ? `<p class="box warn" id="paid-note">${escapeHtml(fill(t.partlyPaid, { paid: v.paid.paid, expected: v.paid.expected, currency }))}</p>`
        : '';
  const payButtons =
    v.paid.state === 'paid'
      ? ''
      : v.paid.state === 'partly'
        ? `<button class="button" type="button" data-pay="full" id="pay">${escapeHtml(t.payRest)}</button>`
        : `<button class="button" type="button" data-pay="full" id="pay">${escapeHtml(t.pay)}</button>
<button class="button secondary" type="button" data-pay="half" id="pay-half">${escapeHtml(t.payPart)}</button>`;
  const statusLink = v.successUrl ? `<a href="${escapeHtml(v.successUrl)}" id="status-link">${escapeHtml(t.status)}</a>` : '<span></span>';
  const cancelLink = v.cancelUrl && v.paid.state === 'unpaid' ? `<a href="${escapeHtml(v.cancelUrl)}" id="cancel-link">${escapeHtml(t.cancel)}</a>` : '';
  return page({
    nonce: c.nonce,
    dict: c.dict,
    title: `${t.title} · ${v.description ?? v.orderId}`,
    brand: 'NOWPayments (sandbox)',
    query: c.query,
    style: STYLE,
    data: { expiresAt: v.expiresAt.toISOString(), payPath: v.payPath, halfUsd: v.halfUsd, successUrl: v.successUrl, texts: { paying: t.paying, failed: t.failed } },
    script: v.paid.state === 'paid' ? undefined : SCRIPT,
    body: `<p class="sandbox">${escapeHtml(t.sandbox)}</p>
<h1>${escapeHtml(t.title)}</h1>
<p class="order">${escapeHtml(v.description ?? '')} · ${escapeHtml(v.orderId)}</p>
<p class="label">${escapeHtml(t.amount)}</p>
<p class="amount" id="amount">${escapeHtml(v.payAmount)} ${escapeHtml(currency)}</p>
<p class="usd">= ${escapeHtml(v.priceUsd)} USD</p>
<div class="pay-to">
  <div>
    <p class="label">${escapeHtml(fill(t.send, { amount: v.payAmount, currency }))}</p>
    <p class="label">${escapeHtml(t.address)}:</p>
    <p class="address" id="address">${escapeHtml(v.address)}</p>
  </div>
  <figure class="qr" id="qr" title="${escapeHtml(t.scan)}" aria-label="${escapeHtml(t.scan)}">${v.qrSvg}</figure>
</div>
<p class="timer"><span>${escapeHtml(t.timeLeft)}</span><strong id="left">${expired ? '00:00' : '--:--'}</strong></p>
${paidNote}
<p class="box bad" id="expired"${expired ? '' : ' hidden'}>${escapeHtml(t.expired)}</p>
<div class="actions">
${expired ? '' : payButtons}
</div>
<p class="fine" id="progress" hidden aria-live="polite"></p>
<p class="links">${statusLink}${cancelLink}</p>`,
  });
}
