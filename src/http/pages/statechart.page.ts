import { OPERATOR_PAGE_STYLE } from './inspector.page.js';

// The offline statechart page (GET /admin/payments/:id/statechart): a static shell like the dashboard.
// Its script (/admin/assets/statechart.js, from src/operator/statechart.browser.ts) fetches the SVG the
// server draws (…/statechart.svg) and the journal, both authenticated. Nothing is loaded from anywhere
// else: it works with no internet at all.

const CURRENT = '#c2410c';
const PATH = '#1d4ed8';
const IDLE = '#8a919c';

export function renderStatechartPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Payment statechart · TelePay operators</title>
<style nonce="${nonce}">${OPERATOR_PAGE_STYLE}
  .legend { flex-basis: 100%; margin: 0; display: flex; flex-wrap: wrap; gap: .25rem 1rem; font-size: .85rem; color: #4b5563; }
  .legend span::before { content: ""; display: inline-block; width: .8rem; height: .8rem; border-radius: .2rem; margin-right: .3rem; vertical-align: -.1rem; border: 2px solid; }
  .legend .current::before { border-color: ${CURRENT}; border-width: 3px; }
  .legend .path::before { border-color: ${PATH}; }
  .legend .idle::before { border-color: ${IDLE}; }
  #chart { overflow: auto; padding: .5rem; height: calc(100vh - 6.5rem); min-height: 20rem; }
  #chart svg { display: block; max-width: none; }
  #chart.fit svg { width: 100%; height: auto; }
  @media (max-width: 800px) { #chart { height: 70vh; } }
</style>
</head>
<body data-live="no">
<header>
  <h1>Payment <span id="payment"></span></h1>
  <span id="summary"></span>
  <nav>
    <a id="inspector-link">Inspector (needs internet)</a>
    <a href="/admin/dashboard">Dashboard</a>
    <button id="zoom" type="button">Fit to width</button>
  </nav>
  <p class="legend"><span class="current">where it is now</span><span class="path">states and transitions it went through</span><span class="idle">not reached</span></p>
</header>
<form id="auth" hidden><label>Admin token <input id="token" type="password" autocomplete="off"></label><button>Use</button><span id="auth-error"></span></form>
<p id="error" role="alert"></p>
<main>
  <section id="chart" aria-label="statechart"></section>
  <aside><h2>Journal</h2><ol id="journal"></ol></aside>
</main>
<script src="/admin/assets/statechart.js"></script>
</body>
</html>
`;
}

export function statechartPageCsp(nonce: string): string {
  return ["default-src 'none'", "script-src 'self'", `style-src 'nonce-${nonce}'`, "connect-src 'self'", "img-src 'self' data:", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"].join('; ');
}
