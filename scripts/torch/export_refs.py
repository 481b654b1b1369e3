# Optional cross-check, not a project dependency: exports torchvision CNN encoders as ../shared/fixtures/onnx were made
# (torch.onnx.export, opset 13, eval mode so BatchNorm folds into the convs, classifier removed, seeded random weights)
# and writes <name>.ref.json in the fixtures' format: input, features, r, grad_input of L = sum(features * r), and
# dL/dW for three conv weights matched to the ONNX initializers by value (a BN-folded weight W' = W·γ/σ gets
# dL/dW' = dL/dW·σ/γ). Then: npx qcbench encoder verify --onnx OUT/<name>.onnx --ref OUT/<name>.ref.json
# Needs Debian's python3-torch, python3-torchvision and python3-onnx (/usr/bin/python3).
# Usage: [OPSET=17] [SEED=0] /usr/bin/python3 scripts/torch/export_refs.py OUT_DIR mobilenet_v2 efficientnet_b0 densenet121 …
import base64, json, sys, torch, torchvision, onnx, numpy as np
from onnx import numpy_helper
torch.manual_seed(int(__import__('os').environ.get('SEED', '0')))
def enc(t):
    a = t.detach().cpu().numpy().astype('<f4')
    return {"shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}
class Feat(torch.nn.Module):
    def __init__(self, m, name):
        super().__init__(); self.m = m; self.name = name
        if hasattr(m, 'fc'): m.fc = torch.nn.Identity()
    def forward(self, x):
        m = self.m
        if self.name.startswith('densenet'):
            f = torch.nn.functional.relu(m.features(x)); return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(f, 1), 1)
        if hasattr(m, 'fc'):
            return m(x)
        if self.name.startswith('mnasnet'):
            return m.layers(x).mean([2, 3])
        # VGG's avgpool is adaptive to 7×7 (not exportable from small inputs): global average pooling as the fixtures
        f = m.features(x); f = m.avgpool(f) if hasattr(m, 'avgpool') and not self.name.startswith('vgg') else torch.nn.functional.adaptive_avg_pool2d(f, 1)
        return torch.flatten(f, 1)
out_dir, names = sys.argv[1], sys.argv[2:]
for name in names:
    m = getattr(torchvision.models, name)(weights=None).eval()
    # give BN non-trivial statistics so folding is exercised
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(0.5, 1.5); mod.weight.uniform_(0.5, 1.5); mod.bias.uniform_(-0.1, 0.1)
    f = Feat(m, name).eval()
    x = torch.randn(2, 3, 64, 64)
    path = f'{out_dir}/{name}.onnx'
    torch.onnx.export(f, x, path, opset_version=int(__import__('os').environ.get('OPSET', '13')), input_names=['input'], output_names=['features'],
                      dynamic_axes={'input': {0: 'N'}, 'features': {0: 'N'}})
    xg = x.clone().requires_grad_(True)
    feats = f(xg); r = torch.randn_like(feats)
    (feats * r).sum().backward()
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    mods = list(m.named_modules())
    wg = {}
    for k, (mn, mod) in enumerate(mods):
        if not isinstance(mod, torch.nn.Conv2d) or mod.weight.grad is None: continue
        W = mod.weight.detach().numpy(); G = mod.weight.grad.numpy()
        cands = [(W, G)]
        nxt = next((mm for _, mm in mods[k + 1:k + 3] if isinstance(mm, torch.nn.BatchNorm2d)), None)
        if nxt is not None and nxt.num_features == W.shape[0]:
            s = (nxt.weight / torch.sqrt(nxt.running_var + nxt.eps)).detach().numpy().reshape(-1, 1, 1, 1)
            cands.append((W * s, G / s))
        for Wc, Gc in cands:
            hit = next((n for n, v in inits.items() if v.shape == Wc.shape and np.allclose(v, Wc, rtol=1e-5, atol=1e-7)), None)
            if hit: wg[hit] = enc(torch.from_numpy(Gc.astype('float32'))); break
    keys = list(wg)
    pick = [keys[0], keys[len(keys) // 2], keys[-1]] if len(keys) >= 3 else keys
    ref = {"input": enc(x), "features": enc(feats), "r": enc(r), "grad_input": enc(xg.grad), "weight_grads": {k: wg[k] for k in dict.fromkeys(pick)}}
    json.dump(ref, open(f'{out_dir}/{name}.ref.json', 'w'))
    print(name, 'features', tuple(feats.shape), 'matched convs', len(keys), 'of', sum(isinstance(mm, torch.nn.Conv2d) for _, mm in mods), flush=True)
