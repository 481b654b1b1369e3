import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { command as check } from '../../src/cli/weights-check.js';
import { command as fetchCmd } from '../../src/cli/weights-fetch.js';
import { resnet18Graph } from '../../src/encoders/resnet18.js';
import { writeSafetensors } from '../../src/encoders/safetensors.js';
import { fetchWeights, WEIGHTS } from '../../src/encoders/weights.js';
import type { Tensor } from '../../src/engine/ir/graph.js';
import { QcbError } from '../../src/errors.js';
import { Logger } from '../../src/util/log.js';
import { captureStdout } from '../cli/_cli.js';

const FIX = fileURLToPath(new URL('../../../shared/fixtures/onnx/', import.meta.url));
const ctx = { log: new Logger({ quiet: true }) };

test('weights check: reports ok / wrong size / missing per encoder with the fix, exit 2 when not all ready', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-wcheck-'));
  copyFileSync(join(FIX, 'resnet18_tv.onnx'), join(dir, 'resnet18.onnx'));
  copyFileSync(join(FIX, 'vgg_small_tv.onnx'), join(dir, 'vgg16.onnx'));
  const { code, out } = await captureStdout(() => check.run(['--dir', dir, '--json'], ctx));
  assert.equal(code, 2);
  const r = JSON.parse(out) as {
    ok: boolean;
    encoders: { name: string; status: string; dim?: number; fix?: string }[];
  };
  assert.equal(r.ok, false);
  const by = Object.fromEntries(r.encoders.map((e) => [e.name, e]));
  assert.equal(by.resnet18.status, 'ok');
  assert.equal(by.resnet18.dim, 512);
  assert.equal(by.vgg16.status, 'wrong-dim'); // the reduced fixture gives 128-d features, VGG16 gives 512
  assert.equal(by.vgg16.dim, 128);
  assert.equal(by.convnext_tiny.status, 'missing');
  assert.match(by.convnext_tiny.fix!, /qcbench weights fetch convnext_tiny/);
  // only the ready one: exit 0, readable text
  const one = await captureStdout(() => check.run(['resnet18', '--dir', dir], ctx));
  assert.equal(one.code, 0);
  assert.match(one.out, /^ok\s+resnet18\s+512-d/m);
  await assert.rejects(
    check.run(['resnet19', '--dir', dir], ctx),
    (e: unknown) => e instanceof QcbError && e.code === 'QCB_UNKNOWN_NAME' && /resnet18/.test(e.context.fix!),
  );
});

test('weights fetch: offline (unreachable host) fails with QCB_DOWNLOAD, exit 1, and leaves no file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qcb-wfetch-'));
  await assert.rejects(
    fetchCmd.run(['resnet18', '--dir', dir, '--url', 'http://127.0.0.1:9/model.safetensors'], ctx),
    (e: unknown) => {
      assert.ok(e instanceof QcbError);
      assert.equal(e.code, 'QCB_DOWNLOAD');
      assert.equal(e.exitCode, 1);
      assert.match(e.message, /offline/);
      assert.match(e.context.fix!, /resnet18\.safetensors/);
      return true;
    },
  );
  assert.deepEqual(readdirSync(dir), []);
  await assert.rejects(fetchCmd.run([], ctx), (e: unknown) => e instanceof QcbError && e.code === 'QCB_USAGE');
});

test('weights fetch: verifies what it downloads (truncated → refused), writes atomically, then check passes', async () => {
  const { graph, result } = resnet18Graph({ seed: 5, cropSize: 32 });
  const sd = new Map<string, Tensor>();
  for (const n of [...result.params, ...result.buffers]) sd.set(n, graph.initializers.get(n)!);
  const src = mkdtempSync(join(tmpdir(), 'qcb-wsrc-'));
  writeSafetensors(join(src, 'model.safetensors'), sd);
  const good = readFileSync(join(src, 'model.safetensors'));
  const server = createServer((req, res) => {
    const body = req.url === '/bad' ? good.subarray(0, good.length - 4096) : good;
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const dir = mkdtempSync(join(tmpdir(), 'qcb-wdst-'));
    await assert.rejects(
      fetchWeights('resnet18', { dir, url: `http://127.0.0.1:${port}/bad` }),
      (e: unknown) => e instanceof QcbError && e.code === 'QCB_DOWNLOAD' && /does not verify|at least/.test(e.message),
    );
    assert.deepEqual(readdirSync(dir), [], 'no partial file is left');
    await assert.rejects(
      fetchWeights('resnet18', { dir, url: `http://127.0.0.1:${port}/good`, sha256: '0'.repeat(64) }),
      /SHA-256/,
    );
    const r = await fetchWeights('resnet18', { dir, url: `http://127.0.0.1:${port}/good` });
    assert.equal(r.present, false);
    assert.equal(r.bytes, good.length);
    assert.ok(existsSync(join(dir, WEIGHTS.resnet18.safetensors)));
    assert.deepEqual(readdirSync(dir), [WEIGHTS.resnet18.safetensors]);
    const again = await fetchWeights('resnet18', { dir, url: `http://127.0.0.1:${port}/bad` });
    assert.equal(again.present, true);
    assert.equal(again.sha256, r.sha256);
    const { code, out } = await captureStdout(() =>
      check.run(['resnet18', '--dir', dir, '--size', '32', '--json'], ctx),
    );
    assert.equal(code, 0);
    assert.equal(JSON.parse(out).encoders[0].format, 'safetensors');
  } finally {
    server.close();
  }
});
