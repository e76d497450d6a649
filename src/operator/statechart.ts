import { render, type IState, type IStateMachine, type ITransition } from 'state-machine-cat';
import type { AnyStateMachine, StateValue } from 'xstate';
import { chartOf, highlightOf, type Chart, type ChartHighlight, type ChartState, type PathStep } from '../machines/payment.diagram.js';

// The statechart as SVG, drawn on the server from the machine's own definition (src/machines/payment.diagram.ts)
// with state-machine-cat, which lays it out with Graphviz compiled to WebAssembly: no browser, no network,
// no native binary. For one payment the drawing shows where it is now and the path it took there.
// Graphviz takes a few hundred milliseconds, so drawings are made one at a time and kept: payments that
// took the same path and rest in the same states share one drawing.

export const CURRENT_COLOR = '#c2410c';
export const VISITED_COLOR = '#1d4ed8';
const IDLE_COLOR = '#8a919c';

const INITIAL = '#initial';
const FINAL = '#final';

/** The drawing as state-machine-cat's JSON, colored by a payment's highlight when one is given. */
export function toStateMachineCat(chart: Chart, highlight?: ChartHighlight): IStateMachine {
  const transitions: ITransition[] = [];
  let transitionId = 0;
  // Where the payment rests (leaf states) in the current color; the regions around them, and everything
  // it passed through, in the path's color; the rest in grey.
  const resting = (id: string) => Boolean(highlight?.current.has(id) && chart.states.get(id)?.children.length === 0);
  const colorOf = (id: string) => (!highlight ? undefined : resting(id) ? CURRENT_COLOR : highlight.visited.has(id) ? VISITED_COLOR : IDLE_COLOR);
  const classOf = (id: string) => (!highlight ? undefined : resting(id) ? 'current' : highlight.current.has(id) ? 'active' : highlight.visited.has(id) ? 'visited' : undefined);

  const stateOf = (state: ChartState): IState => {
    const atomic = state.children.length === 0;
    const result: IState = { name: state.id, label: state.key, type: state.type === 'parallel' ? 'parallel' : 'regular' };
    const color = colorOf(state.id);
    if (color) result.color = color;
    const cls = classOf(state.id);
    if (cls) result.class = cls;
    if (resting(state.id)) result.active = true;
    const actions = [
      ...state.entryEffects.map((effect) => ({ type: 'entry' as const, body: effect })),
      ...state.internal.map((t) => ({ type: 'activity' as const, body: t.label })),
    ];
    if (actions.length) result.actions = actions;
    if (!atomic) {
      const children: IState[] = [];
      if (state.initial) {
        const initial = chart.transitions.find((t) => t.kind === 'initial' && t.source === state.id);
        const entered = Boolean(initial && highlight?.taken.has(initial.id));
        children.push({ name: state.id + INITIAL, type: 'initial', ...(highlight && { color: entered ? VISITED_COLOR : IDLE_COLOR }) });
      }
      children.push(...state.children.map(stateOf));
      // A final state is drawn as a state with an arrow to the region's end (UML's final pseudo state).
      const finals = state.children.filter((c) => c.type === 'final');
      if (finals.length) {
        const reached = finals.some((f) => highlight?.visited.has(f.id));
        children.push({ name: state.id + FINAL, type: 'final', ...(highlight && { color: reached ? VISITED_COLOR : IDLE_COLOR }) });
        for (const f of finals) {
          const edge: ITransition = { id: ++transitionId, from: f.id, to: state.id + FINAL };
          if (highlight) edge.color = highlight.visited.has(f.id) ? VISITED_COLOR : IDLE_COLOR;
          transitions.push(edge);
        }
      }
      result.statemachine = { states: children };
    }
    return result;
  };
  const root = stateOf(chart.root);

  for (const t of chart.transitions) {
    const edge: ITransition = { id: ++transitionId, from: t.kind === 'initial' ? t.source + INITIAL : t.source, to: t.target! };
    if (t.label) {
      edge.label = t.label;
      edge.event = t.label;
    }
    if (highlight) {
      const taken = highlight.taken.has(t.id);
      edge.color = taken ? VISITED_COLOR : IDLE_COLOR;
      if (taken) {
        edge.width = 2.5;
        edge.class = 'taken';
      }
    }
    transitions.push(edge);
  }
  return { states: [root], transitions };
}

export interface StatechartRenderer {
  /** The machine alone. */
  machineSvg(): Promise<string>;
  /** The machine with a payment's current states and the path it took (its journal, oldest first). */
  paymentSvg(steps: readonly PathStep[], current: StateValue): Promise<string>;
}

export function createStatechartRenderer(machine: AnyStateMachine, options: { cacheSize?: number } = {}): StatechartRenderer {
  const chart = chartOf(machine);
  const cacheSize = options.cacheSize ?? 64;
  const cache = new Map<string, Promise<string>>();
  let queue: Promise<unknown> = Promise.resolve();

  const draw = (key: string, highlight?: ChartHighlight): Promise<string> => {
    const cached = cache.get(key);
    if (cached) {
      cache.delete(key);
      cache.set(key, cached);
      return cached;
    }
    // One Graphviz layout at a time: two cores serve payments too.
    const drawing = queue.then(() => render(toStateMachineCat(chart, highlight), { inputType: 'json', outputType: 'svg', direction: 'left-right' }));
    queue = drawing.catch(() => {});
    cache.set(key, drawing);
    drawing.catch(() => cache.delete(key));
    if (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
    return drawing;
  };

  return {
    machineSvg: () => draw('machine'),
    paymentSvg(steps, current) {
      const highlight = highlightOf(chart, steps, current);
      const key = JSON.stringify([[...highlight.current].sort(), [...highlight.visited].sort(), [...highlight.taken].sort()]);
      return draw(key, highlight);
    },
  };
}
