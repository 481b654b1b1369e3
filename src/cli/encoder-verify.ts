/**
 * `qcbench encoder verify --onnx M.onnx --ref M.ref.json [--json] [--engine onnxruntime|tfjs]`: checks that the
 * engine computes an exported encoder's features and gradients as PyTorch does (features within 1e-4, gradients
 * within 1e-3, relative to the largest reference magnitude). Exit 0 when within tolerance, 1 (QCB_VERIFY_FAILED)
 * otherwise, 2 for bad input.
 */
import { parseArgs } from 'node:util';
import { defaultThreads } from '../engine/runtime/session.js';
import { checkEncoderEngine, FEATURE_TOL, GRAD_TOL, KINK_TOL, verifyEncoder } from '../engine/verify.js';
import { QcbError } from '../errors.js';
import { applyProviderOption, type Command, PROVIDER_OPTION } from './types.js';

const usage = `qcbench encoder verify --onnx M.onnx --ref M.ref.json [--json] [--threads N] [--engine onnxruntime|tfjs]

Loads an exported encoder (input N×3×H×W → features N×D), computes its features on the reference input, then
L = sum(features * r) and its gradients through the engine's own backward graph (run in onnxruntime), and prints
the max relative error (max|got − ref| / max|ref|) of the features, grad_input and each weight gradient listed in
the reference file. With --engine tfjs the same imported graph runs in qcbench's TF.js interpreter instead and the
gradients come from TF.js's own autodiff: an independent check of the model that uses none of the engine's
gradient rules.

Options:
  --onnx FILE     the encoder model (.onnx)
  --ref FILE      the reference made by PyTorch for that model (.ref.json: input, features, r, grad_input,
                  weight_grads, each {shape, data: base64 float32}; scripts/torch/export_refs.py
                  writes it)
  --json          print the report as JSON on stdout
  --threads N     onnxruntime intra-op threads (default: all cores)
  --provider P    onnxruntime execution provider: cpu (default) or cuda (README "GPU")
  --engine E      onnxruntime (default): the training engine, our backward graph in onnxruntime;
                  tfjs: the TF.js interpreter with TF.js's autodiff, on @tensorflow/tfjs-node-gpu or
                  @tensorflow/tfjs-node where the user installed one (backend 'tensorflow'), else TF.js's pure-JS
                  CPU backend (backend 'cpu': single-threaded, seconds to minutes per model). --threads and
                  --provider apply to onnxruntime only. The report names the engine and backend that ran.

Exit codes: 0 all within tolerance (features ≤ ${FEATURE_TOL}, gradients ≤ ${GRAD_TOL}), 1 above tolerance
(QCB_VERIFY_FAILED), 2 bad input (missing file, malformed model or reference, unsupported operator).`;

export const command: Command = {
  name: 'verify',
  summary: "check an encoder's features and gradients against a PyTorch reference",
  usage,
  async run(args, ctx) {
    const { values } = parseArgs({
      args,
      options: {
        onnx: { type: 'string' },
        ref: { type: 'string' },
        json: { type: 'boolean', default: false },
        threads: { type: 'string' },
        ...PROVIDER_OPTION,
        engine: { type: 'string' },
      },
    });
    const engine = checkEncoderEngine(values.engine ?? 'onnxruntime');
    await applyProviderOption(values.provider);
    if (!values.onnx || !values.ref) {
      throw new QcbError('QCB_USAGE', `missing ${!values.onnx ? '--onnx' : '--ref'}`, {
        key: !values.onnx ? '--onnx' : '--ref',
        fix: 'qcbench encoder verify --onnx M.onnx --ref M.ref.json',
      });
    }
    const threads = values.threads === undefined ? defaultThreads() : Number(values.threads);
    if (!Number.isInteger(threads) || threads < 1) {
      throw new QcbError('QCB_USAGE', `--threads must be a positive integer, got '${values.threads}'`, {
        key: '--threads',
        value: values.threads,
        allowed: 'a positive integer',
      });
    }
    const r = await verifyEncoder(values.onnx, values.ref, { intraOpNumThreads: threads }, { engine });
    if (values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else {
      const lines = [
        `model      ${r.model}`,
        `reference  ${r.reference}`,
        `engine     ${r.engine} (backend ${r.backend})`,
        ...r.items.map(
          (i) =>
            `${i.ok ? 'ok  ' : 'FAIL'}  ${i.name.padEnd(48)} [${i.shape.join('×')}]  rel ${i.relError.toExponential(2)}  (tol ${i.tolerance})`,
        ),
        `${r.ok ? 'PASS' : 'FAIL'}  features ${r.features.toExponential(2)}, grad_input ${r.gradInput.toExponential(2)}, weights ${r.weights.toExponential(2)}  (${r.seconds.toFixed(2)} s)`,
      ];
      if (!r.ok && r.nearKinks.length > 0) {
        const k = r.nearKinks[0];
        lines.push(
          `note  ${r.nearKinks.length} ReLU input(s) lie within ${KINK_TOL} of 0 (smallest ${k.minAbsInput.toExponential(1)} at '${k.node}'): float32 rounding can flip the ReLU mask there, so gradient differences may come from the reference input, not the engine; verify with another input to tell.`,
        );
      }
      if (!r.ok && r.nearTies.length > 0) {
        const t = r.nearTies[0];
        const windows = r.nearTies.reduce((a, x) => a + x.windows, 0);
        lines.push(
          `note  ${windows} MaxPool window(s) in ${r.nearTies.length} node(s) have their two largest values within ${KINK_TOL} (relative; smallest gap ${t.minRelGap.toExponential(1)} at '${t.node}'): float32 rounding decides which one is the max and gets the whole gradient, so gradient differences may come from the reference input, not the engine; verify with another input to tell.`,
        );
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    if (!r.ok) {
      const bad = r.items.filter((i) => !i.ok);
      const err = new QcbError(
        'QCB_VERIFY_FAILED',
        `${bad.length} of ${r.items.length} checks are above tolerance: ${bad.map((i) => `${i.name} ${i.relError.toExponential(2)}`).join(', ')}`,
        {
          file: r.model,
          key: bad[0].name,
          value: bad[0].relError,
          allowed: `features ≤ ${FEATURE_TOL}, gradients ≤ ${GRAD_TOL}`,
          fix:
            r.nearKinks.length > 0 || r.nearTies.length > 0
              ? `${[r.nearKinks.length > 0 ? `ReLU inputs within ${KINK_TOL} of 0` : '', r.nearTies.length > 0 ? 'MaxPool windows with near-equal maxima' : ''].filter(Boolean).join(' and ')} make the gradient ill-conditioned on this input (see the note); check with another reference input before reporting`
              : 'an operator of this model is computed or differentiated wrongly: report it with the model and reference files',
        },
      );
      ctx.log.error(err.format());
      return err.exitCode;
    }
    return 0;
  },
};
