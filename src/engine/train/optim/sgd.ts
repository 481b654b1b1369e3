/**
 * SGD with momentum, dampening, weight decay and Nesterov, with PyTorch's `torch.optim.SGD` semantics:
 * g ← ∇ + wd·p; buf ← μ·buf + (1−dampening)·g; g ← g + μ·buf (Nesterov) or buf; p ← p − lr·g.
 * The buffer starts at zero, which equals PyTorch's first-step `buf = g` when dampening is 0.
 */
import type { GraphBuilder } from '../../ir/builder.js';
import { zeros } from '../../ir/builder.js';
import type { Optimizer, OptParam, StateSpec } from './types.js';

export interface SgdOptions {
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  /** Parameters exempt from weight decay (default none, as PyTorch). */
  noDecay?: (name: string, dims: number[]) => boolean;
}

export class Sgd implements Optimizer {
  readonly kind = 'sgd';
  readonly o: Required<Omit<SgdOptions, 'noDecay'>> & Pick<SgdOptions, 'noDecay'>;
  constructor(o: SgdOptions = {}) {
    this.o = {
      momentum: o.momentum ?? 0,
      dampening: o.dampening ?? 0,
      weightDecay: o.weightDecay ?? 0,
      nesterov: o.nesterov ?? false,
      noDecay: o.noDecay,
    };
  }
  state(): StateSpec[] {
    return this.o.momentum !== 0 ? [{ suffix: 'momentum', init: (p) => zeros(p.dims, p.dtype) }] : [];
  }
  globalState() {
    return [];
  }
  prepare() {
    return { global: {}, ctx: {} };
  }
  update(b: GraphBuilder, p: OptParam, lr: string): { param: string; state: string[] } {
    return b.scope(`${p.name}::sgd`, () => {
      let g = p.grad;
      const wd = this.o.noDecay?.(p.name, p.dims) ? 0 : this.o.weightDecay;
      if (wd !== 0) g = b.add(g, b.mul(p.value, b.scalar(wd)));
      const state: string[] = [];
      if (this.o.momentum !== 0) {
        const mu = b.scalar(this.o.momentum);
        const damp = 1 - this.o.dampening;
        const buf = b.add(b.mul(p.state[0], mu), damp === 1 ? g : b.mul(g, b.scalar(damp)));
        state.push(buf);
        g = this.o.nesterov ? b.add(g, b.mul(buf, mu)) : buf;
      }
      return { param: b.sub(p.value, b.mul(g, lr)), state };
    });
  }
  describe() {
    const { noDecay: _n, ...rest } = this.o;
    return { kind: this.kind, ...rest };
  }
}
