import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readAnnotations } from '../../src/data/annotations.js';
import { BIN, ROOT } from '../cli/_cli.js';
import { makeTestStore } from './_store.js';

const CHROMIUM = '/usr/bin/chromium';

/** Starts `qcbench annotate` as a child process; resolves with it and the URL it prints. */
function startCli(store: string, file: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [BIN, 'annotate', store, '--out', file, '--port', '0', '--annotator', 'kb', '--clusters', '8'],
    { cwd: ROOT, env: { ...process.env, CI: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`annotate did not start in 120 s: ${err}`)), 120_000);
    child.stderr?.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /open (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok({ child, url: m[1] });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`annotate exited with ${code}: ${err}`));
    });
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) return ok();
    child.once('exit', () => ok());
    child.kill('SIGKILL');
  });
}

test('labels made with the keyboard survive SIGKILL of the server; the restarted page shows them', {
  skip: existsSync(CHROMIUM)
    ? false
    : `${CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium) to run this test`,
  timeout: 600_000,
}, async () => {
  const { chromium } = await import('playwright-core');
  const root = mkdtempSync(join(tmpdir(), 'qcb-annotate-browser-'));
  const keep = process.env.QCBENCH_KEEP_TMP === '1';
  const ts = await makeTestStore(join(root, 'store'), 30);
  const file = join(root, 'labels.csv');
  const ctx = await chromium.launchPersistentContext(join(root, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
    viewport: { width: 1360, height: 900 },
  });
  let srv = await startCli(ts.path, file);
  try {
    const page = await ctx.newPage();
    const errors: string[] = [];
    const foreign: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('request', (r) => {
      if (!r.url().startsWith(srv.url)) foreign.push(r.url());
    });
    await page.goto(srv.url);
    await page.waitForFunction(
      () => (globalThis as unknown as { qcbenchAnnotate: { ready?: boolean } }).qcbenchAnnotate.ready === true,
      undefined,
      {
        timeout: 30_000,
      },
    );
    const shown = await page.$$eval('.card', (els) => els.map((e) => e.getAttribute('data-crop-id') ?? ''));
    assert.ok(shown.length >= 5, `${shown.length} crops shown`);
    // the field view of the focused crop is drawn (this store has no field images: its crops at their places)
    await page.waitForFunction(
      "document.getElementById('field').complete && document.getElementById('field').naturalWidth > 0",
    );
    // a crop is drawn from its channels: some pixel of the first canvas is not black
    await page.waitForFunction(`(() => {
      const c = document.querySelector('.card canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      return d.some((v, i) => i % 4 !== 3 && v > 0);
    })()`);
    // keyboard: normal, abnormal blur (1), abnormal debris (3), skip, normal, abnormal haze (6), undo (u)
    for (const k of ['n', '1', '3', 's', 'n', '6', 'u']) await page.keyboard.press(k);
    await page.waitForFunction(`document.querySelectorAll('.card[data-saved="1"]').length === 4`, undefined, {
      timeout: 20_000,
    });
    await page.waitForFunction("!document.querySelector('.card.pending')");
    const expected = new Map([
      [shown[0], ['normal', 'none']],
      [shown[1], ['abnormal', 'blur']],
      [shown[2], ['abnormal', 'debris']],
      [shown[4], ['normal', 'none']],
    ]);
    assert.match((await page.textContent('[data-count="abnormal"]')) ?? '', /abnormal 2 \/ 240/);
    assert.match((await page.textContent('[data-count="normal"]')) ?? '', /normal 2 \/ 240/);
    assert.deepEqual(errors, []);
    // the labels shown as saved are on disk: kill the server without warning
    await kill(srv.child);
    const rows = readAnnotations(file);
    assert.deepEqual(
      new Map(rows.map((r) => [r.crop_id, [r.label, r.artefact_type]])),
      expected,
      readFileSync(file, 'utf8'),
    );
    assert.ok(rows.every((r) => r.source === 'manual:kb' && r.split === 'train'));

    // restart on the same FILE: the page shows the counts, the labels are listed, and labelling continues
    srv = await startCli(ts.path, file);
    await page.goto(srv.url);
    errors.length = 0; // the old page's requests to the killed server failed, as they should
    await page.waitForFunction(
      () => (globalThis as unknown as { qcbenchAnnotate: { ready?: boolean } }).qcbenchAnnotate.ready === true,
      undefined,
      {
        timeout: 30_000,
      },
    );
    assert.match((await page.textContent('[data-count="abnormal"]')) ?? '', /abnormal 2 \/ 240/);
    const again = await page.$$eval('.card', (els) => els.map((e) => e.getAttribute('data-crop-id') ?? ''));
    for (const id of expected.keys()) assert.ok(!again.includes(id), `${id} is labelled: not proposed again`);
    await page.keyboard.press('2');
    await page.waitForFunction(`document.querySelectorAll('.card[data-saved="1"]').length === 1`, undefined, {
      timeout: 20_000,
    });
    assert.deepEqual(errors, []);
    await kill(srv.child);
    const after = readAnnotations(file);
    assert.equal(after.length, 5);
    assert.equal(after.find((r) => r.crop_id === again[0])?.artefact_type, 'saturation');
    assert.deepEqual(foreign, [], 'nothing is requested from elsewhere');
  } finally {
    await kill(srv.child);
    await ctx.close();
    if (!keep) rmSync(root, { recursive: true, force: true });
  }
});
