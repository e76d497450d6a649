// The buyer's pages after checkout. Self-contained (no external assets: the page must work behind any
// network policy and leak nothing to third parties), with a per-response CSP nonce for the inline
// script and style. The page reads order_id and token from its own URL and writes them only through
// textContent and encodeURIComponent, so nothing from the URL is ever parsed as HTML.

const STYLE = `
  :root { color-scheme: light dark; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  body { margin: 0; padding: 2rem 1rem; display: flex; justify-content: center; }
  main { max-width: 34rem; width: 100%; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  .order { color: GrayText; font-size: .9rem; margin: 0 0 1.5rem; word-break: break-all; }
  ol { list-style: none; padding: 0; margin: 0 0 1.5rem; }
  li { padding: .45rem 0 .45rem 2rem; position: relative; color: GrayText; }
  li::before { content: ""; position: absolute; left: .35rem; top: .75rem; width: .8rem; height: .8rem; border-radius: 50%; border: 2px solid GrayText; box-sizing: border-box; }
  li.done { color: CanvasText; }
  li.done::before { background: #2e9d5b; border-color: #2e9d5b; }
  li.current { color: CanvasText; font-weight: 600; }
  li.current::before { border-color: #2f6fd6; }
  /* Author display rules (.button) beat the UA's [hidden] rule; without this a hidden button shows. */
  [hidden] { display: none !important; }
  #description { line-height: 1.45; }
  .problem { border-left: 4px solid #d6822f; padding: .5rem .9rem; }
  .button { display: inline-block; margin-top: 1rem; padding: .7rem 1.2rem; border-radius: .5rem; background: #2f6fd6; color: #fff; text-decoration: none; font-weight: 600; }
  #note { color: GrayText; font-size: .85rem; margin-top: 1.5rem; }
`;

// Plain ES2017 for old in-app browsers (Telegram's webview). Backoff: 1 s, x1.5, at most 10 s; back to
// 1 s whenever the step changes (things are moving); stops once the answer is final.
const SCRIPT = `
(function () {
  var STEPS = ['waiting_for_payment', 'confirming', 'confirmed', 'invite_sent', 'done'];
  var params = new URLSearchParams(window.location.search);
  var orderId = params.get('order_id') || '';
  var token = params.get('token') || '';
  var $ = function (id) { return document.getElementById(id); };
  var delay = 1000;
  var lastStep = null;

  $('order').textContent = orderId ? 'Order ' + orderId : '';
  if (!orderId) {
    setText('This link is missing its order id. Open the link you were given with your order.', true);
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
    setText(s.description, reached < 0);
    var open = $('open');
    // Only http(s) links become a button: a javascript: URL must never get a click target.
    if (s.invite && /^https?:\\/\\//i.test(s.invite.url)) {
      open.setAttribute('href', s.invite.url);
      open.hidden = false;
    } else {
      open.hidden = true;
      open.removeAttribute('href');
    }
    $('note').textContent = s.final ? '' : 'This page updates by itself.';
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
    var url = '/api/payment-status?order_id=' + encodeURIComponent(orderId) + (token ? '&token=' + encodeURIComponent(token) : '');
    fetch(url, { cache: 'no-store', credentials: 'omit', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (res.status === 404) {
          setText('We cannot find this order yet. If you just created it, wait a moment; otherwise check the link you were given.', true);
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
        $('note').textContent = 'Connection problem; trying again.';
        later();
      });
  }

  poll();
})();
`;

const LABELS: Array<[string, string]> = [
  ['waiting_for_payment', 'Waiting for payment'],
  ['confirming', 'Confirming on chain'],
  ['confirmed', 'Payment confirmed'],
  ['invite_sent', 'Sending your invite'],
  ['done', 'Done'],
];

function page(nonce: string, title: string, body: string, script?: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style nonce="${escapeHtml(nonce)}">${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
${script ? `<script nonce="${escapeHtml(nonce)}">${script}</script>` : ''}
</body>
</html>`;
}

export function renderSuccessPage(nonce: string): string {
  const steps = LABELS.map(([step, label]) => `<li data-step="${step}">${escapeHtml(label)}</li>`).join('\n  ');
  return page(
    nonce,
    'Your payment',
    `<h1>Your payment</h1>
<p class="order" id="order"></p>
<ol id="steps">
  ${steps}
</ol>
<p id="description" aria-live="polite">Checking your payment...</p>
<a id="open" class="button" hidden rel="noopener noreferrer" target="_blank">Open the channel</a>
<p id="note"></p>
<noscript><p>This page needs JavaScript to follow your payment. The bot will also message you in Telegram.</p></noscript>`,
    SCRIPT,
  );
}

export function renderCancelPage(nonce: string): string {
  return page(
    nonce,
    'Payment cancelled',
    `<h1>Payment cancelled</h1>
<p>You left the payment page before paying, so nothing was charged.</p>
<p>To get access, go back to the bot in Telegram and start a new order. If you did send money, contact support and quote your order id.</p>`,
  );
}

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
