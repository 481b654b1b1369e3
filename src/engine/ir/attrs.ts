/**
 * Reading node attributes, shared by shape inference, the gradient rules, training lowering and the TF.js
 * interpreter so that they all read a node the same way. Numeric readers accept int and float alike (exporters are
 * not consistent about which they write).
 */
import type { Node } from './graph.js';

/** The int attribute `name` of `node` (a float attribute is taken as is), or `dflt` when absent. */
export function intAttr(node: Node, name: string, dflt: number): number {
  const a = node.attrs[name];
  return a && (a.type === 'int' || a.type === 'float') ? a.value : dflt;
}

/** The float attribute `name` of `node` (an int attribute is taken as is), or `dflt` when absent. */
export function floatAttr(node: Node, name: string, dflt: number): number {
  const a = node.attrs[name];
  return a && (a.type === 'float' || a.type === 'int') ? a.value : dflt;
}

/** The ints attribute `name` of `node` (a floats attribute is taken as is), or undefined when absent. */
export function intsAttr(node: Node, name: string): number[] | undefined {
  const a = node.attrs[name];
  return a && (a.type === 'ints' || a.type === 'floats') ? a.value : undefined;
}

/** The string attribute `name` of `node`, or `dflt` when absent. */
export function stringAttr(node: Node, name: string, dflt: string): string {
  const a = node.attrs[name];
  return a && a.type === 'string' ? a.value : dflt;
}
