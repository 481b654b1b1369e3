/**
 * Divergence checks shared by the training loops (SSL pretraining, the linear head, fine-tuning): a run that diverged
 * is a failure, not a result. Each step's loss is watched for a non-finite value or an explosion, and the parameters
 * are checked cheaply (one sum per tensor) at the points where a loop would keep them (a checkpoint, the end).
 */
import type { Tensor } from '../ir/graph.js';

/**
 * The explosion rule: a loss whose magnitude exceeds `factor` × the larger of 1 and the magnitude of the median of the
 * first `baselineSteps` losses (fewer while there are fewer, from the second step on: the first step's loss is that
 * of the initial parameters, so a learning rate that blows up the first update is caught at once) has exploded. The
 * floor of 1 keeps a small converged loss (a cross-entropy of 0.01) from turning ordinary noise into an explosion; the
 * SSL losses and the cross-entropy fall from their first steps when training works, so 100× their start is
 * divergence (a cross-entropy of 100 means logits two orders of magnitude off).
 */
export const LOSS_EXPLOSION = { baselineSteps: 5, factor: 100 } as const;

/** Watches a training's step losses (see {@link LOSS_EXPLOSION}). */
export class LossWatch {
  private readonly first: number[] = [];

  /** @param baseline losses of steps already taken (a resumed training), the first of which set the baseline */
  constructor(baseline: readonly number[] = []) {
    for (const l of baseline) if (this.first.length < LOSS_EXPLOSION.baselineSteps) this.first.push(l);
  }

  /** @returns why `loss` shows divergence (non-finite or exploded), or undefined when it does not */
  check(loss: number): string | undefined {
    if (!Number.isFinite(loss)) return `the loss became ${loss}`;
    if (this.first.length > 0) {
      const m = median(this.first);
      const limit = LOSS_EXPLOSION.factor * Math.max(1, Math.abs(m));
      if (Math.abs(loss) > limit)
        return `the loss exploded to ${loss} (more than ${LOSS_EXPLOSION.factor}× the first ${this.first.length} steps' median ${m})`;
    }
    if (this.first.length < LOSS_EXPLOSION.baselineSteps) this.first.push(loss);
    return undefined;
  }
}

/**
 * The first tensor of `params` holding a non-finite value, found by one float64 sum per tensor (a NaN or ±Inf anywhere
 * makes the sum non-finite; finite float32 values cannot overflow a float64 sum).
 * @returns its name and sum, or undefined when every tensor is finite
 */
export function nonFiniteTensor(params: ReadonlyMap<string, Tensor>): { name: string; sum: number } | undefined {
  for (const [name, t] of params) {
    if (t.dtype !== 'float32' && t.dtype !== 'float64') continue;
    const d = t.data as Float32Array | Float64Array;
    let sum = 0;
    for (let i = 0; i < d.length; i++) sum += d[i];
    if (!Number.isFinite(sum)) return { name, sum };
  }
  return undefined;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
