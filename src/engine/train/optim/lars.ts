/**
 * LARS as solo-learn implements it (solo/utils/lars.py), wrapping SGD: for a parameter not excluded
 * (`excludeBiasAndNorm` skips 1-D tensors: biases and BatchNorm scale/shift), when ‖p‖ ≠ 0 and ‖∇‖ ≠ 0,
 * trust = η·‖p‖ / (‖∇‖ + wd·‖p‖ + ε) (with `clipLr`: min(trust / lr, 1)) and d ← (∇ + wd·p)·trust; excluded
 * parameters get neither adaptation nor weight decay. Then SGD momentum/Nesterov on d: buf ← μ·buf + (1−damp)·d,
 * p ← p − lr·(d + μ·buf | buf).
 */
import type { GraphBuilder } from '../../ir/builder.js';
import { zeros } from '../../ir/builder.js';
import type { Optimizer, OptParam, StateSpec } from './types.js';

export interface LarsOptions {
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  /** Trust coefficient η (solo-learn default 1e-3; its configs use 0.02). */
  eta?: number;
  eps?: number;
  clipLr?: boolean;
  /** Exclude 1-D parameters (bias, norm) from adaptation and weight decay (solo-learn `exclude_bias_n_norm`). */
  excludeBiasAndNorm?: boolean;
}

export class Lars implements Optimizer {
  readonly kind = 'lars';
  readonly o: Required<LarsOptions>;
  constructor(o: LarsOptions = {}) {
    this.o = {
      momentum: o.momentum ?? 0.9,
      dampening: o.dampening ?? 0,
      weightDecay: o.weightDecay ?? 0,
      nesterov: o.nesterov ?? false,
      eta: o.eta ?? 1e-3,
      eps: o.eps ?? 1e-8,
      clipLr: o.clipLr ?? false,
      excludeBiasAndNorm: o.excludeBiasAndNorm ?? true,
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
    return b.scope(`${p.name}::lars`, () => {
      let d = p.grad;
      const excluded = this.o.excludeBiasAndNorm && p.dims.length === 1;
      if (!excluded) {
        const wd = this.o.weightDecay;
        const pn = b.reduceL2(p.value, undefined, false);
        const gn = b.reduceL2(p.grad, undefined, false);
        const zero = b.scalar(0);
        const ok = b.op1('And', [b.op1('Greater', [pn, zero]), b.op1('Greater', [gn, zero])]);
        let denom = b.add(gn, b.scalar(this.o.eps));
        if (wd !== 0) denom = b.add(denom, b.mul(pn, b.scalar(wd)));
        let trust = b.mul(b.div(pn, denom), b.scalar(this.o.eta));
        if (this.o.clipLr) trust = b.op1('Min', [b.div(trust, lr), b.scalar(1)]);
        const withWd = wd !== 0 ? b.add(p.grad, b.mul(p.value, b.scalar(wd))) : p.grad;
        d = b.op1('Where', [ok, b.mul(withWd, trust), p.grad]);
      }
      const state: string[] = [];
      if (this.o.momentum !== 0) {
        const mu = b.scalar(this.o.momentum);
        const damp = 1 - this.o.dampening;
        const buf = b.add(b.mul(p.state[0], mu), damp === 1 ? d : b.mul(d, b.scalar(damp)));
        state.push(buf);
        d = this.o.nesterov ? b.add(d, b.mul(buf, mu)) : buf;
      }
      return { param: b.sub(p.value, b.mul(d, lr)), state };
    });
  }
  describe() {
    return { kind: this.kind, ...this.o };
  }
}
