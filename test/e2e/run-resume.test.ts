/**
 * End to end through the real CLI and every real stage (synthetic screen → crops → encoder → kNN / linear probe →
 * metrics → report): a run killed with SIGKILL midway resumes to the same results as an uninterrupted run with no cell
 * computed twice and no downstream model trained twice (a second test set of the same screen evaluates the models
 * the first trained, as the domain shift does); two shards into one directory equal the unsharded run; `qcbench
 * report` is byte-identical; two shards started at the same time on a screen that does not exist yet generate it
 * once and the last to finish builds the one report.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { makeTinyScreen, tinyDataYaml } from './_tiny-screen.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin', 'qcbench.js');
const base = mkdtempSync(join(tmpdir(), 'qcb-e2e-'));
const protocol = join(base, 'tiny.yaml');

before(async () => {
  await makeTinyScreen(base);
  writeFileSync(
    protocol,
    `version: 1
name: tiny
seeds: [0, 1]
encoders: [random-resnet18]
${tinyDataYaml(['s', 't'])}tasks:
  linear: { epochs: 6, milestones: [4] }
metrics: { bootstrap: 50 }
evaluations:
  - tasks: [knn, linear]
    budgets: [8, 20]
  - tasks: [knn, linear]
    budgets: [8]
    test_set: t
`,
  );
});

function qcbench(args: string[], workdir: string) {
  const extra = args[0] === 'run' ? ['--workdir', workdir, '--threads', '1'] : [];
  const r = spawnSync(process.execPath, [BIN, ...args, ...extra], {
    cwd: base,
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function cellRecords(workdir: string): Map<string, { status: string; metrics: unknown; predictions: unknown }> {
  const dir = join(workdir, 'results', 'tiny', 'cells');
  return new Map(
    readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => {
        const r = JSON.parse(readFileSync(join(dir, f), 'utf8'));
        return [r.id, { status: r.status, metrics: r.metrics, predictions: r.predictions }];
      }),
  );
}

function logRecords(workdir: string): Record<string, unknown>[] {
  const log = join(workdir, 'results', 'tiny', 'log.jsonl');
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

function doneLines(workdir: string): string[] {
  return logRecords(workdir)
    .filter((r) => typeof r.msg === 'string' && r.msg.startsWith('done '))
    .map((r) => r.cell as string);
}

/** Train ids of the downstream models trained (logged once each model is in place). */
function trainedModels(workdir: string): string[] {
  return logRecords(workdir)
    .filter((r) => r.stage === 'train' && typeof r.msg === 'string' && r.msg.startsWith('trained '))
    .map((r) => r.train as string);
}

test('a run killed with SIGKILL resumes to the same results, computing no cell twice', {
  timeout: 600_000,
}, async () => {
  const full = join(base, 'w-full');
  const r = qcbench(['run', protocol, '--no-report'], full);
  assert.equal(r.code, 0, r.err);
  const reference = cellRecords(full);
  assert.equal(reference.size, 12, '1 encoder × 2 tasks × (2 budgets + 1 on the second test set) × 2 seeds');
  assert.equal(trainedModels(full).length, 8, 'the second test set reuses the 8 models of budget 8 and 20');
  for (const v of reference.values()) assert.equal(v.status, 'done');

  const killed = join(base, 'w-killed');
  const child: ChildProcess = spawn(
    process.execPath,
    [BIN, 'run', protocol, '--no-report', '--workdir', killed, '--threads', '1'],
    {
      cwd: base,
      stdio: 'ignore',
      env: { ...process.env, CI: '1' },
    },
  );
  const cells = join(killed, 'results', 'tiny', 'cells');
  const exited = new Promise((res) => child.on('exit', res));
  for (let i = 0; i < 1200; i++) {
    if (existsSync(cells) && readdirSync(cells).filter((f) => f.endsWith('.json')).length >= 4) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  child.kill('SIGKILL');
  await exited;
  const before = readdirSync(cells).filter((f) => f.endsWith('.json')).length;
  assert.ok(before >= 4 && before < 12, `killed midway (${before} of 12 cells finished)`);

  const resumed = qcbench(['run', protocol, '--no-report'], killed);
  assert.equal(resumed.code, 0, resumed.err);
  const after = cellRecords(killed);
  assert.deepEqual([...after.keys()].sort(), [...reference.keys()].sort());
  for (const [id, rec] of reference) assert.deepEqual(after.get(id), rec, `cell ${id} equals the uninterrupted run`);
  const done = doneLines(killed);
  assert.equal(done.length, 12);
  assert.equal(new Set(done).size, 12, 'no cell computed twice');
  const trained = trainedModels(killed);
  assert.equal(new Set(trained).size, trained.length, 'no model trained twice');
  assert.ok(trained.length <= 8);

  const again = qcbench(['run', protocol, '--no-report'], killed);
  assert.equal(again.code, 0);
  assert.equal(doneLines(killed).length, 12, 'a finished run computes nothing');
});

test('two shards into one directory equal the unsharded run; report is byte-identical', {
  timeout: 600_000,
}, async () => {
  const sharded = join(base, 'w-sharded');
  for (const s of ['0/2', '1/2']) {
    const r = qcbench(['run', protocol, '--shard', s, '--no-report'], sharded);
    assert.equal(r.code, 0, r.err);
  }
  const full = join(base, 'w-full');
  assert.deepEqual(cellRecords(sharded), cellRecords(full));
  const status = qcbench(['status', '--results', join(sharded, 'results', 'tiny'), '--json'], sharded);
  const st = JSON.parse(status.out);
  assert.equal(st.done, 12);
  assert.equal(st.pending, 0);
  // shards run with --no-report: status says it is time to build the report
  assert.match(st.next, /^qcbench report --results .*w-sharded\/results\/tiny --out .*\/report$/);
  const text = qcbench(['status', '--results', join(sharded, 'results', 'tiny')], sharded);
  assert.match(text.out, /every cell has finished and the report is missing .*: qcbench report --results/);

  const outs = ['a', 'b', 'c'].map((x) => join(base, `report-${x}`));
  const rep = (results: string, out: string) => {
    mkdirSync(out, { recursive: true });
    const r = qcbench(['report', '--results', results, '--out', out], sharded);
    assert.equal(r.code, 0, r.err);
  };
  rep(join(sharded, 'results', 'tiny'), outs[0]);
  rep(join(sharded, 'results', 'tiny'), outs[1]);
  rep(join(full, 'results', 'tiny'), outs[2]);
  const tables = readdirSync(join(outs[0], 'tables')).sort();
  assert.ok(tables.some((f) => f.endsWith('.md')) && tables.some((f) => f.endsWith('.csv')));
  for (const f of tables) {
    const a = readFileSync(join(outs[0], 'tables', f));
    assert.ok(a.equals(readFileSync(join(outs[1], 'tables', f))), `${f}: report regenerates byte-identical`);
    assert.ok(a.equals(readFileSync(join(outs[2], 'tables', f))), `${f}: sharded equals unsharded`);
  }
});

test('two shards started together generate the screen once, both succeed and the last builds the one report', {
  timeout: 600_000,
}, async () => {
  // The tiny protocol with its screen in a folder that does not exist yet: both shards need it at once. Same
  // generator settings, so the same crops (and cell ids) as the tiny run.
  const raceProtocol = join(base, 'race.yaml');
  writeFileSync(raceProtocol, readFileSync(protocol, 'utf8').replaceAll('root: screen', 'root: screen-race'));
  const race = join(base, 'w-race');
  const shard = (s: string) =>
    new Promise<{ code: number | null; err: string }>((res) => {
      const child = spawn(
        process.execPath,
        [BIN, 'run', raceProtocol, '--shard', s, '--workdir', race, '--threads', '1'],
        {
          cwd: base,
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { ...process.env, CI: '1' },
        },
      );
      let err = '';
      child.stderr.on('data', (d) => {
        err += d;
      });
      child.on('exit', (code) => res({ code, err }));
    });
  const [a, b] = await Promise.all([shard('0/2'), shard('1/2')]);
  assert.equal(a.code, 0, a.err);
  assert.equal(b.code, 0, b.err);

  const log = logRecords(race);
  const msgs = log.filter((r) => r.level !== 'debug').map((r) => String(r.msg));
  assert.equal(msgs.filter((m) => /^synth u2os: \d+ fields,/.test(m)).length, 1, 'the screen is generated once');
  assert.equal(msgs.filter((m) => m.startsWith('crop store of')).length, 1, 'the crop store is cut once');
  const waits = msgs.filter((m) => m.startsWith('waiting for another'));
  assert.equal(new Set(waits).size, waits.length, 'a wait is logged once, not in a loop');
  assert.equal(msgs.filter((m) => m === 'report written').length, 1, 'the report is built once');
  const report = join(race, 'results', 'tiny', 'report');
  assert.ok(existsSync(join(report, 'index.html')));

  // equal to an unsharded run's cells and report tables
  const full = join(base, 'w-full');
  if (!existsSync(join(full, 'results', 'tiny', 'cells')))
    assert.equal(qcbench(['run', protocol, '--no-report'], full).code, 0);
  assert.deepEqual(cellRecords(race), cellRecords(full));
  const ref = join(base, 'report-race-ref');
  mkdirSync(ref, { recursive: true });
  const r = qcbench(['report', '--results', join(full, 'results', 'tiny'), '--out', ref], full);
  assert.equal(r.code, 0, r.err);
  const tables = readdirSync(join(ref, 'tables')).sort();
  assert.deepEqual(readdirSync(join(report, 'tables')).sort(), tables);
  for (const f of tables)
    assert.ok(
      readFileSync(join(report, 'tables', f)).equals(readFileSync(join(ref, 'tables', f))),
      `${f} equals the unsharded run's`,
    );

  const st = JSON.parse(qcbench(['status', '--results', join(race, 'results', 'tiny'), '--json'], race).out);
  assert.equal(st.pending, 0);
  assert.equal(st.next, undefined, 'the report is up to date: nothing left to do');
});
