/**
 * The annotation page's HTTP server (node:http): its own static files, the store's crops and field views as PNG,
 * and a small JSON API to label, skip, undo and get proposals. Routes are a whitelist matched on the decoded path —
 * no part of a request ever becomes a file path, so `../` (plain or percent-encoded) reaches nothing. POST bodies
 * must be JSON (`Content-Type: application/json`), which a foreign web page cannot send to it without a CORS
 * preflight the server never grants; on a loopback address, requests naming another host (DNS rebinding) get 403. A label's POST is answered only after FILE has been renamed into place.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ANNOTATION_ARTEFACT_TYPES } from '../data/annotations.js';
import { QcbError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { FieldViews, cropStripPng } from './images.js';
import type { Proposer } from './propose.js';
import type { AnnotationSession } from './session.js';

/** The page's files: URL path → file in src/annotate/static/ and its content type. */
const STATIC: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/app.css': ['app.css', 'text/css; charset=utf-8'],
};

export interface AnnotateServerOptions {
  session: AnnotationSession;
  /** Undefined: no proposals, crops in store order. */
  proposer?: Proposer;
  /** What made the proposals (shown on the page). */
  suggest: string;
  host?: string;
  /** 0 = any free port. */
  port?: number;
  log?: Logger;
}

export interface AnnotateServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

function send(res: ServerResponse, status: number, body: string | Buffer, type: string, extra = {}): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...extra,
  });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value), 'application/json; charset=utf-8');
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((ok, fail) => {
    let size = 0;
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_BODY) {
        fail(new QcbError('QCB_USAGE', 'request body too large', { fix: 'send one label per request' }));
        req.destroy();
      } else parts.push(b);
    });
    req.on('end', () => ok(Buffer.concat(parts).toString('utf8')));
    req.on('error', fail);
  });
}

/**
 * Starts the server.
 * @throws QCB_USAGE naming `--port` when the port is in use or `--host` when the address cannot be bound
 */
export async function startAnnotateServer(o: AnnotateServerOptions): Promise<AnnotateServer> {
  const { session, proposer } = o;
  const store = session.store;
  const staticDir = fileURLToPath(new URL('./static/', import.meta.url));
  const files = new Map(Object.entries(STATIC).map(([p, [f, t]]) => [p, { body: readFileSync(staticDir + f), t }]));
  const fields = new FieldViews(store);

  const state = () => ({
    store: store.path,
    count: store.count,
    channels: store.channels,
    size: store.size,
    file: session.file,
    suggest: o.suggest,
    artefactTypes: ANNOTATION_ARTEFACT_TYPES,
    counts: session.counts(),
  });
  const cropInfo = (i: number) => {
    const m = store.meta[i];
    const r = session.rows.get(i);
    return {
      index: i,
      crop_id: m.crop_id,
      plate: m.plate,
      well: m.well,
      site: m.site,
      x: m.x,
      y: m.y,
      label: r?.label ?? null,
      artefact_type: r?.artefact_type ?? null,
    };
  };
  const next = (n: number, exclude: Set<number>): number[] => {
    for (const i of session.skipped) exclude.add(i);
    if (proposer) return proposer.next(n, session.labelMap(), exclude);
    const out: number[] = [];
    for (let i = 0; i < store.count && out.length < n; i++) if (!session.rows.has(i) && !exclude.has(i)) out.push(i);
    return out;
  };
  const parseIndex = (s: string): number | undefined => {
    if (!/^\d{1,10}$/.test(s)) return undefined;
    const i = Number(s);
    return i < store.count ? i : undefined;
  };

  const host = o.host ?? '127.0.0.1';
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(host);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Bound to this machine only: a page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) is refused.
    const asked = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    if (loopback && !['127.0.0.1', 'localhost', '::1'].includes(asked))
      return json(res, 403, { error: `host '${asked}' is not this machine` });
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (req.method === 'GET' || req.method === 'HEAD') {
      const f = files.get(path);
      if (f) return send(res, 200, f.body, f.t);
      if (path === '/api/state') return json(res, 200, state());
      if (path === '/api/next') {
        const n = Math.min(200, Math.max(1, Number(url.searchParams.get('n')) || 24));
        const exclude = new Set(
          (url.searchParams.get('exclude') ?? '')
            .split(',')
            .map(parseIndex)
            .filter((i): i is number => i !== undefined),
        );
        return json(res, 200, { crops: next(n, exclude).map(cropInfo) });
      }
      if (path === '/api/labels') return json(res, 200, { crops: [...session.rows.keys()].map(cropInfo) });
      let m = /^\/api\/crop\/([^/]+)\.png$/.exec(path);
      if (m) {
        const i = parseIndex(m[1]);
        if (i === undefined) return json(res, 404, { error: 'no such crop' });
        return send(res, 200, await cropStripPng(store, i), 'image/png');
      }
      m = /^\/api\/field\/([^/]+)\.png$/.exec(path);
      if (m) {
        const i = parseIndex(m[1]);
        if (i === undefined) return json(res, 404, { error: 'no such crop' });
        const v = await fields.png(i);
        return send(res, 200, v.png, 'image/png', { 'X-Field-Source': v.source });
      }
      return json(res, 404, { error: 'not found' });
    }
    if (req.method === 'POST') {
      if (!/^application\/json\b/.test(req.headers['content-type'] ?? ''))
        return json(res, 415, { error: 'send JSON (Content-Type: application/json)' });
      let body: { index?: unknown; label?: unknown; artefact_type?: unknown };
      try {
        body = JSON.parse((await readBody(req)) || '{}');
      } catch {
        return json(res, 400, { error: 'the body is not JSON' });
      }
      const index = typeof body.index === 'number' ? body.index : Number.NaN;
      if (path === '/api/label') {
        session.label(
          index,
          String(body.label),
          body.artefact_type === undefined ? undefined : String(body.artefact_type),
        );
        o.log?.debug('label saved', { crop: store.meta[index].crop_id, label: String(body.label) });
        return json(res, 200, { saved: true, crop: cropInfo(index), counts: session.counts() });
      }
      if (path === '/api/skip') {
        session.skip(index);
        return json(res, 200, { skipped: true, counts: session.counts() });
      }
      if (path === '/api/undo') {
        const i = session.undo();
        return json(res, 200, { undone: i === undefined ? null : cropInfo(i), counts: session.counts() });
      }
      return json(res, 404, { error: 'not found' });
    }
    return json(res, 405, { error: 'method not allowed' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof QcbError ? e : undefined;
      if (!err) o.log?.error('annotate request failed', { url: req.url, error: String(e) });
      if (!res.headersSent)
        json(res, err && err.code === 'QCB_USAGE' ? 400 : 500, {
          error: err ? err.message : 'internal error',
          code: err?.code ?? 'QCB_INTERNAL',
          fix: err?.context.fix ?? null,
        });
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') {
        fail(
          new QcbError('QCB_USAGE', `port ${o.port} on ${host} is in use`, {
            key: '--port',
            value: o.port,
            fix: 'choose another --port (or --port 0 for any free one), or stop the program using it',
          }),
        );
      } else {
        fail(
          new QcbError('QCB_USAGE', `cannot listen on ${host}:${o.port}: ${e.code ?? e.message}`, {
            key: e.code === 'EACCES' ? '--port' : '--host',
            value: e.code === 'EACCES' ? o.port : host,
            fix: 'use --host 127.0.0.1 and a --port above 1023',
            cause: e,
          }),
        );
      }
    });
    server.listen(o.port ?? 0, host, () => ok());
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${shown}:${addr.port}/`,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
