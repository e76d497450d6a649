import {
  api,
  byId,
  followJournal,
  journalItem,
  paymentIdFromPath,
  paymentPath,
  showError,
  stateText,
  Unauthorized,
  withToken,
  type JournalAnswer,
  type JournalRow,
} from './inspector-client.js';

// The offline statechart page (GET /admin/payments/:id/statechart): the SVG the server drew from the
// machine (current states and the path taken highlighted) beside the payment's journal. Nothing here
// leaves this service, so it works without internet. New journal rows arrive live and redraw the chart.

const paymentId = paymentIdFromPath();
let lastSeq = 0;
let drawing = Promise.resolve();

async function draw(): Promise<void> {
  const text = await (await api(paymentPath(paymentId, '/statechart.svg'), { headers: { accept: 'image/svg+xml' } })).text();
  // Our own drawing of our own machine (no payment data in it), parsed as SVG, never as HTML.
  const parsed = new DOMParser().parseFromString(text, 'image/svg+xml').documentElement;
  if (parsed.nodeName !== 'svg') throw new Error('The statechart could not be drawn.');
  const svg = document.importNode(parsed, true) as unknown as SVGSVGElement;
  // Graphviz sizes the drawing in points; one point per pixel keeps 10-12 px labels and a third less scrolling.
  const box = svg.viewBox.baseVal;
  if (box && box.width > 0) {
    svg.setAttribute('width', String(Math.round(box.width)));
    svg.setAttribute('height', String(Math.round(box.height)));
  }
  const chart = byId('chart');
  const first = !chart.firstElementChild;
  chart.replaceChildren(svg);
  if (first) centerOnCurrent(chart);
  document.body.dataset.drawnAt = String(lastSeq);
}

/**
 * Scrolls the chart (not the page) so that the states the payment rests in are in the middle of it;
 * when they do not all fit (a phone), the one parked for review, else the first.
 */
function centerOnCurrent(chart: HTMLElement): void {
  const current = Array.from(chart.querySelectorAll('g.node.current'));
  if (!current.length || chart.classList.contains('fit')) return;
  const frame = chart.getBoundingClientRect();
  let nodes = current.map((node) => node.getBoundingClientRect());
  const width = Math.max(...nodes.map((r) => r.right)) - Math.min(...nodes.map((r) => r.left));
  const height = Math.max(...nodes.map((r) => r.bottom)) - Math.min(...nodes.map((r) => r.top));
  if (width > frame.width * 0.9 || height > frame.height * 0.9) {
    const parked = current.find((node) => /review$/.test(node.querySelector('title')?.textContent ?? '')) ?? current[0]!;
    nodes = [parked.getBoundingClientRect()];
  }
  const left = Math.min(...nodes.map((r) => r.left));
  const right = Math.max(...nodes.map((r) => r.right));
  const top = Math.min(...nodes.map((r) => r.top));
  const bottom = Math.max(...nodes.map((r) => r.bottom));
  chart.scrollLeft += (left + right) / 2 - (frame.left + frame.width / 2);
  chart.scrollTop += (top + bottom) / 2 - (frame.top + frame.height / 2);
}

const redraw = () => {
  drawing = drawing.then(draw).catch((error: Error) => showError(error.message));
};

function addRow(row: JournalRow): boolean {
  if (row.seq <= lastSeq) return false;
  lastSeq = row.seq;
  byId('journal').append(journalItem(row));
  byId('summary').textContent = stateText(row.to_state);
  return true;
}

async function start(): Promise<void> {
  showError('');
  let answer: JournalAnswer;
  try {
    answer = (await (await api(paymentPath(paymentId, '/journal'))).json()) as JournalAnswer;
  } catch (error) {
    if (error instanceof Unauthorized) return withToken(() => void start(), error.message);
    showError((error as Error).message);
    return;
  }
  for (const row of answer.journal) addRow(row);
  const { payment } = answer;
  byId('summary').textContent = stateText(payment.state_value) + (payment.review_reason ? ` (${payment.review_reason})` : '');
  redraw();
  followJournal(paymentId, {
    after: () => lastSeq,
    onRow: (row) => {
      if (addRow(row)) redraw();
    },
    onLive: (live) => {
      document.body.dataset.live = live ? 'yes' : 'no';
    },
    onUnauthorized: () => withToken(() => void start(), 'The admin token is not valid.'),
  });
}

byId('payment').textContent = paymentId;
byId<HTMLAnchorElement>('inspector-link').href = paymentPath(paymentId, '/inspect');
byId('zoom').onclick = () => {
  const chart = byId('chart');
  const fit = chart.classList.toggle('fit');
  byId('zoom').textContent = fit ? 'Actual size' : 'Fit to width';
  if (!fit) centerOnCurrent(chart);
};
withToken(() => void start());
