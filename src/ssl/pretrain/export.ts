/**
 * The pretrained encoder's export: the ResNet18 backbone alone (torchvision parameter names, BN in inference mode)
 * with the trained weights, as an ONNX model `input` N×3×S×S → `features` N×512 carrying qcbench metadata (kind
 * `ssl`, the preprocessing, the method and settings hash) that src/encoders/registry.ts reads back.
 */
import { resnet18Graph } from '../../encoders/resnet18.js';
import type { Graph, Tensor } from '../../engine/ir/graph.js';
import { exportOnnx } from '../../engine/onnx/export.js';
import { writeFileAtomic } from '../../util/fs.js';
import { SSL_PREPROCESS } from './options.js';

/** The backbone (torchvision names) as a standalone inference graph with the given weights. */
export function backboneGraph(params: Map<string, Tensor>, seed: number): Graph {
  const { graph } = resnet18Graph({ seed });
  for (const k of [...graph.initializers.keys()]) {
    const t = params.get(k);
    if (t) graph.initializers.set(k, t);
  }
  return graph;
}

/** Writes the backbone as `input` N×3×S×S → `features` N×512 ONNX with qcbench metadata. */
export function exportBackbone(
  path: string,
  params: Map<string, Tensor>,
  seed: number,
  metadata: Record<string, string>,
): void {
  const g = backboneGraph(params, seed);
  writeFileAtomic(
    path,
    exportOnnx(g, {
      metadata: {
        'qcbench.kind': 'ssl',
        'qcbench.preprocess.mean': JSON.stringify(SSL_PREPROCESS.mean),
        'qcbench.preprocess.std': JSON.stringify(SSL_PREPROCESS.std),
        ...metadata,
      },
    }),
  );
}
