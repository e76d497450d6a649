import { createHash } from 'node:crypto';

// The channel owner's page (GET /admin/channels/:id/owner): a static shell like /admin/dashboard. It
// holds no data; it asks for the admin token (kept in this tab's sessionStorage, shared with the
// dashboard), then reads the channel, its report and its subscribers from the admin API with that token
// as a bearer header. Read-only: it changes nothing. Its one script and one style are inline and allowed
// by their hashes (nothing else runs or loads); everything the API returns is written with
// textContent, so no channel title, reason or text ever becomes markup. The channel id comes from the
// page's own path. Tables turn into labelled blocks on a narrow screen (390 px).

const STYLE = `
:root { --ink: #1b2230; --muted: #5d6778; --line: #e1e5ec; --bg: #f5f7fa; --card: #fff; --accent: #2456c9; --ok: #1f7a3d; --warn: #a4470b; --bad: #b3261e; color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
header { background: #16213a; color: #fff; padding: .6rem 1rem; display: flex; flex-wrap: wrap; gap: .35rem 1rem; align-items: center; }
header h1 { font-size: 1.05rem; margin: 0; font-weight: 600; overflow-wrap: anywhere; }
header .meta { color: #c8d2e8; font-size: .8rem; }
header nav { margin-left: auto; display: flex; gap: .6rem; align-items: center; font-size: .8rem; }
header a { color: #c8d2e8; }
header button { background: transparent; color: #fff; border: 1px solid #51618a; border-radius: 4px; padding: .15rem .5rem; font: inherit; cursor: pointer; }
main { max-width: 1180px; margin: 0 auto; padding: 1rem; display: grid; gap: 1rem; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; min-width: 0; }
section > h2 { font-size: 1rem; margin: 0 0 .6rem; display: flex; align-items: baseline; gap: .5rem; flex-wrap: wrap; }
section > h2 small { color: var(--muted); font-weight: 400; font-size: .8rem; }
#alert { margin: 1rem auto 0; max-width: 1148px; background: #fdecea; color: var(--bad); border: 1px solid #f3c1bc; border-radius: 6px; padding: .5rem .8rem; }
#signin { max-width: 28rem; margin: 2rem auto; }
#signin form { display: flex; gap: .4rem; }
#signin input { flex: 1; min-width: 0; }
#signin p { color: var(--muted); font-size: .85rem; margin: .5rem 0 0; }
input, button { font: inherit; }
input { border: 1px solid #c5ccd8; border-radius: 5px; padding: .35rem .5rem; }
button.primary { border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 5px; padding: .3rem .8rem; cursor: pointer; }
.cards { display: grid; gap: .6rem; grid-template-columns: repeat(auto-fit, minmax(10.5rem, 1fr)); }
.card { border: 1px solid var(--line); border-radius: 8px; padding: .55rem .75rem; background: #fafbfd; min-width: 0; }
.card h3 { margin: 0; font-size: .72rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; }
.card b { display: block; font-size: 1.25rem; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.card small { display: block; color: var(--muted); font-size: .8rem; overflow-wrap: anywhere; }
.tabs { display: inline-flex; border: 1px solid #c5ccd8; border-radius: 6px; overflow: hidden; }
.tabs button { border: 0; background: #fff; color: var(--accent); padding: .2rem .65rem; cursor: pointer; font-size: .85rem; }
.tabs button + button { border-left: 1px solid #c5ccd8; }
.tabs button[aria-pressed="true"] { background: var(--accent); color: #fff; }
.note { color: var(--muted); font-size: .8rem; margin: .5rem 0 0; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: .75rem; text-transform: uppercase; letter-spacing: .03em; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }
tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
.status { display: inline-block; border-radius: 999px; padding: 0 .5rem; font-size: .75rem; font-weight: 600; border: 1px solid; }
.status.active { color: var(--ok); border-color: #a9d8b7; background: #eef8f1; }
.status.expired { color: var(--warn); border-color: #f0c7a8; background: #fff5ec; }
.status.removed { color: var(--muted); border-color: #d5dae3; background: #f3f5f8; }
.empty { color: var(--muted); margin: .2rem 0; }
dl.texts { margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: .3rem .8rem; font-size: .85rem; }
dl.texts dt { color: var(--muted); font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }
dl.texts dd { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
dl.texts dd.custom::after { content: " (custom)"; color: var(--accent); font-size: .75rem; }
#more { margin-top: .5rem; }
@media (max-width: 640px) {
  main { padding: .6rem; gap: .6rem; }
  section { padding: .6rem .7rem; }
  header nav { margin-left: 0; }
  table.stack thead { display: none; }
  table.stack, table.stack tbody, table.stack tr, table.stack td { display: block; width: 100%; }
  table.stack tr { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 .5rem; padding: .25rem .5rem; }
  table.stack tr.total { background: #f3f5f8; }
  table.stack td { border: 0; padding: .12rem 0; display: flex; justify-content: space-between; gap: .8rem; text-align: right; }
  table.stack td::before { content: attr(data-label); color: var(--muted); font-size: .75rem; text-transform: uppercase; letter-spacing: .03em; text-align: left; font-weight: 600; font-family: system-ui, sans-serif; }
  table.stack td.num { white-space: normal; }
  table.stack td:empty { display: none; }
  table.compact .wide { display: none; }
  table.compact th, table.compact td { padding: .3rem .25rem; font-size: .8rem; }
  table.compact th { font-size: .68rem; white-space: normal; }
  table.compact td:first-child { white-space: nowrap; }
  #counts { grid-template-columns: repeat(3, minmax(0, 1fr)); gap: .4rem; }
  #counts .card { padding: .45rem .55rem; }
  dl.texts { grid-template-columns: 1fr; }
  dl.texts dd { margin-bottom: .4rem; }
}
`;

const SCRIPT = `'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'telepay-admin';
  const match = /^\\/admin\\/channels\\/(-?\\d{1,20})\\/owner\\/?$/.exec(location.pathname);
  const channel = match ? match[1] : '';
  const base = '/admin/channels/' + encodeURIComponent(channel);
  let period = 'month';
  let status = '';
  let shown = 0;
  const PAGE = 50;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k === 'class') node.className = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  // Decimal strings stay strings: cut for display (never through a float), the exact value in the title.
  function cut(value, places, fixed) {
    const s = String(value);
    const sign = s.startsWith('-') ? '-' : '';
    const [whole, fraction = ''] = s.replace('-', '').split('.');
    const grouped = whole.replace(/\\B(?=(\\d{3})+(?!\\d))/g, ',');
    const f = fixed ? fraction.slice(0, places).padEnd(places, '0') : fraction.slice(0, places).replace(/0+$/, '');
    return sign + (f ? grouped + '.' + f : grouped);
  }
  const usd = (v) => el('span', { title: v + ' USD', text: '$' + cut(v, 2, true) });
  const eth = (v) => el('span', { title: v + ' ETH', text: cut(v, 6, false) + ' ETH' });
  const ethNumber = (v) => el('span', { title: v + ' ETH', text: cut(v, 6, false) });
  const day = (iso) => (iso ? new Date(iso).toISOString().slice(0, 10) : '');
  const when = (iso) => (iso ? new Date(iso).toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : '');
  function label(p, start) {
    const d = new Date(start);
    if (p === 'month') return d.toLocaleString('en', { month: 'short', year: 'numeric', timeZone: 'UTC' });
    if (p === 'week') return 'week of ' + day(start);
    return day(start);
  }
  // A table; on a phone either stacked into labelled blocks, or (compact) kept as a table without the 'wide' columns.
  function table(headers, rows, nums, compact) {
    const body = el('tbody', {}, rows);
    const wide = compact ? compact.wide : [];
    for (const tr of body.rows) Array.from(tr.cells).forEach((td, i) => { td.setAttribute('data-label', headers[i]); if (wide.includes(i)) td.classList.add('wide'); });
    const cls = (i) => [nums.includes(i) ? 'num' : '', wide.includes(i) ? 'wide' : ''].join(' ').trim() || null;
    return el('div', { class: 'table-wrap' }, el('table', { class: compact ? 'compact' : 'stack' },
      el('thead', {}, el('tr', {}, headers.map((h, i) => el('th', { class: cls(i), text: h })))), body));
  }
  const alertBar = (text) => { $('alert').textContent = text || ''; $('alert').hidden = !text; };

  async function api(path) {
    const res = await fetch(path, { headers: { authorization: 'Bearer ' + (sessionStorage.getItem(TOKEN_KEY) || '') } });
    const body = await res.json().catch(() => ({}));
    if (res.status === 401) { signedIn(false); throw new Error(body.message || 'The admin token is not valid.'); }
    if (!res.ok) throw new Error(body.message || res.status + ' ' + res.statusText);
    return body;
  }

  function card(title, value, note) {
    return el('div', { class: 'card' }, el('h3', { text: title }), el('b', {}, value), note ? el('small', {}, note) : null);
  }

  async function loadReport() {
    const r = await api(base + '/report?period=' + period);
    for (const b of document.querySelectorAll('#periods button')) b.setAttribute('aria-pressed', String(b.dataset.period === period));
    const rows = r.periods.slice().reverse().map((p) => el('tr', {},
      el('td', { text: label(r.period, p.start) }),
      el('td', { class: 'num', text: p.payments }),
      el('td', { class: 'num' }, usd(p.revenue_usd)),
      el('td', { class: 'num' }, usd(p.owner_share_usd)),
      el('td', { class: 'num' }, ethNumber(p.owner_share_eth)),
      el('td', { class: 'num' }, ethNumber(p.paid_out_eth)),
      el('td', { class: 'num' }, ethNumber(p.balance_eth))));
    const t = r.totals;
    rows.push(el('tr', { class: 'total' }, el('td', { text: 'Total' }), el('td', { class: 'num', text: t.payments }), el('td', { class: 'num' }, usd(t.revenue_usd)),
      el('td', { class: 'num' }, usd(t.owner_share_usd)), el('td', { class: 'num' }, ethNumber(t.owner_share_eth)), el('td', { class: 'num' }, ethNumber(t.paid_out_eth)), el('td', {})));
    $('report').replaceChildren(table(['Period', 'Payments', 'Revenue', 'Owner share', 'Owner share (ETH)', 'Paid out (ETH)', 'Owed at end (ETH)'], rows, [1, 2, 3, 4, 5, 6], { wide: [1, 2, 4] }));
    $('range').textContent = day(r.from) + ' to ' + day(r.to) + ', UTC';
    const b = r.balance;
    $('money').replaceChildren(
      card('Revenue', usd(t.revenue_usd), t.payments + ' payments in the range'),
      card('Owner share', usd(t.owner_share_usd), eth(t.owner_share_eth)),
      card('Paid out', eth(t.paid_out_eth), t.payouts + ' payouts in the range'),
      card('Owed now', eth(b.owed_eth), el('span', {}, 'open ', eth(b.open_eth), ' · in payout ', eth(b.pending_eth))));
  }

  async function loadSubscribers(more) {
    const offset = more ? shown : 0;
    const s = await api(base + '/subscribers?limit=' + PAGE + '&offset=' + offset + (status ? '&status=' + status : ''));
    for (const b of document.querySelectorAll('#statuses button')) b.setAttribute('aria-pressed', String(b.dataset.status === status));
    $('counts').replaceChildren(
      card('Active', s.counts.active, 'subscribers with access'),
      card('Expired', s.counts.expired, 'ended, not removed yet'),
      card('Removed', s.counts.removed, 'at expiry or revoked'));
    const rows = s.subscribers.map((x) => el('tr', {},
      el('td', { class: 'mono', text: x.buyer_telegram_id }),
      el('td', {}, el('span', { class: 'status ' + x.status, text: x.status })),
      el('td', { text: x.status === 'removed' ? 'removed ' + day(x.removed_at) : (x.status === 'active' ? 'until ' : 'ended ') + when(x.expires_at) }),
      el('td', { class: 'num', text: x.paid_orders }),
      el('td', { text: x.last_adjustment ? x.last_adjustment.action + ' by ' + x.last_adjustment.by + ', ' + day(x.last_adjustment.at) + ': ' + x.last_adjustment.reason : '' })));
    const headers = ['Buyer', 'Status', 'Access', 'Paid orders', 'Last manual change'];
    if (!more) {
      shown = 0;
      $('subscribers').replaceChildren(s.subscribers.length ? table(headers, rows, [3]) : el('p', { class: 'empty', text: 'No subscribers' + (status ? ' with status ' + status : '') + ' yet.' }));
    } else {
      const tbody = $('subscribers').querySelector('tbody');
      for (const tr of rows) { Array.from(tr.cells).forEach((td, i) => td.setAttribute('data-label', headers[i])); tbody.append(tr); }
    }
    shown += s.subscribers.length;
    const total = status ? s.counts[status] : s.counts.total;
    $('more').hidden = shown >= total;
    $('more').textContent = 'Show more (' + (total - shown) + ' left)';
  }

  async function loadAdjustments() {
    const a = await api(base + '/adjustments?limit=20');
    $('adjustments').replaceChildren(a.adjustments.length
      ? table(['When', 'Buyer', 'Action', 'Duration', 'Ends', 'By', 'Reason'], a.adjustments.map((x) => el('tr', {},
          el('td', { text: when(x.created_at) }), el('td', { class: 'mono', text: x.buyer_telegram_id }), el('td', { text: x.action }),
          el('td', { text: x.duration || '' }), el('td', { text: when(x.expires_after) }), el('td', { text: x.by }), el('td', { text: x.reason }))), [])
      : el('p', { class: 'empty', text: 'No manual changes.' }));
  }

  async function loadTexts() {
    const t = await api(base + '/texts');
    $('texts').replaceChildren(el('dl', { class: 'texts' }, Object.entries(t.effective).map(([k, v]) => [el('dt', { text: k }), el('dd', { class: k in t.texts ? 'custom' : null, text: v })])));
  }

  async function refresh() {
    if (!channel) { alertBar('This address names no channel: open /admin/channels/<open channel id>/owner.'); return; }
    const parts = [
      ['channel', async () => { const c = await api(base); $('title').textContent = c.title; $('meta').textContent = c.open_channel_id + ' · ' + c.strategy + ' payouts in ' + c.currency.toUpperCase() + ' (' + c.network + ') · fee ' + c.platform_fee_percent + '%'; document.title = c.title + ' · owner'; }],
      ['report', loadReport], ['subscribers', () => loadSubscribers(false)], ['manual changes', loadAdjustments], ['texts', loadTexts]];
    const results = await Promise.allSettled(parts.map(([, load]) => load()));
    alertBar(results.map((r, i) => (r.status === 'rejected' ? parts[i][0] + ': ' + r.reason.message : null)).filter(Boolean).join(' · '));
    document.body.dataset.loaded = String(Date.now());
  }
  function signedIn(yes) {
    $('signin').hidden = yes;
    $('app').hidden = !yes;
    $('signout').hidden = !yes;
    if (!yes) $('token').focus();
  }

  $('auth').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    signedIn(true);
    refresh();
  });
  $('signout').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); signedIn(false); });
  for (const b of document.querySelectorAll('#periods button')) b.addEventListener('click', () => { period = b.dataset.period; loadReport().catch((e) => alertBar(e.message)); });
  for (const b of document.querySelectorAll('#statuses button')) b.addEventListener('click', () => { status = b.dataset.status; loadSubscribers(false).catch((e) => alertBar(e.message)); });
  $('more').addEventListener('click', () => loadSubscribers(true).catch((e) => alertBar(e.message)));

  $('channel-id').textContent = channel;
  if (sessionStorage.getItem(TOKEN_KEY)) { signedIn(true); refresh(); } else signedIn(false);
})();
`;

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Channel owner · TelePay</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1 id="title">Channel <span id="channel-id"></span></h1>
  <span class="meta" id="meta"></span>
  <nav><a href="/admin/dashboard">Operators' dashboard</a><button type="button" id="signout" hidden>Forget token</button></nav>
</header>
<p id="alert" role="alert" hidden></p>

<section id="signin" hidden>
  <h2>Admin token</h2>
  <form id="auth">
    <input id="token" type="password" autocomplete="off" placeholder="ADMIN_TOKEN" aria-label="Admin token">
    <button class="primary">Use</button>
  </form>
  <p>Kept in this tab only (sessionStorage) and sent as a bearer header to the admin API.</p>
</section>

<main id="app" hidden>
  <section>
    <h2>Money <small id="range"></small>
      <span class="tabs" id="periods" role="group" aria-label="Period"><button type="button" data-period="month" aria-pressed="true">Month</button><button type="button" data-period="week" aria-pressed="false">Week</button><button type="button" data-period="day" aria-pressed="false">Day</button></span>
    </h2>
    <div class="cards" id="money"></div>
    <p class="note">Revenue is what buyers paid (owner share + platform fee, in USD at the rate when they paid), counted when the share was booked. ETH amounts are exact in the API (wei); hover a figure for all its digits.</p>
  </section>
  <section>
    <h2>Per period</h2>
    <div id="report"></div>
  </section>
  <section>
    <h2>Subscribers
      <span class="tabs" id="statuses" role="group" aria-label="Status"><button type="button" data-status="" aria-pressed="true">All</button><button type="button" data-status="active" aria-pressed="false">Active</button><button type="button" data-status="expired" aria-pressed="false">Expired</button><button type="button" data-status="removed" aria-pressed="false">Removed</button></span>
    </h2>
    <div class="cards" id="counts"></div>
    <div id="subscribers"></div>
    <button type="button" class="primary" id="more" hidden>Show more</button>
  </section>
  <section>
    <h2>Manual changes <small>grant, extend, revoke by an admin (POST /admin/channels/:id/subscribers/:buyer)</small></h2>
    <div id="adjustments"></div>
  </section>
  <section>
    <h2>Bot texts <small>change with PATCH /admin/channels/:id {"texts": {…}}</small></h2>
    <div id="texts"></div>
  </section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The page and its Content-Security-Policy: only this script and this style (by hash), API calls to us. */
export function ownerPage(): { html: string; csp: string } {
  if (/<\/(script|style)/i.test(SCRIPT + STYLE)) throw new Error('the owner page script and style must not contain </script> or </style>');
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(SCRIPT)}`,
    `style-src ${sha256(STYLE)}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html: HTML, csp };
}
