#!/usr/bin/env python3
"""PyTorch baseline for `forget bench clip`: the OpenAI CLIP ViT-B/32 architecture
(pre-LN blocks, nn.MultiheadAttention, QuickGELU, causal text mask over all 77
positions, EOT pooling), random weights, float32 on the CPU. Written here from
the architecture description in docs/engine.md; it only times, it checks nothing.

Usage: python3 bench/torch_clip.py [--batch 16] [--iters 5] [--threads 2] [--json]
Run with Debian's python3-torch (/usr/bin/python3)."""
import argparse, json, os, statistics, time

import torch
from torch import nn


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, width, heads, mask=None):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), QuickGELU(), nn.Linear(4 * width, width))
        self.mask = mask

    def forward(self, x):  # x: [seq, batch, width], as in OpenAI's code
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=self.mask)[0]
        return x + self.mlp(self.ln_2(x))


class Clip(nn.Module):
    def __init__(self, embed=512, res=224, patch=32, vw=768, vl=12, vh=12, ctx=77, vocab=49408, tw=512, tl=12, th=8):
        super().__init__()
        grid = res // patch
        self.conv1 = nn.Conv2d(3, vw, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(vw) * vw ** -0.5)
        self.vpos = nn.Parameter(torch.randn(grid * grid + 1, vw) * vw ** -0.5)
        self.ln_pre, self.ln_post = nn.LayerNorm(vw), nn.LayerNorm(vw)
        self.vblocks = nn.Sequential(*[Block(vw, vh) for _ in range(vl)])
        self.vproj = nn.Parameter(torch.randn(vw, embed) * vw ** -0.5)
        mask = torch.full((ctx, ctx), float("-inf")).triu_(1)
        self.tok = nn.Embedding(vocab, tw)
        self.tpos = nn.Parameter(torch.randn(ctx, tw) * 0.01)
        self.tblocks = nn.Sequential(*[Block(tw, th, mask) for _ in range(tl)])
        self.ln_final = nn.LayerNorm(tw)
        self.tproj = nn.Parameter(torch.randn(tw, embed) * tw ** -0.5)

    def encode_image(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], dim=1) + self.vpos
        x = self.vblocks(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.vproj

    def encode_text(self, ids):
        x = (self.tok(ids) + self.tpos).permute(1, 0, 2)
        x = self.ln_final(self.tblocks(x).permute(1, 0, 2))
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.tproj


def timed(fn, iters):
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    m = Clip().eval()
    img = torch.randn(a.batch, 3, 224, 224)
    ids = torch.randint(1000, 41000, (a.batch, 77))
    ids[:, 0], ids[:, -1] = 49406, 49407
    with torch.no_grad():
        ti = timed(lambda: m.encode_image(img), a.iters)
        tt = timed(lambda: m.encode_text(ids), a.iters)
    res = {"torch": torch.__version__, "threads": a.threads, "batch": a.batch,
           "images_per_s": a.batch / ti, "texts77_per_s": a.batch / tt,
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")}
    if a.json:
        print(json.dumps(res))
    else:
        print("pytorch %s (%d threads, OPENBLAS_CORETYPE=%s): images %.1f /s, texts (77 tokens, as OpenAI's code "
              "always computes) %.1f /s" % (res["torch"], a.threads, res["openblas_coretype"] or "auto",
                                            res["images_per_s"], res["texts77_per_s"]))


if __name__ == "__main__":
    main()
