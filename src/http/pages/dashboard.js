/* global document, window, sessionStorage, localStorage, fetch, URLSearchParams, setTimeout, clearTimeout */
// The operator dashboard's script, inlined into /admin/dashboard and allowed by its hash (no other script
// runs). Everything the server sends is written with textContent: payment data never becomes markup.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'telepay-admin';
  const NAME_KEY = 'telepay-operator';
  const REFRESH_MS = 15000;
  let timer = null;
  let detailId = null;
  let pending = null; // the action the dialog asks about

  // --- small DOM helpers -------------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'class') node.className = value;
      else if (key === 'on') for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
      else if (key.startsWith('data-') || key === 'href' || key === 'type' || key === 'title' || key === 'aria-label') node.setAttribute(key, String(value));
      else node[key] = value;
    }
    for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child instanceof window.Node ? child : document.createTextNode(String(child)));
    return node;
  }
  const state = (name) => el('span', { class: `state ${name}`, text: name });
  const empty = (text) => el('p', { class: 'empty', text });
  function ago(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 120) return `${s}s`;
    if (s < 7200) return `${Math.round(s / 60)}m`;
    if (s < 172800) return `${Math.floor(s / 3600)}h ${Math.round((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.round((s % 86400) / 3600)}h`;
  }
  const since = (iso) => (iso ? ago((Date.now() - new Date(iso).getTime()) / 1000) : '');
  const time = (iso) => (iso ? new Date(iso).toLocaleString() : '');
  const short = (text, n = 140) => (text && text.length > n ? `${text.slice(0, n - 1)}…` : text || '');
  /** Each cell carries its column's name, so a narrow screen can show every row as a labelled block. */
  function labelCells(tbody, headers) {
    for (const tr of tbody.rows) Array.from(tr.cells).forEach((td, i) => headers[i] && td.setAttribute('data-label', headers[i]));
    return tbody;
  }
  function table(headers, rows) {
    return el('div', { class: 'table-wrap' }, el('table', { class: 'stack' }, el('thead', {}, el('tr', {}, headers.map((h) => el('th', { text: h })))), labelCells(el('tbody', {}, rows), headers)));
  }
  const headersOf = (tbody) => Array.from(tbody.closest('table').tHead.rows[0].cells).map((th) => th.textContent);
  function toast(text) {
    const node = $('toast');
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => (node.hidden = true), 6000);
  }
  function alertBar(text) {
    $('alert').textContent = text || '';
    $('alert').hidden = !text;
  }

  // --- the admin API -----------------------------------------------------------------------------
  async function api(path, options = {}) {
    const headers = { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ''}` };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(path, { method: options.method || 'GET', headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
    const body = await res.json().catch(() => ({}));
    if (res.status === 401) {
      signedIn(false);
      throw new Error(body.message || 'The admin token is not valid.');
    }
    if (!res.ok) throw new Error(body.message || `${res.status} ${res.statusText}`);
    return body;
  }
  const paymentLink = (id) =>
    el('a', { href: `#detail`, class: 'mono', text: id, on: { click: (e) => { e.preventDefault(); showDetail(id); } } });

  // --- glance and stuck list ----------------------------------------------------------------------
  function chips(target, entries, hot) {
    target.replaceChildren(...(entries.length ? entries.map(([k, v]) => el('span', { class: `chip${hot ? ' hot' : ''}`, title: v.title }, k, el('b', { text: v.count }))) : [empty('none')]));
  }
  function actionButtons(paymentId, actions, batch) {
    const buttons = actions.map((a) =>
      el('button', {
        type: 'button',
        class: `act${a.type === 'operator.cancel' ? ' danger' : a.type === 'operator.retry' ? '' : ' secondary'}`,
        'data-action': a.type,
        'data-payment': paymentId,
        text: a.label,
        on: { click: () => askEvent(paymentId, a) },
      }),
    );
    if (batch && batch.status === 'review') {
      buttons.push(el('button', { type: 'button', class: 'act', 'data-batch': batch.batch_id, text: 'Resume batch', on: { click: () => askBatch(batch) } }));
    }
    return buttons;
  }
  const pageLinks = (links) =>
    el('span', { class: 'links' }, el('a', { href: links.inspect, text: 'Inspect' }), el('a', { href: links.statechart, text: 'Statechart (offline)' }));
  const ERROR_STATE = { retry: 'will retry', active: 'running again', failed: 'out of retries, dead-lettered' };
  const describeError = (e) => `${e.queue} attempt ${e.attempt ?? '?'}, ${ERROR_STATE[e.state] || e.state} after ${e.retry_count} ${e.retry_count === 1 ? 'retry' : 'retries'}`;
  function stuckCard(p) {
    return el('article', { class: `card${p.state === 'needs_review' ? ' review' : ''}`, 'data-payment': p.payment_id, 'data-state': p.state },
      el('div', { class: 'top' }, state(p.state), paymentLink(p.payment_id), p.order_id ? el('span', { class: 'meta', text: `order ${p.order_id}` }) : null,
        el('span', { class: 'meta', text: `${ago(p.seconds_in_state)} in state (limit ${ago(p.limit_seconds)})` })),
      el('div', { class: 'line' }, el('b', { text: 'Waits for: ' }), p.waiting_for.text),
      p.review_reason ? el('div', { class: 'line' }, el('b', { text: 'Why: ' }), p.review_reason) : null,
      p.batch ? el('div', { class: 'line' }, el('b', { text: 'Batch: ' }), `${p.batch.batch_id} (${p.batch.status})${p.batch.review_reason ? `: ${p.batch.review_reason}` : ''}`) : null,
      p.last_error ? el('div', { class: 'error' }, el('b', { text: 'Last error: ' }), `${describeError(p.last_error)}: ${short(p.last_error.message, 300)}`) : null,
      el('div', { class: 'actions' }, actionButtons(p.payment_id, p.actions, p.batch), pageLinks(p.links)),
    );
  }
  async function loadStuck() {
    const data = await api('/admin/payments?stuck=true&limit=100');
    chips($('counts'), Object.entries(data.counts).sort().map(([k, n]) => [k, { count: n }]));
    chips($('stuck-by-state'), Object.entries(data.stuck_by_state).map(([k, n]) => [k, { count: n }]), true);
    chips($('stuck-by-wait'), Object.entries(data.stuck_by_wait).map(([k, v]) => [k, { count: v.count, title: v.text }]), true);
    $('limits').textContent = `limits: ${Object.entries(data.limits).filter(([, v]) => v !== 'never').map(([k, v]) => `${k} ${v}`).join(', ')}`;
    $('stuck').replaceChildren(...(data.payments.length ? data.payments.map(stuckCard) : [empty('Nothing is stuck.')]));
  }

  // --- one payment --------------------------------------------------------------------------------
  async function showDetail(id, { scroll = true } = {}) {
    const d = await api(`/admin/payments/${encodeURIComponent(id)}`).catch((e) => {
      toast(e.message);
      return null;
    });
    if (!d) return;
    detailId = id;
    const p = d.payment;
    $('detail').hidden = false;
    $('detail').dataset.payment = id;
    $('detail-title').textContent = id;
    $('detail-state').className = `state ${p.state}`;
    $('detail-state').textContent = p.state;
    $('detail-since').textContent = `${ago(p.seconds_in_state)} in state · version ${p.version}`;
    const view = p.view || {};
    const facts = [
      ['order', p.order_id],
      ['waits for', d.waiting_for.text],
      ['why', p.review_reason],
      ['access', view.access && view.access.state],
      ['payout', view.payout && view.payout.state],
      ['buyer', view.route && view.route.buyerTelegramId],
      ['channel', view.route && view.route.channelId],
      ['NowPayments', view.np && `${view.np.status || ''} ${view.np.actuallyPaid || ''}/${view.np.payAmount || ''} ${view.np.payCurrency || ''}`.trim()],
      ['last error', d.last_error && `${describeError(d.last_error)}: ${d.last_error.message}`],
    ].filter(([, v]) => v);
    $('detail-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
    $('detail-actions').replaceChildren(...actionButtons(id, d.actions, null), pageLinks(d.links));
    $('journal').replaceChildren(
      ...d.journal.map((j) =>
        el('tr', {}, el('td', { text: j.seq }), el('td', { text: time(j.at) }), el('td', { class: 'mono', text: j.event_type }), el('td', { text: j.by || '' }),
          el('td', { class: 'wrap', text: j.reason || '' }), el('td', { class: 'mono', text: j.source }), el('td', { class: 'mono', text: JSON.stringify(j.to_state) })),
      ),
    );
    labelCells($('journal'), headersOf($('journal')));
    $('jobs').replaceChildren(
      ...(d.jobs.length
        ? d.jobs.map((j) => {
            const message = j.output && typeof j.output === 'object' && j.output.message;
            return el('tr', {}, el('td', { class: 'mono', text: j.queue }), el('td', { text: j.attempt }), el('td', {}, state(j.state)), el('td', { text: `${j.retry_count}/${j.retry_limit}` }), el('td', { class: 'wrap', text: message && j.state !== 'completed' ? short(message, 300) : '' }));
          })
        : [el('tr', {}, el('td', { colSpan: 5, class: 'empty', text: 'no jobs (or pg-boss no longer keeps them)' }))]),
    );
    labelCells($('jobs'), headersOf($('jobs')));
    $('view').textContent = JSON.stringify(view, null, 2);
    if (scroll) $('detail').scrollIntoView({ block: 'start' });
  }

  // --- search -------------------------------------------------------------------------------------
  async function runSearch(q) {
    const target = $('search-results');
    if (!q) return target.replaceChildren();
    const data = await api(`/admin/search?${new URLSearchParams({ q })}`);
    const rows = data.payments.map((p) =>
      el('tr', { 'data-payment': p.payment_id }, el('td', {}, paymentLink(p.payment_id)), el('td', { class: 'mono', text: p.order_id || '' }), el('td', {}, state(p.state)),
        el('td', { text: since(p.state_entered_at) }), el('td', { text: p.matched.join(', ') })),
    );
    const payouts = data.payouts.map((p) =>
      el('tr', {}, el('td', { class: 'mono', text: p.payout_id }), el('td', { text: p.kind }), el('td', {}, state(p.status)), el('td', { class: 'mono', text: p.tx_hash || p.owner_payout_hash || '' })),
    );
    target.replaceChildren(
      rows.length ? table(['payment', 'order', 'state', 'in state', 'matched'], rows) : empty(`No payment matches “${q}”.`),
      payouts.length ? table(['payout', 'kind', 'status', 'hash'], payouts) : '',
    );
  }

  // --- payouts, IPN log, dead letters --------------------------------------------------------------
  async function loadPayouts() {
    const [payouts, batches] = await Promise.all([api('/admin/payouts?status=review&limit=50'), api('/admin/payout-batches?status=review')]);
    $('batches').replaceChildren(
      ...batches.batches.map((b) =>
        el('div', { class: 'card review', 'data-batch': b.batch_id },
          el('div', { class: 'top' }, state(b.status), el('span', { class: 'mono', text: `batch ${b.batch_id}` }), el('span', { class: 'meta', text: `channel ${b.open_channel_id} · ${b.entry_count} payments · $${b.usd_value}` })),
          b.review_reason ? el('div', { class: 'line', text: b.review_reason }) : null,
          el('div', { class: 'actions' }, el('button', { type: 'button', class: 'act', 'data-batch': b.batch_id, text: 'Resume batch', on: { click: () => askBatch(b) } }))),
      ),
    );
    $('payouts').replaceChildren(
      payouts.payouts.length
        ? table(['payout', 'for', 'to', 'problem'], payouts.payouts.map((p) =>
            el('tr', {}, el('td', { class: 'mono', text: p.payoutId }), el('td', {}, p.paymentId ? paymentLink(p.paymentId) : el('span', { class: 'mono', text: `batch ${p.batchId}` })),
              el('td', { text: `${p.toCurrency}/${p.toNetwork}` }), el('td', { class: 'wrap', text: p.problem || '' }))))
        : batches.batches.length ? '' : empty('No payout waits for review.'),
    );
  }
  async function loadIpn() {
    const status = $('ipn-status').value;
    const data = await api(`/admin/ipn-deliveries?${new URLSearchParams({ limit: '20', ...(status && { status }) })}`);
    $('ipn').replaceChildren(
      data.deliveries.length
        ? table(['#', 'received', 'payment', 'NowPayments', 'ours', 'problem', ''], data.deliveries.map((d) =>
            el('tr', {}, el('td', { text: d.id }), el('td', { text: since(d.received_at) }), el('td', {}, d.payment_id ? paymentLink(String(d.payment_id)) : ''),
              el('td', { text: d.payment_status || '' }), el('td', {}, state(d.status)), el('td', { class: 'wrap', text: short(d.problem, 200) }),
              el('td', {}, d.status === 'parked' || d.status === 'failed' ? el('button', { type: 'button', class: 'act secondary', text: 'Replay', on: { click: () => askReplay(d) } }) : ''))))
        : empty('No IPN deliveries.'),
    );
  }
  async function loadDead() {
    const data = await api('/admin/dead-letters?limit=20');
    $('dead').replaceChildren(
      data.dead_letters.length
        ? table(['failed', 'from', 'payment / batch', 'step', 'error'], data.dead_letters.map((d) =>
            el('tr', {}, el('td', { text: since(d.failed_at) }), el('td', { class: 'mono', text: d.source_queue || d.queue }),
              el('td', {}, d.payment_id ? paymentLink(d.payment_id) : el('span', { class: 'mono', text: d.batch_id || '' })),
              el('td', { text: d.effect ? `${d.effect} #${d.attempt}` : '' }), el('td', { class: 'wrap', text: short(d.error, 300) }))))
        : empty('No dead letters.'),
    );
  }

  // --- actions: one dialog asks who and why --------------------------------------------------------
  function openDialog(title, what, needsReason) {
    $('act-title').textContent = title;
    $('act-what').textContent = what;
    $('act-problem').textContent = '';
    $('act-by').value = localStorage.getItem(NAME_KEY) || '';
    $('act-reason').value = '';
    $('act-by').closest('label').hidden = !needsReason;
    $('act-reason').closest('label').hidden = !needsReason;
    $('act-by').required = needsReason;
    $('act-reason').required = needsReason;
    $('act').showModal();
    (needsReason ? ($('act-by').value ? $('act-reason') : $('act-by')) : $('act-confirm')).focus();
  }
  function askEvent(paymentId, action) {
    pending = { kind: 'event', paymentId, type: action.type };
    openDialog(action.label, `${action.type} on payment ${paymentId}. Recorded in its journal with your name and reason.`, true);
  }
  function askBatch(batch) {
    pending = { kind: 'batch', batchId: batch.batch_id };
    openDialog('Resume batch', `Resumes payout batch ${batch.batch_id} from the step it reached (never a second exchange or transaction).`, false);
  }
  function askReplay(delivery) {
    pending = { kind: 'replay', id: delivery.id };
    openDialog('Replay IPN', `Re-parses stored IPN delivery #${delivery.id} and applies it (idempotent).`, false);
  }
  async function confirmAction(event) {
    event.preventDefault();
    if (!pending) return;
    const action = pending;
    const by = $('act-by').value.trim();
    const reason = $('act-reason').value.trim();
    if (action.kind === 'event' && (!by || !reason)) {
      $('act-problem').textContent = 'Your name and a reason are both required.';
      return;
    }
    $('act-confirm').disabled = true;
    try {
      if (action.kind === 'event') {
        localStorage.setItem(NAME_KEY, by);
        const result = await api(`/admin/payments/${encodeURIComponent(action.paymentId)}/events`, { method: 'POST', body: { type: action.type, by, reason } });
        toast(`${action.paymentId}: ${action.type} applied, now ${result.state}`);
      } else if (action.kind === 'batch') {
        await api(`/admin/payout-batches/${encodeURIComponent(action.batchId)}/retry`, { method: 'POST' });
        toast(`Batch ${action.batchId} resumed`);
      } else {
        const result = await api(`/admin/ipn-deliveries/${encodeURIComponent(action.id)}/replay`, { method: 'POST' });
        toast(`IPN #${action.id}: ${result.outcome || result.status || 'replayed'}`);
      }
      pending = null;
      $('act').close();
      await refresh();
      if (action.kind === 'event') await showDetail(action.paymentId);
    } catch (e) {
      $('act-problem').textContent = e.message;
    } finally {
      $('act-confirm').disabled = false;
    }
  }

  // --- refresh loop and sign-in --------------------------------------------------------------------
  async function refresh() {
    clearTimeout(timer);
    const parts = [
      ['stuck', loadStuck],
      ['payouts', loadPayouts],
      ['IPN log', loadIpn],
      ['dead letters', loadDead],
    ];
    const results = await Promise.allSettled(parts.map(([, load]) => load()));
    const failed = results.map((r, i) => (r.status === 'rejected' ? `${parts[i][0]}: ${r.reason.message}` : null)).filter(Boolean);
    alertBar(failed.join(' · '));
    if (detailId && !$('detail').hidden) await showDetail(detailId, { scroll: false });
    $('refreshed').textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.refreshed = String(Date.now());
    schedule();
  }
  function schedule() {
    clearTimeout(timer);
    if (!$('live').checked || !sessionStorage.getItem(TOKEN_KEY)) return;
    timer = setTimeout(() => {
      if (document.visibilityState === 'visible' && !$('act').open) refresh();
      else schedule();
    }, REFRESH_MS);
  }
  function signedIn(yes) {
    $('signin').hidden = yes;
    $('app').hidden = !yes;
    $('status').hidden = !yes;
    if (!yes) {
      clearTimeout(timer);
      $('token').focus();
    }
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
  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    signedIn(false);
  });
  $('refresh').addEventListener('click', () => refresh());
  $('live').addEventListener('change', () => schedule());
  $('ipn-status').addEventListener('change', () => loadIpn().catch((e) => toast(e.message)));
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    runSearch($('q').value.trim()).catch((err) => toast(err.message));
  });
  $('detail-close').addEventListener('click', () => {
    detailId = null;
    $('detail').hidden = true;
  });
  $('act-form').addEventListener('submit', confirmAction);
  $('act-cancel').addEventListener('click', () => {
    pending = null;
    $('act').close();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && $('live').checked && sessionStorage.getItem(TOKEN_KEY)) refresh();
  });

  if (sessionStorage.getItem(TOKEN_KEY)) {
    signedIn(true);
    refresh();
  } else {
    signedIn(false);
  }
})();
