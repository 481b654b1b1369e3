/**
 * Opset upgrade of a graph, in place. Backward graphs use opset-17 operators (ScatterElements with `reduction`,
 * opset 16), so a model exported at opset 13 (PyTorch's default) must be raised before autodiff appends nodes.
 * From opset 13 on, raising to 17 changes no semantics of the operators exporters emit; older graphs get the
 * attribute → input moves of opsets 10–13 (Slice, Pad, Clip, Dropout, Squeeze, Unsqueeze, ReduceSum, Split).
 */
import { QcbError } from '../../errors.js';
import { GraphBuilder } from './builder.js';
import type { Attr, Graph } from './graph.js';

function ints(a: Attr | undefined): number[] | undefined {
  return a && a.type === 'ints' ? a.value : undefined;
}

/** Raises `graph.opset` to `target` (no-op when already ≥ target). Shapes are not re-inferred. */
export function upgradeOpset(graph: Graph, target = 17): void {
  const from = graph.opset;
  if (from >= target) return;
  if (target > 17) {
    // opset 18 moved Reduce* axes to inputs and changed Pad/Split; the engine targets 17
    throw new QcbError('QCB_INTERNAL', `upgrade to opset ${target} is not implemented (engine targets 17)`);
  }
  const b = new GraphBuilder(graph);
  for (const n of graph.nodes) {
    if (n.domain !== '') continue;
    const take = (k: string) => {
      const v = n.attrs[k];
      delete n.attrs[k];
      return v;
    };
    switch (n.opType) {
      case 'Slice':
        if (from < 10) {
          const starts = ints(take('starts')) ?? [];
          const ends = ints(take('ends')) ?? [];
          const axes = ints(take('axes'));
          n.inputs = [n.inputs[0], b.ints(starts), b.ints(ends), ...(axes ? [b.ints(axes)] : [])];
        }
        break;
      case 'Pad':
        if (from < 11) {
          const pads = ints(take('pads')) ?? [];
          const v = take('value');
          const val = v && v.type === 'float' ? v.value : 0;
          n.inputs = [n.inputs[0], b.ints(pads), b.scalar(val)];
        }
        break;
      case 'Clip':
        if (from < 11) {
          const mn = take('min');
          const mx = take('max');
          n.inputs = [n.inputs[0], mn ? b.scalar(mn.value as number) : '', mx ? b.scalar(mx.value as number) : ''];
          while (n.inputs.length > 1 && n.inputs[n.inputs.length - 1] === '') n.inputs.pop();
        }
        break;
      case 'Squeeze':
      case 'Unsqueeze':
      case 'ReduceSum':
        if (from < 13) {
          const axes = ints(take('axes'));
          if (axes) n.inputs = [n.inputs[0], b.ints(axes)];
        }
        break;
      case 'Split':
        if (from < 13) {
          const split = ints(take('split'));
          if (split) n.inputs = [n.inputs[0], b.ints(split)];
        }
        break;
      case 'Dropout':
        // opset 12 moved ratio to an input (and training_mode); before 7 there was is_test
        if (from < 12) {
          const r = take('ratio');
          delete n.attrs.is_test;
          if (r && r.type === 'float') n.inputs = [n.inputs[0], b.scalar(r.value)];
        }
        break;
      case 'BatchNormalization':
        // opset < 14 could list training outputs (saved mean/var); inference graphs use only Y
        if (from < 14) {
          n.outputs = [n.outputs[0]];
          delete n.attrs.spatial;
          delete n.attrs.is_test;
        }
        break;
    }
  }
  graph.opset = target;
}
