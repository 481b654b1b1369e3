import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { intensityFeatures } from '../../src/annotate/intensity.js';
import { Proposer } from '../../src/annotate/propose.js';
import { type AnnotateServer, startAnnotateServer } from '../../src/annotate/server.js';
import { AnnotationSession } from '../../src/annotate/session.js';
import { readAnnotations } from '../../src/data/annotations.js';
import { type CropStore, openCropStore } from '../../src/data/store/crop-store.js';
import { QcbError } from '../../src/errors.js';
import { qcbench } from '../cli/_cli.js';
import { makeTestStore, type TestStore } from './_store.js';

const dir = mkdtempSync(join(tmpdir(), 'qcb-annotate-'));
let ts: TestStore;
let store: CropStore;
let other: TestStore;

before(async () => {
  ts = await makeTestStore(join(dir, 'store'), 40);
  other = await makeTestStore(join(dir, 'other'), 10, 32, 5, 'P9');
  store = await openCropStore(ts.path);
});
after(() => {
  if (process.env.QCBENCH_KEEP_TMP !== '1') rmSync(dir, { recursive: true, force: true });
});

/** A raw HTTP request (the path is sent exactly as given: fetch would normalise `../`). */
function raw(
  srv: AnnotateServer,
  method: string,
  path: string,
  body?: string,
  type = 'application/json',
  hostHeader?: string,
): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> {
  const u = new URL(srv.url);
  return new Promise((ok, fail) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: {
          ...(body === undefined ? {} : { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) }),
          ...(hostHeader ? { Host: hostHeader } : {}),
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('end', () => ok({ status: res.statusCode ?? 0, body: Buffer.concat(parts), headers: res.headers }));
      },
    );
    req.on('error', fail);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function serve(file: string, proposer?: Proposer): Promise<AnnotateServer> {
  const session = AnnotationSession.open(store, file, 'manual:test');
  return startAnnotateServer({ session, proposer, suggest: proposer ? 'intensity' : 'none', port: 0 });
}

test('each label is in FILE, complete and readable, when its POST answers; undo rewrites it; restart continues', async () => {
  const file = join(dir, 'labels', 'a.csv');
  const srv = await serve(file);
  try {
    assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/$/, 'bound to 127.0.0.1 by default');
    const state = JSON.parse((await raw(srv, 'GET', '/api/state')).body.toString());
    assert.equal(state.count, 40);
    assert.deepEqual(state.counts.targets, { abnormal: 240, normal: 240 });
    assert.equal(existsSync(file), false, 'nothing written before the first label');
    const plan: [number, string, string | undefined][] = [
      [0, 'normal', undefined],
      [1, 'abnormal', 'blur'],
      [2, 'abnormal', 'debris'],
      [1, 'abnormal', 'saturation'],
    ];
    for (const [k, [index, label, artefact_type]] of plan.entries()) {
      const r = await raw(srv, 'POST', '/api/label', JSON.stringify({ index, label, artefact_type }));
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(JSON.parse(r.body.toString()).saved, true);
      // the POST has answered: the file is already the whole new file
      const rows = readAnnotations(file);
      assert.equal(rows.length, Math.min(k + 1, 3));
      const row = rows.find((x) => x.crop_id === ts.crop_ids[index]);
      assert.equal(row?.label, label);
      assert.equal(row?.artefact_type, artefact_type ?? 'none');
      assert.equal(row?.source, 'manual:test');
    }
    assert.deepEqual(
      readdirSync(join(dir, 'labels')).filter((f) => f.endsWith('.tmp')),
      [],
      'no temp file is left behind',
    );
    const bad = await raw(
      srv,
      'POST',
      '/api/label',
      JSON.stringify({ index: 5, label: 'abnormal', artefact_type: 'x' }),
    );
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(bad.body.toString()).code, 'QCB_USAGE');
    const undo = JSON.parse((await raw(srv, 'POST', '/api/undo', '{}')).body.toString());
    assert.equal(undo.undone.index, 1);
    assert.equal(readAnnotations(file).find((x) => x.crop_id === ts.crop_ids[1])?.artefact_type, 'blur');
    assert.equal(undo.counts.byType.blur, 1);
    await raw(srv, 'POST', '/api/skip', JSON.stringify({ index: 7 }));
    const next = JSON.parse((await raw(srv, 'GET', '/api/next?n=5&exclude=4')).body.toString());
    assert.deepEqual(
      next.crops.map((c: { index: number }) => c.index),
      [3, 5, 6, 8, 9],
      'store order without proposals, minus labelled, skipped and excluded crops',
    );
  } finally {
    await srv.close();
  }
  const again = AnnotationSession.open(store, file, 'manual:test');
  assert.equal(again.rows.size, 3, 'a new session continues FILE');
  assert.equal(again.rows.get(0)?.label, 'normal');
});

test('requests reach only the page, the crops and the API: traversal, plain or encoded, gets 404', async () => {
  const srv = await serve(join(dir, 'b.csv'));
  try {
    for (const p of ['/', '/app.js', '/app.css']) assert.equal((await raw(srv, 'GET', p)).status, 200, p);
    const png = await raw(srv, 'GET', '/api/crop/3.png');
    assert.equal(png.status, 200);
    assert.equal(png.headers['content-type'], 'image/png');
    const field = await raw(srv, 'GET', '/api/field/3.png');
    assert.equal(field.status, 200);
    assert.equal(field.headers['x-field-source'], 'crops', 'no field image in this store: the crops of the field');
    const secret = readFileSync(join(ts.path, 'qcbench.json'), 'utf8').slice(0, 40);
    for (const p of [
      '/../../etc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/..%2f..%2fetc%2fpasswd',
      '/static/app.js',
      '/index.html/../../qcbench.json',
      '/api/crop/..%2fqcbench.json.png',
      '/api/crop/../../qcbench.json',
      '/api/crop/%2e%2e%2f%2e%2e%2fqcbench.json.png',
      '/api/crop/40.png',
      '/api/crop/-1.png',
      '/api/crop/1e1.png',
      '/api/field/..%2f..%2fcrops.csv.png',
      '/crops.csv',
      '/qcbench.json',
      '//etc/passwd',
    ]) {
      const r = await raw(srv, 'GET', p);
      assert.equal(r.status, 404, `${p} → ${r.status}`);
      assert.ok(!r.body.toString().includes(secret), p);
      assert.ok(!r.body.toString().includes('root:'), p);
    }
    // a form post (what a foreign page can send without a preflight) is refused and writes nothing
    const form = await raw(srv, 'POST', '/api/label', 'index=1&label=normal', 'application/x-www-form-urlencoded');
    assert.equal(form.status, 415);
    assert.equal(existsSync(join(dir, 'b.csv')), false);
    assert.equal((await raw(srv, 'DELETE', '/api/label')).status, 405);
    // DNS rebinding: a request naming another host is refused, a GET as well as a label
    assert.equal((await raw(srv, 'GET', '/api/crop/3.png', undefined, undefined, 'evil.example:80')).status, 403);
    const rebound = await raw(srv, 'POST', '/api/label', '{"index":1,"label":"normal"}', undefined, 'evil.example');
    assert.equal(rebound.status, 403);
    assert.equal(existsSync(join(dir, 'b.csv')), false);
    assert.equal((await raw(srv, 'GET', '/', undefined, undefined, `localhost:${new URL(srv.url).port}`)).status, 200);
  } finally {
    await srv.close();
  }
});

test('proposals come from the proposer and skip what is labelled', async () => {
  const f = intensityFeatures({ data: await store.read(0, store.count), n: store.count, channels: 3, size: 32 });
  const p = new Proposer(f, { clusters: 6, seed: 1 });
  const srv = await serve(join(dir, 'c.csv'), p);
  try {
    const first = JSON.parse((await raw(srv, 'GET', '/api/next?n=6')).body.toString()).crops.map(
      (c: { index: number }) => c.index,
    );
    assert.deepEqual(first, p.diverse.slice(0, 6));
    await raw(srv, 'POST', '/api/label', JSON.stringify({ index: first[0], label: 'normal' }));
    const second = JSON.parse((await raw(srv, 'GET', '/api/next?n=6')).body.toString()).crops.map(
      (c: { index: number }) => c.index,
    );
    assert.ok(!second.includes(first[0]));
    assert.equal(second.length, 6);
  } finally {
    await srv.close();
  }
});

test('a FILE of another store is refused naming the file; a malformed FILE too; nothing is written', () => {
  const file = join(dir, 'foreign.csv');
  const text = `crop_id,label,artefact_type,split,source\n${other.crop_ids[0]},normal,none,train,manual:x\n${ts.crop_ids[0]},normal,none,train,manual:x\n`;
  writeFileSync(file, text);
  assert.throws(
    () => AnnotationSession.open(store, file, 'manual:test'),
    (e: unknown) =>
      e instanceof QcbError &&
      e.code === 'QCB_ANNOTATIONS' &&
      e.context.file === file &&
      /another store/.test(e.context.fix ?? '') &&
      JSON.stringify(e.context.value).includes(other.crop_ids[0]),
  );
  assert.equal(readFileSync(file, 'utf8'), text);
  const broken = join(dir, 'broken.csv');
  writeFileSync(broken, 'crop_id,label\nx,y\n');
  assert.throws(
    () => AnnotationSession.open(store, broken, 'manual:test'),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_ANNOTATIONS' && e.context.file === broken,
  );
});

test('CLI bad input: not a crop store, FILE of another store, port in use — coded errors, exit 2, no file', async () => {
  const notStore = qcbench('annotate', dir, '--out', join(dir, 'x.csv'), '--suggest', 'none', '--port', '0');
  assert.equal(notStore.code, 2, notStore.err);
  assert.match(notStore.err, /QCB_STORE/);
  assert.equal(existsSync(join(dir, 'x.csv')), false);

  const file = join(dir, 'foreign2.csv');
  const text = `crop_id,label,artefact_type,split,source\n${other.crop_ids[1]},abnormal,blur,train,manual:x\n`;
  writeFileSync(file, text);
  const foreign = qcbench('annotate', ts.path, '--out', file, '--suggest', 'none', '--port', '0');
  assert.equal(foreign.code, 2, foreign.err);
  assert.match(foreign.err, /QCB_ANNOTATIONS/);
  assert.ok(foreign.err.includes(file), 'names the file');
  assert.equal(readFileSync(file, 'utf8'), text, 'the file is untouched');

  const blocker = createServer();
  await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok));
  const port = (blocker.address() as { port: number }).port;
  try {
    const inUse = qcbench('annotate', ts.path, '--out', join(dir, 'y.csv'), '--suggest', 'none', '--port', `${port}`);
    assert.equal(inUse.code, 2, inUse.err);
    assert.match(inUse.err, /QCB_USAGE/);
    assert.match(inUse.err, /--port/);
    assert.equal(existsSync(join(dir, 'y.csv')), false);
  } finally {
    blocker.close();
  }
});
