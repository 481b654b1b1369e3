import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { benchReport, FULL_PROTOCOL, HTML_TARGET_MB, REPORT_TARGET_SECONDS } from '../../src/bench/report.js';
import { loadProtocol } from '../../src/runner/catalog.js';
import { expandCells } from '../../src/runner/cells.js';

// structure only: timings depend on the machine's load and are never asserted
test("bench report: synthetic results with the full protocol's cells, timed through a qcbench report process", async () => {
  const root = mkdtempSync(join(tmpdir(), 'qcb-bench-report-test-'));
  try {
    const keep = join(root, 'kept');
    const r = await benchReport({ seeds: 1, png: false, keep });
    const full = expandCells(loadProtocol(FULL_PROTOCOL));
    assert.equal(r.protocol, 'protocols/full.yaml');
    assert.deepEqual(r.seeds, [0]);
    assert.equal(r.cells, full.filter((c) => c.key.seed === 0).length);
    assert.equal(full.length, 3 * r.cells, 'the default (all seeds) times the whole protocol');
    assert.equal(r.montages, r.cells);
    assert.equal(r.pretrain_records, 5);
    assert.equal(r.png, false);
    assert.equal(r.target_seconds, REPORT_TARGET_SECONDS);
    for (const k of ['generate_seconds', 'report_seconds', 'build_seconds', 'html_mb', 'report_mb'] as const)
      assert.ok(Number.isFinite(r[k]) && r[k] >= 0, k);
    assert.equal(r.meets_target, r.report_seconds < REPORT_TARGET_SECONDS);
    // the HTML size and its target (structure only: the size itself depends on the synthetic montages)
    assert.equal(r.html_target_mb, HTML_TARGET_MB);
    assert.equal(r.meets_html_target, r.html_mb <= HTML_TARGET_MB);
    assert.ok(r.html_mb > 0 && r.html_mb <= r.report_mb);
    assert.ok(r.charts >= 10 && r.files > r.charts);
    // --keep leaves the results and the report behind
    assert.equal(r.dir, keep);
    assert.equal(readdirSync(join(keep, 'results', 'cells')).length, r.cells);
    assert.ok(existsSync(join(keep, 'report', 'index.html')));
    assert.ok(existsSync(join(keep, 'report', 'charts', 'misclassified-crops.vl.json')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
