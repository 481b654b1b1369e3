import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { command } from '../../src/cli/data-synth.js';
import { readAnnotations } from '../../src/data/annotations.js';
import { QcbError } from '../../src/errors.js';
import { Logger } from '../../src/util/log.js';

const ctx = { log: new Logger({ quiet: true }) };

test('qcbench data synth writes a screen and a domain-shift annotation file; a re-run is a no-op', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-cli-synth-'));
  try {
    const out = join(dir, 'mcf7');
    const ann = join(dir, 'ann.csv');
    const args = [
      '--domain',
      'mcf7',
      '--out',
      out,
      '--wells',
      '1',
      '--sites',
      '4',
      '--abnormal-fraction',
      '0.6',
      '--seed',
      '3',
    ];
    assert.equal(await command.run([...args, '--annotations', ann], ctx), 0);
    assert.ok(existsSync(join(out, 'BBBC021_v1_image.csv')));
    assert.ok(existsSync(join(out, 'synth.json')));
    const rows = readAnnotations(ann);
    assert.equal(rows.length, 200);
    assert.ok(rows.every((r) => r.split === 'test' && r.source === 'synthetic-ground-truth'));
    assert.equal(rows.filter((r) => r.label === 'abnormal').length, 100);
    assert.equal(await command.run(args, ctx), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad arguments are QCB_USAGE / QCB_UNKNOWN_NAME errors (exit code 2) naming the option', async () => {
  const cases: [string[], string, string][] = [
    [['--out', '/tmp/x'], 'QCB_USAGE', '--domain'],
    [['--domain', 'u2os'], 'QCB_USAGE', '--out'],
    [['--domain', 'mcf-7', '--out', '/tmp/x'], 'QCB_UNKNOWN_NAME', '--domain'],
    [['--domain', 'u2os', '--out', '/tmp/x', '--sites', 'two'], 'QCB_USAGE', '--sites'],
    [['--domain', 'u2os', '--out', '/tmp/x', '--bogus'], 'QCB_USAGE', ''],
  ];
  for (const [args, code, key] of cases) {
    await assert.rejects(
      () => command.run(args, ctx),
      (e: unknown) =>
        e instanceof QcbError && e.code === code && e.exitCode === 2 && (key === '' || e.context.key === key),
      args.join(' '),
    );
  }
});
