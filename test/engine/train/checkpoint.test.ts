/** Training checkpoints: the on-disk format, the round trip, and refusal of damaged files. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { randu } from '../../../src/engine/ir/builder.js';
import { readCheckpoint, writeCheckpoint } from '../../../src/engine/train/checkpoint.js';

function inTemp(f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-ckpt-'));
  try {
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('save → load gives identical tensors (dtype, dims, bytes), metadata and step', () => {
  inTemp((dir) => {
    const p = join(dir, 'c.qcbckpt');
    const w = randu([3, 5], -1, 1, 2);
    const momentum = randu([5], -1, 1, 3);
    const flags = { dtype: 'uint8' as const, dims: [4], data: Uint8Array.of(1, 0, 1, 1) };
    const meta = { step: 42, epoch: 3, settings_hash: 'abc', loss: [{ step: 0, loss: 1.5 }] };
    const tensors = new Map([
      ['w', w],
      ['w.momentum', momentum],
      ['machinery::filled', flags],
    ]);
    writeCheckpoint(p, meta, tensors);
    const r = readCheckpoint(p);
    assert.deepEqual(r.meta, meta);
    assert.equal(r.meta.step, 42);
    assert.deepEqual([...r.tensors.keys()], [...tensors.keys()], 'names in order');
    for (const [k, t] of tensors) {
      const u = r.tensors.get(k)!;
      assert.equal(u.dtype, t.dtype, k);
      assert.deepEqual(u.dims, t.dims, k);
      assert.equal(u.data.constructor, t.data.constructor, k);
      assert.deepEqual(Array.from(u.data as ArrayLike<number>), Array.from(t.data as ArrayLike<number>), k);
    }
    // writing what was read gives the same file
    const q = join(dir, 'd.qcbckpt');
    writeCheckpoint(q, r.meta, r.tensors);
    assert.deepEqual(readFileSync(q), readFileSync(p));
  });
});

test('the on-disk format: magic, u64 LE header length, JSON header, raw tensors', () => {
  inTemp((dir) => {
    const p = join(dir, 'c.qcbckpt');
    writeCheckpoint(p, { step: 7 }, new Map([['w', { dtype: 'float32', dims: [2], data: Float32Array.of(1, -2) }]]));
    const header = '{"meta":{"step":7},"tensors":{"w":{"dtype":"float32","dims":[2],"offset":0,"bytes":8}}}';
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    const data = Buffer.from(Float32Array.of(1, -2).buffer);
    assert.deepEqual(readFileSync(p), Buffer.concat([Buffer.from('QCBCKPT1'), len, Buffer.from(header), data]));
  });
});

test('a damaged checkpoint is refused with QCB_FILE_TRUNCATED', () => {
  inTemp((dir) => {
    const p = join(dir, 'c.qcbckpt');
    writeCheckpoint(p, { epoch: 0 }, new Map([['w', randu([3, 5], -1, 1, 2)]]));
    const bytes = readFileSync(p);
    const truncated = (e: Error & { code?: string }) => e.code === 'QCB_FILE_TRUNCATED';
    writeFileSync(p, bytes.subarray(0, bytes.length - 8));
    assert.throws(() => readCheckpoint(p), truncated, 'tensor beyond the end');
    writeFileSync(p, Buffer.concat([Buffer.from('NOTACKPT'), bytes.subarray(8)]));
    assert.throws(() => readCheckpoint(p), truncated, 'bad magic');
  });
});
