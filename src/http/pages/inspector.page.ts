// The operators' inspector page (GET /admin/payments/:id/inspect): a static shell. It holds no payment
// data and asks for the admin token like the dashboard; its script (/admin/assets/inspector.js, bundled
// from src/operator/inspector.browser.ts) reads the payment id from the URL, loads the journal from the
// authenticated API, replays it through the payment machine with the Stately inspector attached (in the
// frame below, or a window of its own) and follows the journal live.

export const escapeAttribute = (value: string) => value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Shared look of the operators' inspector and statechart pages. */
export const OPERATOR_PAGE_STYLE = `
  :root { color-scheme: light; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; }
  * { box-sizing: border-box; }
  body { margin: 0; min-height: 100vh; display: flex; flex-direction: column; }
  header { padding: .75rem 1rem; border-bottom: 1px solid #e3e6ec; display: flex; flex-wrap: wrap; gap: .25rem 1.5rem; align-items: baseline; }
  h1 { font-size: 1.1rem; margin: 0; word-break: break-all; }
  h2 { font-size: .95rem; margin: 0 0 .5rem; }
  #summary { font-weight: 600; }
  nav { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; margin-left: auto; }
  a { color: #1d4ed8; }
  button { font: inherit; padding: .25rem .6rem; }
  #status { flex-basis: 100%; margin: 0; color: #4b5563; }
  .problem, #error, #auth-error { color: #b42318; }
  #error:empty, #status:empty { display: none; }
  #error { margin: .5rem 1rem; }
  form#auth { padding: .75rem 1rem; display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
  form#auth input { font: inherit; padding: .3rem .5rem; min-width: 16rem; }
  [hidden] { display: none !important; }
  main { flex: 1; display: grid; grid-template-columns: minmax(0, 1fr) 24rem; min-height: 0; }
  aside { border-left: 1px solid #e3e6ec; padding: .75rem 1rem; overflow: auto; max-height: calc(100vh - 5rem); }
  ol#journal { list-style: none; margin: 0; padding: 0; }
  .entry { padding: .45rem 0; border-bottom: 1px solid #eef0f4; }
  .entry-head { display: flex; gap: .5rem; align-items: baseline; flex-wrap: wrap; }
  .seq { color: #6b7280; font-variant-numeric: tabular-nums; }
  .event { font-weight: 600; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
  .source { color: #6b7280; font-size: .8rem; margin-left: auto; }
  .move { font-size: .85rem; }
  .at { display: block; color: #6b7280; font-size: .75rem; font-variant-numeric: tabular-nums; }
  details.payload summary { cursor: pointer; color: #1d4ed8; font-size: .8rem; }
  details.payload pre { background: #f4f6fa; padding: .4rem; overflow: auto; font-size: .75rem; margin: .25rem 0 0; }
  @media (max-width: 800px) {
    main { grid-template-columns: 1fr; }
    aside { border-left: 0; border-top: 1px solid #e3e6ec; max-height: none; }
    nav { margin-left: 0; }
  }
`;

const TOKEN_FORM = `<form id="auth" hidden><label>Admin token <input id="token" type="password" autocomplete="off"></label><button>Use</button><span id="auth-error"></span></form>`;

export function renderInspectorPage(nonce: string, options: { inspectorUrl: string }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Payment inspector · TelePay operators</title>
<style nonce="${nonce}">${OPERATOR_PAGE_STYLE}
  .stage { position: relative; min-height: 70vh; }
  iframe#inspector { position: absolute; inset: 0; width: 100%; height: 100%; border: 0; }
  #frame-note { padding: 1rem; }
  @media (max-width: 800px) { .stage { min-height: 75vh; } }
</style>
</head>
<body data-inspector-url="${escapeAttribute(options.inspectorUrl)}" data-live="no">
<header>
  <h1>Payment <span id="payment"></span></h1>
  <span id="summary"></span>
  <nav>
    <a id="statechart-link">Offline statechart</a>
    <a href="/admin/dashboard">Dashboard</a>
    <button id="popup" type="button">Open the inspector in a window</button>
  </nav>
  <p id="status" role="status"></p>
</header>
${TOKEN_FORM}
<p id="error" role="alert"></p>
<main>
  <div class="stage">
    <iframe id="inspector" title="Stately inspector" referrerpolicy="no-referrer"></iframe>
    <p id="frame-note" hidden>The inspector is open in a window of its own.</p>
  </div>
  <aside><h2>Journal</h2><ol id="journal"></ol></aside>
</main>
<script src="/admin/assets/inspector.js"></script>
</body>
</html>
`;
}

/** Its own script, the inspector's frame, and calls to this service only. */
export function inspectorPageCsp(nonce: string, inspectorUrl: string): string {
  const origin = new URL(inspectorUrl).origin;
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    `frame-src ${origin}`,
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}
