import { escapeHtml, page } from './layout.js';
import type { Dictionary } from './i18n/index.js';

// The sandbox's chat with the bot (GET /sandbox/chat): a newcomer plays a Telegram user on a fresh
// machine. What "you" type goes to the service's bot as a Telegram update; what the bot sent to this
// chat is read back from the fake Bot API's recorded sendMessage calls, with its buttons: a tap on a
// callback button is a callback_query update, a URL button (Pay, Payment status, the invite) opens in a
// new tab. Everything from the bot is written with textContent.

const STYLE = `
  main { padding: 0; overflow: hidden; display: flex; flex-direction: column; height: min(78vh, 46rem); }
  .chat-head { padding: .8rem 1rem; border-bottom: 1px solid var(--line); display: flex; justify-content: space-between; align-items: baseline; gap: .5rem; }
  .chat-head h1 { font-size: 1.05rem; margin: 0; }
  .chat-head .who { color: var(--muted); font-size: .8rem; }
  #log { flex: 1; overflow-y: auto; padding: 1rem; display: flex; flex-direction: column; gap: .55rem; background: var(--bg); }
  .msg { max-width: 85%; padding: .55rem .8rem; border-radius: 14px; white-space: pre-wrap; word-break: break-word; line-height: 1.35; font-size: .95rem; }
  .msg.bot { align-self: flex-start; background: var(--card); border: 1px solid var(--line); border-bottom-left-radius: 4px; }
  .msg.you { align-self: flex-end; background: var(--accent); color: var(--accent-fg); border-bottom-right-radius: 4px; }
  .kb { display: flex; flex-direction: column; gap: .3rem; margin-top: .5rem; }
  .kb .row { display: flex; gap: .3rem; }
  .kb button, .kb a { flex: 1; padding: .5rem .6rem; border-radius: 8px; border: 1px solid var(--line); background: var(--bg); color: var(--accent); font: inherit; font-size: .88rem;
    font-weight: 600; text-align: center; text-decoration: none; cursor: pointer; }
  .kb a::after { content: " \\2197"; }
  .chips { display: flex; flex-wrap: wrap; gap: .4rem; padding: .6rem 1rem 0; border-top: 1px solid var(--line); }
  .chips button { padding: .3rem .7rem; border-radius: 999px; border: 1px solid var(--line); background: var(--card); color: var(--fg); font: inherit; font-size: .82rem; cursor: pointer; }
  .empty { color: var(--muted); text-align: center; margin: auto; font-size: .9rem; padding: 0 1rem; }
  form { display: flex; gap: .5rem; padding: .7rem 1rem .9rem; }
  form input { flex: 1; padding: .6rem .8rem; border-radius: 10px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); font: inherit; }
  form .button { margin: 0; }
`;

const SCRIPT = `
(function () {
  var DATA = JSON.parse(document.getElementById('page-data').textContent);
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(window.location.search);
  var user = params.get('user');
  if (!/^[1-9][0-9]{0,14}$/.test(user || '')) {
    user = String(100000000 + Math.floor(Math.random() * 800000000));
    params.set('user', user);
    window.history.replaceState(null, '', '?' + params.toString());
  }
  $('who').textContent = 'you are Telegram user ' + user;
  var shown = -1;
  var busy = false;

  function post(path, body) {
    busy = true;
    return fetch(path, { method: 'POST', credentials: 'omit', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (res) { if (!res.ok) return res.json().then(function (e) { throw new Error(e.message || res.status); }); })
      .catch(function (e) { $('error').textContent = String(e.message || e); $('error').hidden = false; })
      .then(function () { busy = false; return refresh(); });
  }
  function say(text) {
    if (!text) return;
    $('error').hidden = true;
    return post('/sandbox/chat/send', { user: user, text: text, language_code: DATA.lang });
  }

  function keyboard(message) {
    var rows = message.buttons || [];
    if (!rows.length) return null;
    var kb = document.createElement('div');
    kb.className = 'kb';
    rows.forEach(function (row) {
      var r = document.createElement('div');
      r.className = 'row';
      row.forEach(function (b) {
        var el;
        if (b.url) {
          if (!/^https?:\\/\\//i.test(b.url)) return;
          el = document.createElement('a');
          el.href = b.url;
          el.target = '_blank';
          el.rel = 'noopener';
        } else {
          el = document.createElement('button');
          el.type = 'button';
          el.addEventListener('click', function () { post('/sandbox/chat/tap', { user: user, message_id: message.message_id, data: b.callback_data, language_code: DATA.lang }); });
        }
        el.textContent = b.text;
        r.appendChild(el);
      });
      kb.appendChild(r);
    });
    return kb;
  }

  function render(answer) {
    var log = $('log');
    if (answer.messages.length === shown) return;
    shown = answer.messages.length;
    log.textContent = '';
    if (!answer.messages.length) {
      var empty = document.createElement('p');
      empty.className = 'empty';
      empty.textContent = DATA.empty;
      log.appendChild(empty);
    }
    answer.messages.forEach(function (m) {
      var div = document.createElement('div');
      div.className = 'msg ' + m.from;
      div.setAttribute('data-from', m.from);
      div.textContent = m.text;
      var kb = m.from === 'bot' ? keyboard(m) : null;
      if (kb) div.appendChild(kb);
      log.appendChild(div);
    });
    log.scrollTop = log.scrollHeight;
    document.body.setAttribute('data-messages', String(shown));
  }

  function chips(channels) {
    var box = $('chips');
    box.textContent = '';
    channels.forEach(function (c) {
      var b = document.createElement('button');
      b.type = 'button';
      b.textContent = '/start ' + c.title;
      b.title = '/start ' + c.open_channel_id;
      b.addEventListener('click', function () { say('/start ' + c.open_channel_id); });
      box.appendChild(b);
    });
    ['/status', '/help'].forEach(function (command) {
      var b = document.createElement('button');
      b.type = 'button';
      b.textContent = command;
      b.addEventListener('click', function () { say(command); });
      box.appendChild(b);
    });
  }

  var chipsShown = '';
  function refresh() {
    return fetch('/sandbox/chat/messages?user=' + encodeURIComponent(user), { cache: 'no-store', credentials: 'omit' })
      .then(function (res) { return res.json(); })
      .then(function (answer) {
        render(answer);
        var key = JSON.stringify(answer.channels);
        if (key !== chipsShown) { chipsShown = key; chips(answer.channels); }
      })
      .catch(function () {});
  }

  $('composer').addEventListener('submit', function (event) {
    event.preventDefault();
    var text = $('text').value.trim();
    $('text').value = '';
    say(text);
  });
  function loop() { (busy ? Promise.resolve() : refresh()).then(function () { window.setTimeout(loop, 1000); }); }
  loop();
})();
`;

export function renderChatPage(c: { nonce: string; dict: Dictionary; query: URLSearchParams }, o: { botName: string }): string {
  return page({
    nonce: c.nonce,
    dict: c.dict,
    title: `Sandbox chat with @${o.botName}`,
    brand: 'TelePay sandbox',
    query: c.query,
    style: STYLE,
    data: { lang: c.dict.lang, empty: 'Say /start, or tap a channel below: the bot answers here, as in Telegram.' },
    script: SCRIPT,
    body: `<div class="chat-head"><h1>@${escapeHtml(o.botName)}</h1><span class="who" id="who"></span></div>
<div id="log" aria-live="polite"></div>
<p class="box bad" id="error" hidden></p>
<div class="chips" id="chips"></div>
<form id="composer" autocomplete="off"><input id="text" name="text" placeholder="Message the bot, e.g. /start" maxlength="4096"><button class="button" type="submit">Send</button></form>`,
  });
}
