import type { AnyStateMachine, AnyStateNode, StateValue } from 'xstate';

// The statechart as data, read from the machine itself so a drawing can never drift from what runs:
// every state (with its effects on entry and the transitions that never leave it), every transition
// with its event and guard, including the eventless `always` exits and the "all regions done" exit of
// a parallel state. Drawn as Mermaid here (GET /admin/machine.mmd) and as SVG by
// src/operator/statechart.ts (GET /admin/machine.svg, the per-payment statechart). Pure: no I/O.

export type ChartStateType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

export interface ChartState {
  id: string;
  key: string;
  type: ChartStateType;
  /** The id of the child entered first (compound states). */
  initial: string | null;
  children: ChartState[];
  /** `effect.*` actions run on entry: the jobs the engine enqueues when the state is entered. */
  entryEffects: string[];
  /** Transitions without a target: they may record something, but the state does not change. */
  internal: ChartTransition[];
}

export type ChartTransitionKind = 'event' | 'always' | 'done' | 'initial';

export interface ChartTransition {
  /** Stable within one machine definition: `<source id>#<n>`. */
  id: string;
  kind: ChartTransitionKind;
  source: string;
  /** null for a transition that does not change the state (drawn inside its state). */
  target: string | null;
  /** The event type; null for `always` and initial transitions. */
  event: string | null;
  guard: string | null;
  /** What a drawing writes on the arrow: `event [guard]`, `always [else]`, `all regions done`. */
  label: string;
}

export interface Chart {
  root: ChartState;
  /** Every state by id. */
  states: Map<string, ChartState>;
  /** Every transition that has a target (initial transitions included). */
  transitions: ChartTransition[];
}

type Guard = unknown;

/** A guard as written in the machine: `paidEnough`, `exhausted(route)`, `recoverableFailure && paidEnough`. */
export function guardText(guard: Guard): string {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const inner = (guard as { guards?: unknown[] }).guards;
    if (Array.isArray(inner)) {
      if (guard.name === 'not') return `!${inner.map(guardText).join('')}`;
      return inner.map(guardText).join(guard.name === 'or' ? ' || ' : ' && ');
    }
    return guard.name || 'guard';
  }
  if (guard && typeof guard === 'object' && 'type' in guard) {
    const { type, params } = guard as { type: string; params?: unknown };
    if (params && typeof params === 'object') return `${type}(${Object.values(params).map(String).join(', ')})`;
    return String(type);
  }
  return 'guard';
}

function actionName(action: unknown): string | null {
  if (typeof action === 'string') return action;
  if (action && typeof action === 'object' && 'type' in action && typeof action.type === 'string') return action.type;
  return null;
}

export function chartOf(machine: AnyStateMachine): Chart {
  const states = new Map<string, ChartState>();
  const transitions: ChartTransition[] = [];

  const visit = (node: AnyStateNode): ChartState => {
    const children = Object.values(node.states as Record<string, AnyStateNode>).map(visit);
    const state: ChartState = {
      id: node.id,
      key: node.key,
      type: node.type,
      initial: node.type === 'compound' ? (node.initial?.target?.[0]?.id ?? null) : null,
      children,
      entryEffects: node.entry.map(actionName).filter((name): name is string => Boolean(name?.startsWith('effect.'))),
      internal: [],
    };
    states.set(state.id, state);
    let n = 0;
    const add = (t: Omit<ChartTransition, 'id' | 'source'>) => {
      const transition = { id: `${node.id}#${n++}`, source: node.id, ...t };
      if (transition.target === null) state.internal.push(transition);
      else transitions.push(transition);
    };
    if (state.initial) add({ kind: 'initial', target: state.initial, event: null, guard: null, label: '' });

    const candidates = (list: readonly { guard?: Guard; target?: readonly AnyStateNode[] | undefined }[], kind: ChartTransitionKind, event: string | null, name: string) => {
      let guardedBefore = false;
      for (const definition of list) {
        const guard = definition.guard === undefined ? null : guardText(definition.guard);
        // An unguarded candidate after guarded ones is taken only when none of them passed.
        const label = guard ? `${name} [${guard}]` : guardedBefore ? `${name} [else]` : name;
        if (guard) guardedBefore = true;
        const targets = definition.target?.length ? definition.target.map((t) => t.id) : [null];
        for (const target of targets) add({ kind, target, event, guard, label });
      }
    };
    for (const [event, list] of node.transitions as Map<string, { guard?: Guard; target?: readonly AnyStateNode[] }[]>) {
      if (event.startsWith('xstate.done.state.')) candidates(list, 'done', event, node.type === 'parallel' ? 'all regions done' : 'done');
      else candidates(list, 'event', event, event);
    }
    if (node.always) candidates(node.always, 'always', null, 'always');
    return state;
  };

  return { root: visit(machine.root), states, transitions };
}

/** The ids of every state a state value has active, ancestors (and the root) included. */
export function activeIds(chart: Chart, value: StateValue | null | undefined): Set<string> {
  const active = new Set<string>([chart.root.id]);
  const walk = (state: ChartState, v: StateValue) => {
    if (typeof v === 'string') {
      const child = state.children.find((c) => c.key === v);
      if (child) active.add(child.id);
      return;
    }
    for (const [key, inner] of Object.entries(v)) {
      const child = state.children.find((c) => c.key === key);
      if (!child) continue;
      active.add(child.id);
      if (inner !== undefined) walk(child, inner as StateValue);
    }
  };
  if (value !== null && value !== undefined) walk(chart.root, value);
  return active;
}

/** One journal row, as far as the drawing needs it. */
export interface PathStep {
  event_type: string;
  /** null for the first event: the payment was in the machine's initial state. */
  from_state: StateValue | null;
  to_state: StateValue;
}

export interface ChartHighlight {
  /** The states active now (ancestors included). */
  current: Set<string>;
  /** Every state the payment has been in. */
  visited: Set<string>;
  /** Transition ids the payment took. */
  taken: Set<string>;
}

const parentId = (id: string) => id.slice(0, Math.max(0, id.lastIndexOf('.')));

/** The state value a machine starts in (before its first event), read from the chart's initial states. */
export function initialValueOf(chart: Chart): StateValue {
  const valueOf = (state: ChartState): StateValue | undefined => {
    if (state.type === 'parallel') return Object.fromEntries(state.children.map((c) => [c.key, valueOf(c) ?? {}])) as StateValue;
    const first = state.children.find((c) => c.id === state.initial);
    if (!first) return undefined;
    const inner = valueOf(first);
    return inner === undefined ? first.key : { [first.key]: inner };
  };
  return valueOf(chart.root) ?? {};
}

/** Where a payment is and the path it took there, from its journal (from_state → to_state per event). */
export function highlightOf(chart: Chart, steps: readonly PathStep[], current: StateValue): ChartHighlight {
  const initial = initialValueOf(chart);
  const visited = activeIds(chart, initial);
  const taken = new Set<string>();
  for (const step of steps) {
    const from = activeIds(chart, step.from_state ?? initial);
    const to = activeIds(chart, step.to_state);
    for (const t of chart.transitions) {
      const target = t.target!;
      if (t.kind === 'event' && t.event === step.event_type && from.has(t.source) && to.has(target)) taken.add(t.id);
      if (t.kind === 'done' && from.has(t.source) && to.has(target) && !from.has(target)) taken.add(t.id);
      // An eventless exit is never a resting state: it was passed through when its region was entered in this step.
      if (t.kind === 'always' && to.has(target) && !from.has(target) && !from.has(parentId(t.source)) && to.has(parentId(t.source))) {
        taken.add(t.id);
        visited.add(t.source);
      }
    }
    for (const id of to) visited.add(id);
  }
  // A state is entered first through its parent's initial transition (or a transition straight to it).
  for (const t of chart.transitions) if (t.kind === 'initial' && visited.has(t.target!)) taken.add(t.id);
  return { current: activeIds(chart, current), visited, taken };
}

// ---------------------------------------------------------------------------------------------------
// Mermaid

const mermaidId = (id: string) => id.replace(/[^A-Za-z0-9_]/g, '_');

/** A Mermaid stateDiagram-v2 of a statechart; renders in any Mermaid viewer, offline. */
export function toMermaid(machine: AnyStateMachine): string {
  const chart = chartOf(machine);
  const lines = ['stateDiagram-v2'];
  const draw = (state: ChartState, depth: number) => {
    const pad = '  '.repeat(depth);
    if (state.initial) lines.push(`${pad}[*] --> ${mermaidId(state.initial)}`);
    state.children.forEach((child, index) => {
      if (child.children.length) {
        lines.push(`${pad}state ${mermaidId(child.id)} {`);
        draw(child, depth + 1);
        lines.push(`${pad}}`);
      } else {
        lines.push(`${pad}state "${child.key}" as ${mermaidId(child.id)}`);
        if (child.type === 'final') lines.push(`${pad}${mermaidId(child.id)} --> [*]`);
      }
      // Effects on entry and transitions that stay in the state are written inside the state's box.
      for (const effect of child.entryEffects) lines.push(`${pad}${mermaidId(child.id)} : entry / ${effect}`);
      for (const t of child.internal) lines.push(`${pad}${mermaidId(child.id)} : ${t.label}`);
      if (state.type === 'parallel' && index < state.children.length - 1) lines.push(`${pad}--`);
    });
  };
  draw(chart.root, 1);
  // The machine's own transitions apply in every state and never move it: a note, not a node.
  const first = chart.root.initial;
  if (first && chart.root.internal.length) {
    lines.push(`  note right of ${mermaidId(first)} : in any state, ${chart.root.internal.map((t) => t.label).join(', ')} (recorded, the state does not change)`);
  }
  const edges = new Set<string>();
  for (const t of chart.transitions) {
    if (t.kind === 'initial') continue;
    edges.add(`  ${mermaidId(t.source)} --> ${mermaidId(t.target!)} : ${t.label}`);
  }
  return [...lines, ...edges].join('\n');
}
