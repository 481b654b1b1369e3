import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { formatDuration, Logger, Progress } from '../../src/util/log.js';

function sink() {
  const chunks: string[] = [];
  const s = new Writable({
    write(c, _e, cb) {
      chunks.push(String(c));
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  return { s, text: () => chunks.join('') };
}

test('JSON-lines file gets every record; terminal gets readable lines at its level', () => {
  const d = mkdtempSync(join(tmpdir(), 'qcb-log-'));
  const out = sink();
  const log = new Logger({ file: join(d, 'log.jsonl'), level: 'info', quiet: false, stream: out.s });
  log.debug('hidden on terminal', { a: 1 });
  log.info('cell done', { cell: 'abc', f1: 97.5 });
  log.warn('slow');
  const recs = readFileSync(join(d, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    recs.map((r) => r.level),
    ['debug', 'info', 'warn'],
  );
  assert.equal(recs[1].cell, 'abc');
  assert.ok(!Number.isNaN(Date.parse(recs[0].time)));
  assert.equal(out.text(), 'cell done  cell=abc f1=97.5\nwarn: slow\n');
});

test('progress is quiet off a TTY and reports rate and ETA', () => {
  const out = sink();
  const log = new Logger({ quiet: false, stream: out.s });
  const p = new Progress(log, 'crops', 100, 'fields', out.s);
  for (let i = 0; i < 50; i++) p.tick();
  assert.equal(out.text(), '', 'no live redraws when the stream is not a TTY');
  assert.match(p.text(), /^crops: 50\/100 fields \(50%\)/);
  p.finish();
  assert.match(out.text(), /crops: done/);
  assert.equal(formatDuration(3725), '1h02m');
  assert.equal(formatDuration(65), '1m05s');
});
