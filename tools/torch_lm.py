#!/usr/bin/env python3
"""PyTorch reference of forget's Llama-style decoder (src/models/lm.c): the structure of Hugging
Face's LlamaForCausalLM written out in plain torch (RMSNorm, rotary positions in the rotate-half
convention, causal attention, SwiGLU, no biases, a final RMSNorm and an untied or tied head), under
HF's key names. Two jobs:

  ref    writes tests/ref/lm-tiny.safetensors (and lm-gqa.safetensors: grouped K/V heads, a tied
         head): seeded weights (under their HF names, so the file
         itself is a checkpoint lm_load reads), two packed sequences (positions
         restart per sequence), their targets (-1: no loss), and in float64 the head's logits on
         the target rows, the mean cross-entropy, the gradient of the input rows and of every
         parameter; tests/models/test_lm.c matches them to 1e-4.
  bench  on the lm-s shape: training tokens/s (AdamW, median over steps) and decoding tokens/s
         with a key/value cache and without one (the whole prefix again for each token): the
         baseline of `forget bench lm`.

Usage: python3 tools/torch_lm.py ref [--out PATH]
       python3 tools/torch_lm.py bench [--batch 8] [--seq 256] [--steps 6] [--threads 2]
                                       [--prompt 32] [--new 64] [--json]
Needs Debian's python3-torch; CI does not (the reference file is committed)."""
import argparse, json, math, os, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_refs import write_safetensors  # noqa: E402

import torch


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, base):
    # x [T, H, hd]; pairs (i, i + hd/2) rotated by pos * base^(-2i/hd)
    hd = x.shape[-1]
    half = hd // 2
    inv = base ** (-torch.arange(0, half, dtype=torch.float64) * 2.0 / hd)
    ang = pos[:, None].to(torch.float64) * inv[None, :]
    c, s = torch.cos(ang).to(x.dtype)[:, None, :], torch.sin(ang).to(x.dtype)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)


class Llama:
    """Parameters in a dict under HF's names; forward over packed sequences."""

    def __init__(self, cfg, dtype, gen):
        self.c = cfg
        V, W, Hd, L = cfg["vocab"], cfg["width"], cfg["hidden"], cfg["layers"]
        self.p = {}

        def n(name, *shape, std=0.02):
            self.p[name] = (torch.randn(*shape, generator=gen, dtype=torch.float64) * std).to(dtype)

        def ones(name, dim):
            # not exactly one, so the norms' weight gradients are exercised
            self.p[name] = (1.0 + 0.1 * torch.randn(dim, generator=gen, dtype=torch.float64)).to(dtype)

        std = cfg.get("std", 0.02)
        n("model.embed_tokens.weight", V, W, std=std)
        for l in range(L):
            pre = f"model.layers.{l}."
            ones(pre + "input_layernorm.weight", W)
            kvw = W // cfg["heads"] * cfg.get("kv_heads", cfg["heads"])
            for k in "qkvo":
                n(pre + f"self_attn.{k}_proj.weight", kvw if k in "kv" else W, W, std=std)
            ones(pre + "post_attention_layernorm.weight", W)
            n(pre + "mlp.gate_proj.weight", Hd, W, std=std)
            n(pre + "mlp.up_proj.weight", Hd, W, std=std)
            n(pre + "mlp.down_proj.weight", W, Hd, std=std)
        ones("model.norm.weight", W)
        if not cfg["tied"]:
            n("lm_head.weight", V, W, std=std)
        for t in self.p.values():
            t.requires_grad_(True)

    def head(self):
        return self.p["model.embed_tokens.weight" if self.c["tied"] else "lm_head.weight"]

    def block(self, l, x, pos, mask, cache=None):
        c, p, pre = self.c, self.p, f"model.layers.{l}."
        H, W = c["heads"], c["width"]
        hd = W // H
        h = rmsnorm(x, p[pre + "input_layernorm.weight"], c["eps"])
        q = (h @ p[pre + "self_attn.q_proj.weight"].T).view(-1, H, hd)
        KV = c.get("kv_heads", H)
        # grouped K/V heads: kv head j serves query heads j*rep .. (j+1)*rep-1 (HF's repeat_kv)
        k = (h @ p[pre + "self_attn.k_proj.weight"].T).view(-1, KV, hd).repeat_interleave(H // KV, dim=1)
        v = (h @ p[pre + "self_attn.v_proj.weight"].T).view(-1, KV, hd).repeat_interleave(H // KV, dim=1)
        q, k = rope(q, pos, c["rope_base"]), rope(k, pos, c["rope_base"])
        if cache is not None:
            if l in cache:
                k = torch.cat([cache[l][0], k], 0)
                v = torch.cat([cache[l][1], v], 0)
            cache[l] = (k, v)
        att = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        if mask is not None:
            att = att.masked_fill(~mask[None], float("-inf"))
        o = torch.einsum("hts,shd->thd", att.softmax(-1), v).reshape(-1, W)
        x = x + o @ p[pre + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, p[pre + "post_attention_layernorm.weight"], c["eps"])
        g = torch.nn.functional.silu(h @ p[pre + "mlp.gate_proj.weight"].T) * (h @ p[pre + "mlp.up_proj.weight"].T)
        return x + g @ p[pre + "mlp.down_proj.weight"].T

    def forward_batched(self, x):
        """x [B, S, W], every sequence full length: the usual batched causal forward (what PyTorch users
        run; the packed form above is for the reference's mixed lengths)."""
        c, p = self.c, self.p
        B, S, W = x.shape
        H = c["heads"]
        hd = W // H
        KV = c.get("kv_heads", H)
        pos = torch.arange(S)
        mask = torch.ones(S, S, dtype=torch.bool).tril()
        for l in range(c["layers"]):
            pre = f"model.layers.{l}."
            h = rmsnorm(x, p[pre + "input_layernorm.weight"], c["eps"])
            q = (h @ p[pre + "self_attn.q_proj.weight"].T).view(B * S, H, hd)
            k = (h @ p[pre + "self_attn.k_proj.weight"].T).view(B * S, KV, hd)
            v = (h @ p[pre + "self_attn.v_proj.weight"].T).view(B, S, KV, hd)
            q = rope(q, pos.repeat(B), c["rope_base"]).view(B, S, H, hd).transpose(1, 2)
            k = rope(k, pos.repeat(B), c["rope_base"]).view(B, S, KV, hd).transpose(1, 2)
            v = v.transpose(1, 2)
            if KV != H:
                k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            o = (att @ v).transpose(1, 2).reshape(B, S, W)
            x = x + o @ p[pre + "self_attn.o_proj.weight"].T
            h = rmsnorm(x, p[pre + "post_attention_layernorm.weight"], c["eps"])
            g = torch.nn.functional.silu(h @ p[pre + "mlp.gate_proj.weight"].T) * (h @ p[pre + "mlp.up_proj.weight"].T)
            x = x + g @ p[pre + "mlp.down_proj.weight"].T
        return rmsnorm(x, p["model.norm.weight"], c["eps"])

    def forward_rows(self, x, lens):
        # block-diagonal causal mask over packed sequences, positions restarting per sequence
        T = x.shape[0]
        seq = torch.cat([torch.full((n,), i) for i, n in enumerate(lens)])
        pos = torch.cat([torch.arange(n) for n in lens])
        mask = (seq[:, None] == seq[None, :]) & (pos[None, :] <= pos[:, None])
        assert mask.shape == (T, T)
        for l in range(self.c["layers"]):
            x = self.block(l, x, pos, mask)
        return rmsnorm(x, self.p["model.norm.weight"], self.c["eps"])


def ref(a):
    one_ref(a.out, dict(vocab=16, width=8, layers=2, heads=2, hidden=12, rope_base=10000.0, eps=1e-5, tied=False,
                        std=0.3), 1234)
    # grouped K/V heads (4 query heads, 2 key/value heads) and a tied head
    one_ref(a.out.replace("lm-tiny", "lm-gqa"), dict(vocab=16, width=16, layers=2, heads=4, kv_heads=2, hidden=12,
                                                     rope_base=500000.0, eps=1e-6, tied=True, std=0.3), 99)


def one_ref(out_path, cfg, seed):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(seed)
    m = Llama(cfg, torch.float64, gen)
    lens = [5, 4]
    T = sum(lens)
    ids = torch.randint(0, cfg["vocab"], (T,), generator=gen)
    targets = torch.randint(0, cfg["vocab"], (T,), generator=gen)
    targets[[0, 6]] = -1  # rows without a loss
    emb = m.p["model.embed_tokens.weight"]
    rows = emb[ids]  # the input rows, as lm_batch_begin lays them
    rows.retain_grad()
    xf = m.forward_rows(rows, lens)
    sel = targets >= 0
    logits = xf[sel] @ m.head().T
    loss = torch.nn.functional.cross_entropy(logits, targets[sel])
    loss.backward()
    out = {k: v.detach() for k, v in m.p.items()}  # under their own names: lm_load reads the file
    out["ids"] = ids.to(torch.float64)
    out["targets"] = targets.to(torch.float64)
    out["lens"] = torch.tensor(lens, dtype=torch.float64)
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    out["d_rows"] = rows.grad.detach()
    for k, v in m.p.items():
        out[f"g.{k}"] = v.grad.detach()
    meta = {"lm.heads": str(cfg["heads"]), "lm.rope_theta": str(cfg["rope_base"]), "lm.eps": str(cfg["eps"]),
            "producer": "tools/torch_lm.py ref (float64)"}
    if "kv_heads" in cfg:
        meta["lm.kv_heads"] = str(cfg["kv_heads"])
    write_safetensors(out_path, out, meta)
    print(f"wrote {out_path}: loss {loss.item():.6f}, {len(out)} tensors")


def bench(a):
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    cfg = dict(vocab=2048, width=256, layers=4, heads=4, hidden=688, rope_base=10000.0, eps=1e-5, tied=True)
    m = Llama(cfg, torch.float32, gen)
    params = list(m.p.values())
    opt = torch.optim.AdamW(params, lr=1e-3)
    lens = [a.seq] * a.batch
    T = sum(lens)
    ids = torch.randint(0, cfg["vocab"], (T,), generator=gen)
    tg = torch.randint(0, cfg["vocab"], (T,), generator=gen)
    times = []
    for _ in range(a.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        xf = m.forward_batched(m.p["model.embed_tokens.weight"][ids].view(a.batch, a.seq, -1))
        loss = torch.nn.functional.cross_entropy((xf @ m.head().T).view(T, -1), tg)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    train_tps = T / statistics.median(times[1:])
    with torch.no_grad():
        prompt = torch.randint(0, cfg["vocab"], (a.prompt,), generator=gen)

        def decode(cached):
            t0 = time.perf_counter()
            seq = prompt.clone()
            cache = {} if cached else None
            x = m.p["model.embed_tokens.weight"][seq]
            pos = torch.arange(len(seq))
            mask = pos[None, :] <= pos[:, None]
            for _ in range(a.new):
                if cached:
                    for l in range(cfg["layers"]):
                        x = m.block(l, x, pos, mask, cache)
                else:
                    full = m.p["model.embed_tokens.weight"][seq]
                    p = torch.arange(len(seq))
                    mk = p[None, :] <= p[:, None]
                    x = full
                    for l in range(cfg["layers"]):
                        x = m.block(l, x, p, mk)
                h = rmsnorm(x[-1:], m.p["model.norm.weight"], cfg["eps"])
                nxt = int((h @ m.head().T).argmax())
                seq = torch.cat([seq, torch.tensor([nxt])])
                x = m.p["model.embed_tokens.weight"][seq[-1:]]
                pos = torch.tensor([len(seq) - 1])
                mask = None
            return a.new / (time.perf_counter() - t0)

        dec_cache = statistics.median([decode(True) for _ in range(3)])
        dec_full = statistics.median([decode(False) for _ in range(2)])
    r = {"train_tokens_per_s": train_tps, "decode_tokens_per_s": dec_cache, "decode_nocache_tokens_per_s": dec_full,
         "threads": a.threads, "batch": a.batch, "seq": a.seq, "prompt": a.prompt, "new": a.new,
         "torch": torch.__version__}
    print(json.dumps(r) if a.json else
          f"torch: train {train_tps:.0f} tok/s, decode {dec_cache:.1f} tok/s cached, {dec_full:.1f} tok/s without")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job", choices=["ref", "bench"])
    ap.add_argument("--out", default="tests/ref/lm-tiny.safetensors")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    ref(a) if a.job == "ref" else bench(a)


if __name__ == "__main__":
    main()
