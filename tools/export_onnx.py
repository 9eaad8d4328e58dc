#!/usr/bin/env python3
"""Exports the PyTorch reference CLIP of bench/torch_clip.py (ViT-B/32 shape, the seeded random
weights torch_clip.py times) to ONNX for the ONNX Runtime peer in `make bench`: one file per tower,
fixed batch, with torch.onnx.export (no `onnx` package needed). Written here.

Usage: /usr/bin/python3 tools/export_onnx.py [--batch 16] [--out build/onnx]"""
import argparse, os, sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from torch_clip import Clip  # noqa: E402


class Tower(torch.nn.Module):
    """One encoder of the model as a module of its own (torch.onnx.export exports a forward)."""

    def __init__(self, m, encode):
        super().__init__()
        self.m, self.encode = m, encode

    def forward(self, x):
        return getattr(self.m, self.encode)(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", default="build/onnx")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    m = Clip().eval()
    img = torch.randn(a.batch, 3, 224, 224)
    ids = torch.randint(1000, 41000, (a.batch, 77))
    ids[:, 0], ids[:, -1] = 49406, 49407
    for name, tower, x, inp in (("image", Tower(m, "encode_image"), img, "pixels"), ("text", Tower(m, "encode_text"), ids, "ids")):
        path = os.path.join(a.out, "clip-%s-b%d.onnx" % (name, a.batch))
        tmp = path + ".tmp"
        with torch.no_grad():
            torch.onnx.export(tower, (x,), tmp, input_names=[inp], output_names=["features"], opset_version=17,
                              do_constant_folding=True)
        os.replace(tmp, path)  # never a half-written model for the bench to time
        print(path)


if __name__ == "__main__":
    main()
