#!/usr/bin/env python3
"""PyTorch reference of forget's CIFAR ResNet (src/models/resnet.c): the same structure and key
names (torchvision's BasicBlock order, cosine heads, the optional standardising layer for LSF's
feature codes). Two jobs:

  ref    writes tests/ref/resnet-tiny.safetensors: seeded weights, an input, codes, and the
         outputs and gradients of three passes (training mode with a code, eval mode without,
         training mode from the code alone) that tests/models/test_resnet.c matches to 1e-4.
  bench  training throughput (images/s, median over steps) of resnet-20 with one cosine head,
         AM-softmax, SGD with momentum: the baseline of `forget bench resnet`.

Usage: python3 tools/torch_resnet.py ref [--out PATH]
       python3 tools/torch_resnet.py bench [--batch 128] [--steps 10] [--threads 2] [--res 28]
                                            [--in-ch 1] [--json]
Needs Debian's python3-torch; CI does not (the reference file is committed)."""
import argparse, json, os, statistics, struct, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_refs import write_safetensors  # noqa: E402

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (self.downsample(x) if self.downsample is not None else x))


def standardise(v):
    """Instance normalisation without affine: forget's groupnorm with one channel a group."""
    m = v.mean(dim=(2, 3), keepdim=True)
    var = v.var(dim=(2, 3), unbiased=False, keepdim=True)
    return (v - m) / torch.sqrt(var + 1e-5)


class ResNet(nn.Module):
    def __init__(self, in_ch, width, n, heads, code_layer=-1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.n, self.code_layer = n, code_layer
        cin = width
        for s in range(3):
            blocks = []
            for k in range(n):
                cout = width << s
                blocks.append(Block(cin, cout, 2 if (s > 0 and k == 0) else 1))
                cin = cout
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.heads = nn.ModuleList([nn.Linear(4 * width, k, bias=False) for k in heads])

    def blocks(self):
        return [b for s in range(3) for b in getattr(self, "layer%d" % (s + 1))]

    def features(self, x, code=None, kappa=1.0, code_only=False):
        L = self.code_layer

        def std(h):
            return standardise(h) + (kappa * code if code is not None else 0)

        if code_only:  # a standardised feature of no image is zero: the code alone enters at L
            h, start = kappa * code, L
        else:
            h, start = F.relu(self.bn1(self.conv1(x))), 0
            if L == 0:
                h = std(h)
        for l, b in enumerate(self.blocks(), 1):
            if l <= start:
                continue
            h = b(h)
            if l == L:
                h = std(h)
        return F.normalize(h.mean(dim=(2, 3)), dim=1)

    def head(self, feat, h):
        return feat @ F.normalize(self.heads[h].weight, dim=1).t()


def ref(out):
    torch.manual_seed(7)
    B, in_ch, res, width, n, heads, L, kappa = 2, 3, 8, 2, 1, [3, 2], 1, 0.5
    m = ResNet(in_ch, width, n, heads, L).double()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():  # every weight and buffer random, variances positive
        for name, t in list(m.named_parameters()) + list(m.named_buffers()):
            if name.endswith("num_batches_tracked"):
                continue
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64) * 0.5)
            if name.endswith("running_var"):
                t.copy_(0.5 + t.abs())
    res_L = res if L <= n else (res + 1) // 2
    C = width << ((L - 1) // n if L > 0 else 0)
    x = torch.randn(B, in_ch, res, res, generator=g, dtype=torch.float64)
    code = standardise(torch.randn(B, C, res_L, res_L, generator=g, dtype=torch.float64))
    R = [torch.randn(B, k, generator=g, dtype=torch.float64) for k in heads]
    t = {"x": x, "code": code}
    for i, r in enumerate(R):
        t["R.%d" % i] = r
    sd0 = {k: v.clone() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    for k, v in sd0.items():
        t["w." + k] = v
    for case in ("train", "eval", "code_only"):
        m.load_state_dict(sd0, strict=False)
        m.train(case != "eval")
        m.zero_grad()
        xx = x.clone().requires_grad_(True)
        feat = m.features(xx, code if case != "eval" else None, kappa, case == "code_only")
        loss = 0
        for h, r in enumerate(R):
            cos = m.head(feat, h)
            t["%s.cos.%d" % (case, h)] = cos
            loss = loss + (cos * r).sum()
        loss.backward()
        t["%s.feat" % case] = feat
        if case != "code_only":
            t["%s.dx" % case] = xx.grad.clone()
        for k, p in m.named_parameters():
            t["%s.grad.%s" % (case, k)] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
        if case == "train":
            for k, v in m.state_dict().items():
                if "running" in k:
                    t["train.after." + k] = v.clone()
    write_safetensors(out, t)
    print("wrote %s (%d tensors, %d bytes)" % (out, len(t), os.path.getsize(out)))


def bench(a):
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    m = ResNet(a.in_ch, 16, 3, [a.classes])
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, a.in_ch, a.res, a.res)
    y = torch.randint(0, a.classes, (a.batch,))
    times = []
    for step in range(a.steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad()
        cos = m.head(m.features(x), 0)
        logits = 30 * (cos - 0.35 * F.one_hot(y, a.classes))
        F.cross_entropy(logits, y).backward()
        opt.step()
        if step >= 2:
            times.append(time.perf_counter() - t0)
    ips = a.batch / statistics.median(times)
    r = {"torch": torch.__version__, "batch": a.batch, "threads": a.threads, "images_per_s": ips,
         "mkldnn": torch.backends.mkldnn.is_available()}
    print(json.dumps(r) if a.json else "PyTorch %s resnet-20 training: %.1f images/s (batch %d, %d threads)"
          % (torch.__version__, ips, a.batch, a.threads))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job", choices=["ref", "bench"])
    ap.add_argument("--out", default="tests/ref/resnet-tiny.safetensors")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--res", type=int, default=28)
    ap.add_argument("--in-ch", type=int, default=1)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.job == "ref":
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        ref(a.out)
    else:
        bench(a)


if __name__ == "__main__":
    sys.exit(main())
