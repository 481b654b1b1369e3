import { importOnnx } from './src/engine/onnx/import.js';
const g = importOnnx('../shared/fixtures/onnx/convnext_small_tv.onnx');
for (const [k, t] of g.initializers) if (t.dims.length && t.data.length > 1) console.log(k, t.dims.join('x'));
console.log(g.nodes.slice(0, 40).map(n => `${n.opType} ${n.inputs.join(',')} -> ${n.outputs}`).join('\n'));
