import type { AnyStateMachine } from 'xstate';
import { toDirectedGraph, type DirectedGraphNode } from 'xstate/graph';

// A Mermaid stateDiagram-v2 of a statechart, drawn from the machine itself so it cannot drift.
// Renders offline (any Mermaid viewer); the Stately inspector needs stately.ai, which operators may not reach.

const id = (node: { id: string }) => node.id.replace(/\./g, '_');

export function toMermaid(machine: AnyStateMachine): string {
  const lines = ['stateDiagram-v2'];
  const draw = (node: DirectedGraphNode, depth: number) => {
    const pad = '  '.repeat(depth);
    const initial = node.stateNode.initial?.target?.[0];
    if (initial) lines.push(`${pad}[*] --> ${initial.id.replace(/\./g, '_')}`);
    for (const child of node.children) {
      if (child.children.length) {
        lines.push(`${pad}state ${id(child)} {`);
        draw(child, depth + 1);
        lines.push(`${pad}}`);
      } else {
        lines.push(`${pad}state "${child.stateNode.key}" as ${id(child)}`);
        if (child.stateNode.type === 'final') lines.push(`${pad}${id(child)} --> [*]`);
      }
      if (node.stateNode.type === 'parallel' && child !== node.children.at(-1)) lines.push(`${pad}--`);
    }
  };
  const root = toDirectedGraph(machine);
  draw(root, 1);
  const edges = new Set<string>();
  const collect = (node: DirectedGraphNode) => {
    for (const edge of node.edges) {
      const label = edge.label.text.startsWith('xstate.done') ? 'all regions done' : edge.label.text || '(always)';
      edges.add(`  ${id(edge.source)} --> ${id(edge.target)} : ${label}`);
    }
    node.children.forEach(collect);
  };
  collect(root);
  return [...lines, ...edges].join('\n');
}
