/** Learning-rate schedules of the training loops (downstream heads, fine-tuning, FractalDB, SSL pretraining). */

/** `MultiStepLR`: base·gamma^(number of milestones ≤ epoch), epochs counted from 0. */
export function multiStepLr(base: number, epoch: number, milestones: readonly number[], gamma: number): number {
  let lr = base;
  for (const m of milestones) if (epoch >= m) lr *= gamma;
  return lr;
}

/**
 * Warm-up cosine learning rate at one optimizer step: SSL pretraining's schedule (Masud et al. 2022 §3.2, "a
 * warm-up cosine schedule"; solo-learn's `LinearWarmupCosineAnnealingLR` with `scheduler.interval: step`, i.e.
 * stepped every batch, not every epoch). Linear from `start` at step 0 to `base` at step `warmup − 1`, then a half
 * cosine from `base` at step `warmup` down towards `min` at step `total`. solo-learn's defaults are `start` 3e-5
 * (`warmup_start_lr`) and `min` 0 (`min_lr`).
 * @param step optimizer step counted from 0 over the whole run (epoch · steps per epoch + step in epoch)
 * @param total steps of the whole run
 * @param warmup warm-up steps (warm-up epochs · steps per epoch); 0 or 1 starts at `base`
 */
export function warmupCosineLr(
  step: number,
  total: number,
  warmup: number,
  base: number,
  start: number,
  min: number,
): number {
  if (step < warmup) return warmup <= 1 ? base : start + ((base - start) * step) / (warmup - 1);
  const span = Math.max(1, total - warmup);
  return min + 0.5 * (base - min) * (1 + Math.cos((Math.PI * (step - warmup)) / span));
}
