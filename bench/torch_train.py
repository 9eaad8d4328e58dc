#!/usr/bin/env python3
"""PyTorch baseline for training throughput: the same CLIP architecture as
bench/torch_clip.py in the zoo's fmnist-s shape (28px grey-as-RGB images,
patch 4, width 128, 4+4 layers, 4 heads, embed 128), symmetric InfoNCE,
AdamW, batch 128, float32 on the CPU. Captions are ~10 BPE tokens padded to
77, as OpenAI's code feeds them. Prints images/s (median over steps).

Usage: python3 bench/torch_train.py [--batch 128] [--steps 10] [--threads 2] [--json]"""
import argparse, json, os, statistics, sys, time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_clip import Clip  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    m = Clip(embed=128, res=28, patch=4, vw=128, vl=4, vh=4, ctx=77, vocab=49408, tw=128, tl=4, th=4)
    scale = torch.nn.Parameter(torch.tensor(2.6592))
    opt = torch.optim.AdamW(list(m.parameters()) + [scale], lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
    img = torch.randn(a.batch, 3, 28, 28)
    ids = torch.zeros(a.batch, 77, dtype=torch.long)
    ids[:, 0] = 49406
    ids[:, 1:10] = torch.randint(1000, 40000, (a.batch, 9))
    ids[:, 10] = 49407
    labels = torch.arange(a.batch)
    times = []
    for step in range(a.steps + 1):
        t0 = time.perf_counter()
        fi = F.normalize(m.encode_image(img), dim=-1)
        ft = F.normalize(m.encode_text(ids), dim=-1)
        logits = scale.exp() * fi @ ft.t()
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(m.parameters()) + [scale], 1.0)
        opt.step()
        if step:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    res = {"torch": torch.__version__, "threads": a.threads, "batch": a.batch,
           "images_per_s": a.batch / statistics.median(times),
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")}
    print(json.dumps(res) if a.json else "pytorch %s training, fmnist-s, batch %d, %d threads: %.1f images/s"
          % (res["torch"], a.batch, a.threads, res["images_per_s"]))


if __name__ == "__main__":
    main()
