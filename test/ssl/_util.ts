/** Helpers for the SSL tests: evaluate a method's loss on given embeddings, or descend it. */
import { GraphBuilder, fromArray, randn } from '../../src/engine/ir/builder.js';
import type { Tensor } from '../../src/engine/ir/graph.js';
import { loadSession, toOrt } from '../../src/engine/runtime/session.js';
import { Trainer } from '../../src/engine/train/trainer.js';
import { Sgd } from '../../src/engine/train/optim/sgd.js';
import type { SslHyper, SslLoss, SslMethod } from '../../src/ssl/types.js';

/** Builds the loss graph on inputs (or parameters) z1, z2 of N×D. */
export function lossGraph(method: SslMethod, hp: SslHyper, n: number, dim: number, init?: { z1: Tensor; z2: Tensor }) {
  const b = new GraphBuilder(`${method.name}_loss`);
  const z1 = init ? b.param('z1', init.z1) : b.input('z1', 'float32', [n, dim]);
  const z2 = init ? b.param('z2', init.z2) : b.input('z2', 'float32', [n, dim]);
  const l: SslLoss = method.buildLoss({ b, z1, z2, n, dim, hp, seed: 1 });
  b.output(l.loss, 'loss');
  for (const o of l.outputs) b.output(o);
  return { graph: b.build(), loss: l };
}

/** Evaluates the loss at z1, z2 (row-major N×D) with extra feeds. */
export async function evalLoss(
  method: SslMethod,
  hp: SslHyper,
  n: number,
  dim: number,
  z1: ArrayLike<number>,
  z2: ArrayLike<number>,
  feeds: Record<string, Tensor> = {},
): Promise<number> {
  const { graph } = lossGraph(method, hp, n, dim);
  const s = await loadSession(graph, { noCache: true });
  const f: Record<string, ReturnType<typeof toOrt>> = {
    z1: toOrt(fromArray(z1, [n, dim])),
    z2: toOrt(fromArray(z2, [n, dim])),
  };
  for (const [k, t] of Object.entries(feeds)) f[k] = toOrt(t);
  const out = await s.run(f, ['loss']);
  return (out.loss.data as Float32Array)[0];
}

/** Runs `steps` SGD steps on z1, z2 (random init) and returns the loss curve. */
export async function descend(
  method: SslMethod,
  hp: SslHyper,
  n: number,
  dim: number,
  steps: number,
  lr: number,
  feeds: (step: number) => Record<string, Tensor> = () => ({}),
): Promise<number[]> {
  const { graph, loss } = lossGraph(method, hp, n, dim, { z1: randn([n, dim], 1, 11), z2: randn([n, dim], 1, 12) });
  const trainer = await Trainer.create(
    {
      graph,
      loss: 'loss',
      optimizer: new Sgd({ momentum: 0.9 }),
      trainable: ['z1', 'z2', ...loss.params],
      bnTraining: false,
    },
    { noCache: true },
  );
  const curve: number[] = [];
  for (let i = 0; i < steps; i++) curve.push((await trainer.step(feeds(i), lr)).loss);
  return curve;
}
