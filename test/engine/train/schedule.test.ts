/** Learning-rate schedules: the SSL warm-up cosine at known steps, and its shape. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { warmupCosineLr } from '../../../src/engine/train/schedule.js';

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

test('warm-up cosine: linear warm-up from the start lr, cosine to the minimum (values at known steps)', () => {
  const total = 100;
  const w = 10;
  const lr = (s: number) => warmupCosineLr(s, total, w, 0.001, 3e-5, 0);
  assert.equal(lr(0), 3e-5, 'step 0 is the warm-up start');
  close(lr(5), 3e-5 + ((0.001 - 3e-5) * 5) / 9, 'mid warm-up is linear');
  close(lr(9), 0.001, 'the last warm-up step reaches the base');
  close(lr(10), 0.001, 'the cosine starts at the base');
  close(lr(55), 0.0005, 'half-way through the cosine is half the base');
  close(lr(100), 0, 'the end of the cosine is the minimum');
  assert.ok(lr(99) < 1e-6);
  for (let s = 1; s < w; s++) assert.ok(lr(s) > lr(s - 1), `warm-up rises at ${s}`);
  for (let s = w + 1; s < total; s++) assert.ok(lr(s) < lr(s - 1), `cosine falls at ${s}`);
});

test('warm-up cosine: a non-zero minimum, and no warm-up', () => {
  close(warmupCosineLr(50, 100, 0, 0.1, 0, 0.01), 0.01 + 0.5 * 0.09, 'half-way with min 0.01');
  close(warmupCosineLr(100, 100, 0, 0.1, 0, 0.01), 0.01, 'ends at the minimum');
  assert.equal(warmupCosineLr(0, 100, 0, 0.1, 3e-5, 0), 0.1, 'no warm-up starts at the base');
  assert.equal(warmupCosineLr(0, 100, 1, 0.1, 3e-5, 0), 0.1, 'a one-step warm-up is the base');
});
