/** Learning-rate schedules of the training loops (downstream heads, fine-tuning, FractalDB, SSL pretraining). */

/** `MultiStepLR`: base·gamma^(number of milestones ≤ epoch), epochs counted from 0. */
export function multiStepLr(base: number, epoch: number, milestones: readonly number[], gamma: number): number {
  let lr = base;
  for (const m of milestones) if (epoch >= m) lr *= gamma;
  return lr;
}
