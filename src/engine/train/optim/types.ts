import type { GraphBuilder } from '../../ir/builder.js';
import type { Tensor } from '../../ir/graph.js';

/** A trainable parameter as an optimizer sees it inside the step graph. */
export interface OptParam {
  /** Parameter (initializer) name in the model. */
  name: string;
  dims: number[];
  /** Value name of the current parameter in the step graph. */
  value: string;
  /** Value name of dL/dparam. */
  grad: string;
  /** Value names of this parameter's state tensors, in the order `state()` declared them. */
  state: string[];
}

/** One state tensor an optimizer keeps per parameter (momentum buffer, Adam moments). */
export interface StateSpec {
  /** Suffix appended to the parameter name: `<param>::<suffix>`. */
  suffix: string;
  /** Initial value (zeros of the parameter's shape for every optimizer here). */
  init(param: Tensor): Tensor;
}

/**
 * An optimizer as ONNX nodes: `update` emits the new parameter and new state values from the current ones, the
 * gradient and the scalar learning-rate input `lr` (float32, rank 0), plus optional global state (a step counter).
 */
export interface Optimizer {
  readonly kind: string;
  /** Per-parameter state tensors. */
  state(p: { name: string; dims: number[] }): StateSpec[];
  /** Global state scalars (e.g. AdamW's step count), `optim::<name>`, with initial values. */
  globalState(): { name: string; init: Tensor }[];
  /**
   * Emits the update. `global` maps global-state names to their current value names; the returned `global` maps
   * them to updated value names (emitted once per step, before the parameters).
   */
  prepare(
    b: GraphBuilder,
    lr: string,
    global: Record<string, string>,
  ): { global: Record<string, string>; ctx: Record<string, string> };
  update(b: GraphBuilder, p: OptParam, lr: string, ctx: Record<string, string>): { param: string; state: string[] };
  /** Hyper-parameters for logs and results. */
  describe(): Record<string, unknown>;
}
