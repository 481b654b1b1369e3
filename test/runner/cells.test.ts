import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadProtocol } from '../../src/runner/catalog.js';
import { encoderId, expandCells } from '../../src/runner/cells.js';

const PROTOCOLS = new URL('../../protocols/', import.meta.url).pathname;

test('the full protocol expands to Tables 1-3 × 3 seeds', () => {
  const p = loadProtocol(join(PROTOCOLS, 'full.yaml'), { env: {} });
  const cells = expandCells(p);
  // 10 encoders × 3 seeds × (3 tasks at 350 + 4 budgets + 1 domain shift) = 240 (cp-quality's fine-tuning cells are
  // planned and reported as n/a)
  assert.equal(cells.length, 240);
  assert.equal(new Set(cells.map((c) => c.id)).size, cells.length, 'ids are unique');
  assert.deepEqual(
    cells.map((c) => c.index),
    cells.map((_, i) => i),
  );
  const shift = cells.filter((c) => c.key.test_set === 'bbbc021');
  assert.equal(shift.length, 30);
  // The domain-shift cell and the in-domain fine-tune at 350 evaluate one trained model.
  const a = cells.find(
    (c) =>
      c.key.encoder === 'simclr' &&
      c.key.task === 'finetune' &&
      c.key.budget === 350 &&
      c.key.seed === 0 &&
      c.key.test_set === 'bbbc022',
  );
  const b = shift.find((c) => c.key.encoder === 'simclr' && c.key.seed === 0);
  assert.ok(a && b);
  assert.equal(a.trainId, b.trainId);
  assert.notEqual(a.id, b.id);
});

test('ids are stable and follow settings; ablation cells equal the full run cells they share', () => {
  const full = expandCells(loadProtocol(join(PROTOCOLS, 'full.yaml'), { env: {} }));
  const again = expandCells(loadProtocol(join(PROTOCOLS, 'full.yaml'), { env: {}, cwd: tmpdir() }));
  assert.deepEqual(
    full.map((c) => c.id),
    again.map((c) => c.id),
  );
  const lb = expandCells(loadProtocol(join(PROTOCOLS, 'label-budget.yaml'), { env: {} }));
  const fullIds = new Set(full.map((c) => c.id));
  assert.ok(
    lb.every((c) => fullIds.has(c.id)),
    'label-budget reuses the full run cells',
  );
  const d = mkdtempSync(join(tmpdir(), 'qcb-cells-'));
  const f = join(d, 'p.yaml');
  writeFileSync(f, `version: 1\nextends: ${join(PROTOCOLS, 'full.yaml')}\nname: x\ntasks:\n  finetune: { lr: 0.01 }\n`);
  const changed = expandCells(loadProtocol(f, { env: {} }));
  const ft = (cs: typeof full) => cs.filter((c) => c.key.task === 'finetune').map((c) => c.id);
  const kn = (cs: typeof full) => cs.filter((c) => c.key.task === 'knn').map((c) => c.id);
  assert.ok(
    ft(changed).every((id) => !fullIds.has(id)),
    'fine-tune cells change with their lr',
  );
  assert.deepEqual(kn(changed), kn(full), 'kNN cells do not depend on fine-tune settings');
});

test('shards partition the cells', () => {
  const cells = expandCells(loadProtocol(join(PROTOCOLS, 'quick.yaml'), { env: {} }));
  const n = 3;
  const parts = Array.from({ length: n }, (_, i) => cells.filter((c) => c.index % n === i).map((c) => c.id));
  assert.equal(parts.flat().length, cells.length);
  assert.equal(new Set(parts.flat()).size, cells.length);
});

test('transfer-learning encoder ids follow the weights file content, not the folder it is in', () => {
  const p = loadProtocol(join(PROTOCOLS, 'full.yaml'), { env: {} });
  const saved = process.env.QCBENCH_WEIGHTS;
  const idIn = (dir: string) => {
    process.env.QCBENCH_WEIGHTS = dir;
    return encoderId(p, 'resnet18', 0);
  };
  try {
    const [a, b, c] = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'qcb-weights-')));
    const none = idIn(a);
    writeFileSync(join(a, 'resnet18.onnx'), 'the same bytes');
    writeFileSync(join(b, 'resnet18.onnx'), 'the same bytes');
    writeFileSync(join(c, 'resnet18.onnx'), 'other bytes');
    assert.equal(idIn(a), idIn(b), 'same file in two folders (two machines): one id');
    assert.notEqual(idIn(a), idIn(c), 'other weights: another id');
    assert.notEqual(idIn(a), none, 'weights appearing change the id');
  } finally {
    if (saved === undefined) delete process.env.QCBENCH_WEIGHTS;
    else process.env.QCBENCH_WEIGHTS = saved;
  }
});
