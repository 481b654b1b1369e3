/**
 * AdamW with `torch.optim.AdamW` semantics (decoupled weight decay, bias correction):
 * t ← t+1; p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − lr·(m / (1−β1^t)) / (√(v / (1−β2^t)) + ε).
 * The step count t is one global float32 scalar of the optimizer state.
 */
import type { GraphBuilder } from '../../ir/builder.js';
import { scalar, zeros } from '../../ir/builder.js';
import type { Optimizer, OptParam, StateSpec } from './types.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Parameters exempt from weight decay (default none, as PyTorch). */
  noDecay?: (name: string, dims: number[]) => boolean;
}

export class AdamW implements Optimizer {
  readonly kind = 'adamw';
  readonly o: Required<Omit<AdamWOptions, 'noDecay'>> & Pick<AdamWOptions, 'noDecay'>;
  constructor(o: AdamWOptions = {}) {
    this.o = {
      beta1: o.beta1 ?? 0.9,
      beta2: o.beta2 ?? 0.999,
      eps: o.eps ?? 1e-8,
      weightDecay: o.weightDecay ?? 1e-2,
      noDecay: o.noDecay,
    };
  }
  state(): StateSpec[] {
    return [
      { suffix: 'exp_avg', init: (p) => zeros(p.dims, p.dtype) },
      { suffix: 'exp_avg_sq', init: (p) => zeros(p.dims, p.dtype) },
    ];
  }
  globalState() {
    return [{ name: 'step', init: scalar(0) }];
  }
  prepare(b: GraphBuilder, _lr: string, global: Record<string, string>) {
    return b.scope('adamw', () => {
      const t = b.add(global.step, b.scalar(1));
      // bias corrections 1/(1−β^t), computed once per step
      const bc1 = b.sub(b.scalar(1), b.pow(b.scalar(this.o.beta1), t));
      const bc2 = b.sub(b.scalar(1), b.pow(b.scalar(this.o.beta2), t));
      return { global: { step: t }, ctx: { bc1, sqrtBc2: b.sqrt(bc2) } };
    });
  }
  update(b: GraphBuilder, p: OptParam, lr: string, ctx: Record<string, string>): { param: string; state: string[] } {
    return b.scope(`${p.name}::adamw`, () => {
      const { beta1, beta2, eps } = this.o;
      const wd = this.o.noDecay?.(p.name, p.dims) ? 0 : this.o.weightDecay;
      const decayed = wd !== 0 ? b.mul(p.value, b.sub(b.scalar(1), b.mul(lr, b.scalar(wd)))) : p.value;
      const m = b.add(b.mul(p.state[0], b.scalar(beta1)), b.mul(p.grad, b.scalar(1 - beta1)));
      const v = b.add(b.mul(p.state[1], b.scalar(beta2)), b.mul(b.mul(p.grad, p.grad), b.scalar(1 - beta2)));
      // p − (lr/bc1)·m / (√v/√bc2 + ε), as PyTorch's single-tensor path
      const stepSize = b.div(lr, ctx.bc1);
      const denom = b.add(b.div(b.sqrt(v), ctx.sqrtBc2), b.scalar(eps));
      return { param: b.sub(decayed, b.mul(b.div(m, denom), stepSize)), state: [m, v] };
    });
  }
  describe() {
    const { noDecay: _n, ...rest } = this.o;
    return { kind: this.kind, ...rest };
  }
}
