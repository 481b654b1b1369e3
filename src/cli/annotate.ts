/**
 * `qcbench annotate STORE --out FILE [--port N] [--host H] [--suggest ENCODER]`: label a crop store's crops in the
 * browser (normal / abnormal with an artefact type, paper §3.1), each label written to FILE at once.
 */
import { userInfo } from 'node:os';
import { storeFeatures, INTENSITY } from '../annotate/features.js';
import { Proposer } from '../annotate/propose.js';
import { startAnnotateServer } from '../annotate/server.js';
import { AnnotationSession } from '../annotate/session.js';
import { openCropStore } from '../data/store/crop-store.js';
import { QcbError } from '../errors.js';
import { intArg, parseCommandArgs } from './args.js';
import type { CliContext, Command } from './types.js';

const usage = `qcbench annotate STORE --out FILE [--port 8765] [--host 127.0.0.1] [--suggest intensity|none|ENCODER]
                 [--annotator NAME] [--clusters 40] [--seed 1]

Serves a page on http://127.0.0.1:PORT/ (its own HTML, JS and CSS; nothing from the network) showing the crops of
the crop store STORE in a grid, composed from their channels (toggles, contrast), with plate, well, site and the
crop outlined in its field. Label with the keyboard or the buttons: n normal, 1–8 abnormal with the artefact types
of annotations/README.md (blur, saturation, debris, noise, empty, haze, dead, other), s skip, u undo. Counts by label
and type are shown against the paper's 240 + 240.

Each label is written to FILE (the annotations format) at once and atomically; the page shows it saved only then.
Stop with Ctrl-C at any time; the same command continues FILE. FILE's split column is 'train' until
\`qcbench annotations split\` assigns train and test; skips are not written (a new session may show them again).

Options:
  --out FILE          the annotation file (created at the first label; an existing one is continued)
  --port N            port (default 8765; 0 = any free port, printed)
  --host H            address to bind (default 127.0.0.1; other hosts can then reach the page)
  --suggest S         what to propose next: intensity (default; image-quality features, no model), none (store
                      order), or an encoder name or ONNX file (e.g. random-resnet18, resnet18): first one crop per
                      k-means cluster of the features (smallest clusters first), then the crops the labels so far
                      are least sure about (kNN vote)
  --annotator NAME    written as source manual:NAME (default: your user name)
  --clusters K        clusters of the first, diverse sample (default 40)
  --seed N            seed of the clustering (default 1)

Exit codes: 0 stopped, 2 bad input (not a crop store, port in use, FILE of another store).`;

function parse(args: string[]) {
  return parseCommandArgs(
    {
      args,
      allowPositionals: true,
      options: {
        out: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        suggest: { type: 'string' },
        annotator: { type: 'string' },
        clusters: { type: 'string' },
        seed: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    },
    'annotate',
  );
}

export const command: Command = {
  name: 'annotate',
  summary: 'label crops in the browser; each label saved at once to an annotation file',
  usage,
  async run(args: string[], ctx: CliContext): Promise<number> {
    const { values, positionals } = parse(args);
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    if (positionals.length !== 1)
      throw new QcbError('QCB_USAGE', 'give exactly one crop store', {
        value: positionals,
        fix: 'qcbench annotate STORE --out annotations.csv',
      });
    if (!values.out)
      throw new QcbError('QCB_USAGE', 'missing --out FILE', {
        key: '--out',
        fix: 'qcbench annotate STORE --out annotations/my-screen.csv',
      });
    const port = intArg(values.port, '--port', 0) ?? 8765;
    if (port > 65535)
      throw new QcbError('QCB_USAGE', `--port ${port} is above 65535`, {
        key: '--port',
        value: port,
        fix: 'e.g. --port 8765',
      });
    const clusters = intArg(values.clusters, '--clusters', 1) ?? 40;
    const seed = intArg(values.seed, '--seed', 0) ?? 1;
    const suggest = values.suggest ?? INTENSITY;
    const annotator = values.annotator ?? userInfo().username.replace(/[^A-Za-z0-9_.-]/g, '_');
    const store = await openCropStore(positionals[0]);
    if (store.count === 0)
      throw new QcbError('QCB_STORE', 'the crop store is empty', {
        file: store.path,
        fix: 'check the extraction log and skipped.csv',
      });
    const session = AnnotationSession.open(store, values.out, `manual:${annotator}`);
    let proposer: Proposer | undefined;
    if (suggest !== 'none') {
      const f = await storeFeatures(store, suggest, ctx.log);
      proposer = new Proposer(f, { clusters, seed, maxCandidates: 20000 });
    }
    const srv = await startAnnotateServer({
      session,
      proposer,
      suggest,
      host: values.host,
      port,
      log: ctx.log,
    });
    const c = session.counts();
    ctx.log.info('annotating', {
      store: store.path,
      crops: store.count,
      file: session.file,
      labelled: c.normal + c.abnormal,
    });
    process.stdout.write(`annotate: open ${srv.url} (Ctrl-C stops; every label is already saved)\n`);
    await new Promise<void>((done) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        srv.close().then(done);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  },
};
