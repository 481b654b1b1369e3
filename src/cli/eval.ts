/**
 * `qcbench eval --encoder NAME|FILE.onnx --task knn|linear|finetune --annotations FILE --store STORE [--budget N]
 * [--seed S] [--json]`: one benchmark cell by hand. Reads the annotated crops from the crop store, builds or loads the
 * encoder, runs the downstream task (paper §3.3) and prints accuracy, F1 and AUC (support-weighted, percent, §3.4)
 * with bootstrap 95% intervals; optionally writes the test predictions.
 */
import { extname } from 'node:path';
import { parseArgs } from 'node:util';
import { evaluateCell } from '../downstream/cell.js';
import { setFeatureEngine } from '../encoders/features.js';
import { resolveTask } from '../downstream/registry.js';
import { checkEncoderEngine } from '../engine/verify.js';
import { QcbError } from '../errors.js';
import { OPTIMIZERS } from '../protocol/catalog.js';
import { LINE_SEARCH } from '../protocol/defaults.js';
import { resolveEncoder } from '../runner/catalog.js';
import { csvCell } from '../util/csv.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { intArg, requireOptions } from './args.js';
import { applyProviderOption, type Command, PROVIDER_OPTION } from './types.js';

const usage = `qcbench eval --encoder NAME|FILE.onnx --task knn|linear|finetune --annotations FILE --store STORE
              [--budget N] [--seed S] [--json] [--predictions FILE] [--out FILE] [options]

Evaluates one encoder on one downstream task (Masud et al. 2022 §3.3): kNN (k = 5) or a linear layer on the frozen
encoder, or fine-tuning of the whole encoder with a linear head, trained on the annotation file's train split (a
class-balanced label budget of it with --budget) and tested on its test split. Prints accuracy, F1 and ROC AUC
(support-weighted over the two classes, in percent) with bootstrap 95% intervals.

Encoders: vgg16, resnet18, convnext_tiny (ImageNet weights from the weights folder: qcbench weights check),
random-resnet18, resnet18-fractaldb, an SSL method with --pretrained FILE, or any ONNX CNN file.

Options:
  --budget N          class-balanced training subset of N annotated crops (paper: 350, 100, 50, 25, 10)
  --seed S            seed of the budget sampling, initialisations and shuffling (default 0)
  --test-store STORE  read the test crops from another store (domain shift, paper §4.3)
  --pretrained FILE   encoder.onnx exported by \`qcbench pretrain\` (SSL encoders)
  --weights DIR       ImageNet weights folder (default $QCBENCH_WEIGHTS or ~/.cache/qcbench/weights)
  --encoder-opt K=V   encoder setting, repeatable (resnet18-fractaldb: categories, instances, epochs, lr, …)
  --cache DIR         where encoders trained here are cached (FractalDB; default beside the weights folder)
  --channels A,B,C    store channels fed as R,G,B (default: all of a 1/3-channel store, else Ph_golgi,Mito,Hoechst)
  --line-search       choose the learning rate on a validation split of the training set (${LINE_SEARCH.lr.join(', ')})
  --epochs N --lr X --batch N --k N   override the task's paper defaults
  --milestones A,B    epochs at which a head's learning rate is multiplied by its gamma ('none': constant)
  --optimizer O       the head's optimizer: ${OPTIMIZERS.join(', ')} (linear, finetune; default sgd as the paper)
  --bootstrap N       bootstrap resamples for the 95% intervals (default 1000; 0 = none)
  --threads N         onnxruntime threads (default: all cores)
  --provider P        onnxruntime execution provider: cpu (default) or cuda (README "GPU")
  --engine E          what computes the frozen features (knn, linear, quadratic): onnxruntime (default) or tfjs,
                      qcbench's TF.js interpreter of the same graph, on @tensorflow/tfjs-node-gpu or -node where
                      installed, else TF.js's pure-JS CPU backend (single-threaded: far slower). Heads still train
                      in onnxruntime; finetune trains the encoder in onnxruntime only
  --predictions FILE  write the test predictions (.csv or .json)
  --out FILE          write the whole result as JSON
  --json              print the result as JSON on stdout

Exit codes: 0 done, 1 run failure, 2 bad input (QCB_WEIGHTS_MISSING when ImageNet weights are absent: the message
names the command that fetches them).`;

/** `--milestones A,B,…` as increasing epochs ≥ 1; 'none' is the empty list (a constant learning rate). */
function milestonesArg(v: string): number[] {
  if (v === 'none') return [];
  const out = v.split(',').map((x) => intArg(x.trim(), '--milestones', 1) as number);
  if (out.some((m, i) => i > 0 && m <= out[i - 1]))
    throw new QcbError('QCB_USAGE', `--milestones must increase, got '${v}'`, {
      key: '--milestones',
      value: v,
      allowed: 'increasing epochs ≥ 1, comma-separated, or none',
      fix: 'e.g. --milestones 4,6',
    });
  return out;
}

function posNum(v: string | undefined, key: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n))
    throw new QcbError('QCB_USAGE', `${key} must be a positive number, got '${v}'`, {
      key,
      value: v,
      allowed: 'a positive number',
    });
  return n;
}

export const command: Command = {
  name: 'eval',
  summary: 'evaluate one encoder on one downstream task (kNN, linear, fine-tune)',
  usage,
  async run(args, ctx) {
    const { values } = parseArgs({
      args,
      options: {
        encoder: { type: 'string' },
        task: { type: 'string' },
        annotations: { type: 'string' },
        store: { type: 'string' },
        'test-store': { type: 'string' },
        budget: { type: 'string' },
        seed: { type: 'string' },
        pretrained: { type: 'string' },
        weights: { type: 'string' },
        channels: { type: 'string' },
        'encoder-opt': { type: 'string', multiple: true },
        cache: { type: 'string' },
        'line-search': { type: 'boolean', default: false },
        epochs: { type: 'string' },
        lr: { type: 'string' },
        batch: { type: 'string' },
        milestones: { type: 'string' },
        optimizer: { type: 'string' },
        k: { type: 'string' },
        bootstrap: { type: 'string' },
        threads: { type: 'string' },
        ...PROVIDER_OPTION,
        engine: { type: 'string' },
        predictions: { type: 'string' },
        out: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    await applyProviderOption(values.provider);
    requireOptions(
      values,
      ['encoder', 'task', 'annotations', 'store'],
      'qcbench eval --encoder resnet18 --task linear --annotations annotations.csv --store crops/',
    );
    const engine = checkEncoderEngine(values.engine ?? 'onnxruntime');
    if (engine !== 'onnxruntime' && !resolveTask(values.task!).frozen) {
      throw new QcbError(
        'QCB_USAGE',
        `--engine ${engine} computes frozen features; task '${values.task}' trains the encoder`,
        {
          key: '--engine',
          value: engine,
          allowed: 'onnxruntime for finetune; onnxruntime or tfjs for knn, linear, quadratic',
          fix: 'drop --engine for finetune, or use a frozen-encoder task',
        },
      );
    }
    const seed = intArg(values.seed, '--seed', 0) ?? 0;
    const budget = intArg(values.budget, '--budget', 2);
    const threads = intArg(values.threads, '--threads', 1);
    const bootstrap = intArg(values.bootstrap, '--bootstrap', 0) ?? 1000;
    const settings: Record<string, unknown> = {};
    const epochs = intArg(values.epochs, '--epochs', 1);
    const lr = posNum(values.lr, '--lr');
    const batch = intArg(values.batch, '--batch', 1);
    const k = intArg(values.k, '--k', 1);
    if (epochs !== undefined) settings.epochs = epochs;
    if (lr !== undefined) settings.lr = lr;
    if (batch !== undefined) settings.batch_size = batch;
    if (k !== undefined) settings.k = k;
    if (values.milestones !== undefined) settings.milestones = milestonesArg(values.milestones);
    if (values.optimizer !== undefined) {
      if (!(OPTIMIZERS as readonly string[]).includes(values.optimizer))
        throw new QcbError('QCB_USAGE', `unknown --optimizer '${values.optimizer}'`, {
          key: '--optimizer',
          value: values.optimizer,
          allowed: OPTIMIZERS.join(', '),
          fix: `use one of ${OPTIMIZERS.join(', ')}`,
        });
      settings.optimizer = values.optimizer;
    }
    const encoderSettings: Record<string, unknown> = {};
    for (const kv of values['encoder-opt'] ?? []) {
      const m = kv.match(/^([A-Za-z_][\w.]*)=(.*)$/);
      if (!m)
        throw new QcbError('QCB_USAGE', `--encoder-opt must be KEY=VALUE, got '${kv}'`, {
          key: '--encoder-opt',
          value: kv,
          allowed: 'KEY=VALUE (numbers, true/false, JSON lists)',
        });
      let v: unknown = m[2];
      try {
        v = JSON.parse(m[2]);
      } catch {
        // a plain string
      }
      encoderSettings[m[1]] = v;
    }
    let backend: string | undefined;
    if (engine === 'tfjs') backend = await (await import('../engine/tfjs/interpreter.js')).initTfjsEngine();
    const prevEngine = setFeatureEngine(engine);
    const r = await evaluateCell({
      encoder: resolveEncoder(values.encoder!),
      task: values.task!,
      annotations: values.annotations!,
      store: values.store!,
      testStore: values['test-store'],
      budget,
      seed,
      channels: values.channels
        ? values.channels
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : undefined,
      taskSettings: settings,
      encoderSettings,
      lineSearch: values['line-search']
        ? { enabled: true, val_fraction: LINE_SEARCH.val_fraction, lr: LINE_SEARCH.lr }
        : undefined,
      weightsDir: values.weights,
      cacheDir: values.cache,
      pretrained: values.pretrained,
      threads,
      bootstrap,
      log: ctx.log,
    }).finally(() => setFeatureEngine(prevEngine));
    const { predictions, ...cell } = r;
    // the engine is recorded when it is not the default
    const result = backend ? { ...cell, engine: { features: engine, backend } } : cell;
    const { metrics } = r;
    if (values.predictions) {
      const f = values.predictions;
      if (extname(f).toLowerCase() === '.json') writeJsonAtomic(f, predictions);
      else {
        const lines = [
          'crop_id,label,pred,score,artefact_type',
          ...predictions.map((p) =>
            [p.crop_id, p.label, p.pred, p.score.toFixed(6), p.artefact_type ?? ''].map(String).map(csvCell).join(','),
          ),
        ];
        writeFileAtomic(f, `${lines.join('\n')}\n`);
      }
    }
    if (values.out) writeJsonAtomic(values.out, result);
    if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      const ci = (m: 'accuracy' | 'f1' | 'auc') =>
        metrics.ci95 ? `  [${metrics.ci95[m][0].toFixed(1)}–${metrics.ci95[m][1].toFixed(1)}]` : '';
      const lines = [
        `encoder   ${r.encoder.name} (${r.encoder.label}, ${r.encoder.kind}), ${r.encoder.dim}-d`,
        ...(backend ? [`engine    ${engine} (TF.js backend ${backend}) for features`] : []),
        `task      ${r.task}  train ${metrics.n_train}${budget !== undefined ? ` (budget ${budget})` : ''}  test ${metrics.n_test}  seed ${seed}`,
        `accuracy  ${metrics.accuracy.toFixed(2)}${ci('accuracy')}`,
        `F1        ${metrics.f1.toFixed(2)}${ci('f1')}`,
        `AUC       ${metrics.auc.toFixed(2)}${ci('auc')}`,
        `confusion ${metrics.classes.map((c, i) => `${c}: ${metrics.confusion[i].join('/')}`).join('  ')}  (rows true, columns ${metrics.classes.join('/')})`,
      ];
      if (r.line_search)
        lines.push(
          `line search lr ${r.line_search.scores.map((s) => `${s.value}: ${s.diverged ? `diverged (${s.diverged})` : `F1 ${s.f1.toFixed(1)}`}`).join(', ')} → ${r.line_search.best}`,
        );
      if (metrics.recall_by_type)
        lines.push(
          `recall by artefact  ${Object.entries(metrics.recall_by_type)
            .map(([t, r]) => `${t} ${r.recall.toFixed(0)}% (${r.n})`)
            .join(', ')}`,
        );
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return 0;
  },
};
