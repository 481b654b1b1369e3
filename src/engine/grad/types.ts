import type { Attr, Node, Tensor, ValueInfo } from '../ir/graph.js';

/**
 * What a gradient rule may do: read the type/shape of forward values and emit nodes into the backward graph.
 * Forward values (inputs and outputs of the node) may be referenced by name in emitted nodes.
 */
export interface GradEmitter {
  /** Type and static shape of a forward value (inputs/outputs of any forward node). */
  info(name: string): ValueInfo;
  /** Emits one node into the backward graph and returns its output names (fresh, readable names). */
  op(opType: string, inputs: string[], attrs?: Record<string, Attr>, nOutputs?: number): string[];
  /** A constant tensor as a value name (deduplicated by content where cheap). */
  constant(t: Tensor, hint?: string): string;
  /** The value of a constant forward value (initializer or Constant node output), undefined if not constant. */
  constValue?(name: string): Tensor | undefined;
}

/**
 * A reverse-mode rule for one operator: given dL/d(outputs) (null where no gradient flows), returns dL/d(inputs)
 * (null for inputs that take no gradient: shapes, indices, integer tensors, omitted optional inputs).
 */
export type GradRule = (node: Node, dOutputs: (string | null)[], g: GradEmitter) => (string | null)[];
