/**
 * `qcbench qc apply --model MODEL.onnx --store STORE [--out DIR] [--threshold T] [--shard i/n] [--batch N]`: scores
 * every crop of a store with an exported QC classifier and writes per-crop scores, per-field and per-well abnormal
 * fractions (CSV and JSON lines), a plate map and montages (src/qc/apply.ts). Streaming, sharded, resumable.
 */
import { applyQcModel } from '../qc/apply.js';
import { parseShard } from '../util/shard.js';
import { intArg, parseCommandArgs, requireOptions, unitArg } from './args.js';
import { applyProviderOption, type Command, PROVIDER_OPTION } from './types.js';

const usage = `qcbench qc apply --model MODEL.onnx --store STORE [--out DIR] [--threshold T] [--shard i/n] [--batch N]
                 [--montage N] [--field-k K] [--field-fraction F] [--threads N] [--use-model-window] [--json]

Scores every crop of a crop store with a classifier from \`qcbench qc train\` (MODEL.json must sit beside it), in
batches streamed from the store. Writes into DIR (default qc-<store name>):
  scores.csv, scores.jsonl   crop_id, index, plate, well, site, field_id, x, y, score, abnormal (score > threshold)
  fields.csv, fields.jsonl   one row per field of the screen, with or without crops (the store's field table):
                             plate, well, site, field_id, status, n, abnormal, fraction, mean_score, verdict,
                             reasons, details, ImageQuality_<Measure>_<channel>… (whole-field measures)
  wells.csv, wells.jsonl     plate, well, n, abnormal, fraction, mean_score, fields, fields_flagged, reasons
  plate-map.vl.json|svg|png  wells coloured by abnormal fraction, one panel per plate (96/384/1536 from well names);
                             wells with a flagged field outlined
  field-map.vl.json|svg|png  one cell per field; flagged fields outlined with their first reason's letter
  fields.html                the maps and a table of the flagged fields: reasons, the measures out of range
  montages/<plate>_<well>.png + montages.csv   the highest-scoring crops of each well, to check by eye
  summary.json

--shard i/n scores the i-th (0-based) of n contiguous parts; run all n (in any order, on any machines sharing DIR):
the last one to finish writes the summary. A killed run continues after its last finished batch when rerun.
The model and the store are checked first (crop size, channel names, sidecar hash): a mismatch fails before any work.
Intensity windows: the store's (qcbench.json, one per plate and channel) are compared with those the model was trained
on (MODEL.json); a window off by more than 10% of the model's span, or a store or model that records none (made before
windows were recorded, or normalised per field), is a warning and scoring goes ahead.

Field verdicts (flagged with reasons): unreadable, no_nuclei, no_crops (status in the store), abnormal_crops (fraction
> --field-fraction), and measures outside the screen's robust range median ± k·1.4826·MAD over its fields (at least
5 measured fields): focus_low (PowerLogLogSlope low), saturated (PercentMaximal high), dark (MeanIntensity low or
PercentMinimal high), bright (MeanIntensity high), in any channel.

Options:
  --threshold T   abnormal when score > T (default: the model's, calibrated by qc train --max-fpr; 0.5 for
                  models made before calibration)
  --field-k K     k of the fields' robust ranges (default 3)
  --field-fraction F  flag a field when more than F of its crops are abnormal (default 0.5)
  --batch N       crops per onnxruntime run and per checkpoint (default 64)
  --montage N     crops per well montage (default 16; 0 = none)
  --threads N     onnxruntime threads (default: all cores)
  --use-model-window  map each stored crop linearly from its plate's window to the model's window before scoring
                  (values the store clipped at 0/255 stay clipped; values outside the model's window clip to 0/255);
                  needs windows in both the store and the model
  --provider P    onnxruntime execution provider: cpu (default) or cuda (README "GPU")
  --json          print the run summary as JSON

Exit codes: 0 done (or this shard done), 1 run failure or interrupted, 2 bad input.`;

function parse(args: string[]) {
  return parseCommandArgs(
    {
      args,
      options: {
        model: { type: 'string' },
        store: { type: 'string' },
        out: { type: 'string' },
        threshold: { type: 'string' },
        shard: { type: 'string' },
        batch: { type: 'string' },
        montage: { type: 'string' },
        'field-k': { type: 'string' },
        'field-fraction': { type: 'string' },
        threads: { type: 'string' },
        'use-model-window': { type: 'boolean', default: false },
        ...PROVIDER_OPTION,
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    },
    'qc apply',
  );
}

export const command: Command = {
  name: 'apply',
  summary: 'score every crop of a store with a QC model: per-crop scores, per-well fractions, plate map, montages',
  usage,
  async run(args, ctx) {
    const { values } = parse(args);
    if (values.help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    await applyProviderOption(values.provider);
    requireOptions(values, ['model', 'store'], 'qcbench qc apply --model qc.onnx --store crops/ --out qc-out/');
    const ac = new AbortController();
    const onSig = () => ac.abort();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    try {
      const r = await applyQcModel({
        model: values.model!,
        store: values.store!,
        out: values.out,
        threshold: unitArg(values.threshold, '--threshold'),
        shard: values.shard === undefined ? undefined : parseShard(values.shard, '--shard'),
        batch: intArg(values.batch, '--batch', 1),
        montage: intArg(values.montage, '--montage', 0),
        fieldK: values['field-k'] === undefined ? undefined : Number(values['field-k']),
        fieldFraction: unitArg(values['field-fraction'], '--field-fraction'),
        threads: intArg(values.threads, '--threads', 1),
        signal: ac.signal,
        useModelWindow: values['use-model-window'],
        log: ctx.log,
      });
      if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else
        process.stdout.write(
          `${r.out}\n${r.scored} crops scored (${r.cropsPerSecond.toFixed(1)} crops/s)${r.resumedFrom ? `, ${r.resumedFrom} done earlier` : ''}; ` +
            `${r.complete ? 'summary written' : r.shardDone ? 'waiting for the other shards' : 'interrupted: rerun to continue'}\n`,
        );
      return r.shardDone ? 0 : 1;
    } finally {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    }
  },
};
