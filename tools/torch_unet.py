#!/usr/bin/env python3
"""PyTorch reference of forget's Stable-Diffusion-shaped UNet (src/models/unet.c): the same
structure and the diffusers key names (UNet2DConditionModel with SD-1's CrossAttnDownBlock2D /
DownBlock2D / UNetMidBlock2DCrossAttn / CrossAttnUpBlock2D / UpBlock2D), written here from the
published architecture. Two jobs:

  ref    writes tests/ref/unet-tiny.safetensors: seeded weights (diffusers keys, the config in
         the metadata), an input, timesteps, a context, and the output and gradients of
         loss = sum(eps * R) with respect to the input, the context and every parameter, in
         float64; tests/models/test_unet.c matches them to 1e-4.
  bench  training images/s (eps-prediction MSE, AdamW) and DDIM sampling images/s (classifier-free
         guidance: two forwards a step) at a batch, medians over steps: the baseline of
         `forget bench unet`.

  ref-vae  the same for the autoencoder (src/models/vae.c): tests/ref/vae-tiny.safetensors, the
           encoder's moments and the decoder's output with their gradients.
  count    parameter counts of the named configs.

Usage: python3 tools/torch_unet.py ref [--out PATH]
       python3 tools/torch_unet.py ref-vae
       python3 tools/torch_unet.py bench [--config unet-latent-8] [--batch 32] [--steps 8]
                                          [--threads 2] [--json]
Needs Debian's python3-torch; CI does not (the reference file is committed)."""
import argparse, json, math, os, statistics, struct, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_refs import write_safetensors  # noqa: E402

import torch
import torch.nn as nn
import torch.nn.functional as F

# the named configs of src/models/unet.c (in_ch, out_ch, ch, attn, layers, heads, depth, ctx_dim, groups)
CONFIGS = {
    "sd-1": dict(in_ch=4, out_ch=4, ch=[320, 640, 1280, 1280], attn=[1, 1, 1, 0], layers=2, heads=8, depth=1,
                 ctx=768, groups=32),
    "unet-tiny": dict(in_ch=3, out_ch=3, ch=[4, 8], attn=[0, 1], layers=1, heads=2, depth=1, ctx=6, groups=2),
    "unet-pixel-32": dict(in_ch=3, out_ch=3, ch=[32, 64, 64], attn=[0, 1, 1], layers=2, heads=4, depth=1, ctx=128,
                          groups=32),
    "unet-latent-8": dict(in_ch=4, out_ch=4, ch=[64, 128], attn=[1, 1], layers=2, heads=4, depth=1, ctx=128,
                          groups=32),
    "unet-latent-8s": dict(in_ch=4, out_ch=4, ch=[48, 96], attn=[0, 1], layers=2, heads=4, depth=1, ctx=128,
                           groups=16),
}


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps=1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        B, T, C = x.shape
        h, d = self.heads, C // self.heads
        q = self.to_q(x).view(B, T, h, d).transpose(1, 2)
        k = self.to_k(ctx).view(B, ctx.shape[1], h, d).transpose(1, 2)
        v = self.to_v(ctx).view(B, ctx.shape[1], h, d).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        return self.to_out[0]((a @ v).transpose(1, 2).reshape(B, T, C))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class TransformerBlock(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, dim, heads)
        self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, ctx_dim, heads)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim)

    def forward(self, x, ctx):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), ctx)
        return x + self.ff(self.norm3(x))


class Transformer2D(nn.Module):
    def __init__(self, dim, cfg):
        super().__init__()
        self.norm = nn.GroupNorm(cfg["groups"], dim, eps=1e-6)
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(dim, cfg["ctx"], cfg["heads"]) for _ in range(cfg["depth"])])
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x, ctx):
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(B, H * W, C)
        for b in self.transformer_blocks:
            h = b(h, ctx)
        return self.proj_out(h.reshape(B, H, W, C).permute(0, 3, 1, 2)) + x


class Sampler(nn.Module):
    def __init__(self, ch, down):
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(ch, ch, 3, 2 if down else 1, 1)

    def forward(self, x):
        return self.conv(x if self.down else F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    pass


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=t.dtype) / half)
    a = t[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)  # diffusers' flip_sin_to_cos


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, L, n, TE = cfg["ch"], len(cfg["ch"]), cfg["layers"], 4 * cfg["ch"][0]
        self.cfg = cfg
        self.conv_in = nn.Conv2d(cfg["in_ch"], ch[0], 3, 1, 1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(ch[0], TE)
        self.time_embedding.linear_2 = nn.Linear(TE, TE)
        skips, c = [ch[0]], ch[0]
        self.down_blocks = nn.ModuleList()
        for l in range(L):
            b = Level()
            b.resnets = nn.ModuleList()
            b.attentions = nn.ModuleList() if cfg["attn"][l] else None
            for _ in range(n):
                b.resnets.append(Resnet(c, ch[l], TE, cfg["groups"]))
                c = ch[l]
                if cfg["attn"][l]:
                    b.attentions.append(Transformer2D(c, cfg))
                skips.append(c)
            b.downsamplers = nn.ModuleList([Sampler(c, True)]) if l < L - 1 else None
            if l < L - 1:
                skips.append(c)
            self.down_blocks.append(b)
        self.mid_block = Level()
        self.mid_block.resnets = nn.ModuleList([Resnet(c, c, TE, cfg["groups"]), Resnet(c, c, TE, cfg["groups"])])
        self.mid_block.attentions = nn.ModuleList([Transformer2D(c, cfg)])
        self.up_blocks = nn.ModuleList()
        for u in range(L):
            l = L - 1 - u
            b = Level()
            b.resnets = nn.ModuleList()
            b.attentions = nn.ModuleList() if cfg["attn"][l] else None
            for _ in range(n + 1):
                b.resnets.append(Resnet(c + skips.pop(), ch[l], TE, cfg["groups"]))
                c = ch[l]
                if cfg["attn"][l]:
                    b.attentions.append(Transformer2D(c, cfg))
            b.upsamplers = nn.ModuleList([Sampler(c, False)]) if l > 0 else None
            self.up_blocks.append(b)
        self.conv_norm_out = nn.GroupNorm(cfg["groups"], c, eps=1e-5)
        self.conv_out = nn.Conv2d(c, cfg["out_ch"], 3, 1, 1)

    def forward(self, x, t, ctx):
        temb = timestep_embedding(t, self.cfg["ch"][0])
        temb = self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(temb)))
        h = self.conv_in(x)
        skips = [h]
        for b in self.down_blocks:
            for j, r in enumerate(b.resnets):
                h = r(h, temb)
                if b.attentions is not None:
                    h = b.attentions[j](h, ctx)
                skips.append(h)
            if b.downsamplers is not None:
                h = b.downsamplers[0](h)
                skips.append(h)
        h = self.mid_block.resnets[0](h, temb)
        h = self.mid_block.attentions[0](h, ctx)
        h = self.mid_block.resnets[1](h, temb)
        for b in self.up_blocks:
            for j, r in enumerate(b.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), temb)
                if b.attentions is not None:
                    h = b.attentions[j](h, ctx)
            if b.upsamplers is not None:
                h = b.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# the autoencoder (src/models/vae.c): diffusers' AutoencoderKL with SD's block types
VAE_CONFIGS = {
    "vae-tiny": dict(in_ch=3, latent=2, ch=[4, 8], layers=1, groups=2),
    "vae-f4": dict(in_ch=3, latent=4, ch=[16, 32, 64], layers=1, groups=8),
    "sd-vae": dict(in_ch=3, latent=4, ch=[128, 256, 512, 512], layers=2, groups=32),
}


class VaeAttention(nn.Module):
    def __init__(self, C, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, C, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.to_out = nn.ModuleList([nn.Linear(C, C)])

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x).permute(0, 2, 3, 1).reshape(B, H * W, C)
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C), dim=-1)
        o = self.to_out[0](a @ v)
        return o.reshape(B, H, W, C).permute(0, 3, 1, 2) + x


class VaeDown(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.conv = nn.Conv2d(C, C, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class VaeMid(nn.Module):
    def __init__(self, C, groups):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(C, C, 0, groups, 1e-6), Resnet(C, C, 0, groups, 1e-6)])
        self.attentions = nn.ModuleList([VaeAttention(C, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class VaeEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, L, g = c["ch"], len(c["ch"]), c["groups"]
        self.conv_in = nn.Conv2d(c["in_ch"], ch[0], 3, 1, 1)
        self.down_blocks = nn.ModuleList()
        cur = ch[0]
        for l in range(L):
            b = Level()
            b.resnets = nn.ModuleList()
            for _ in range(c["layers"]):
                b.resnets.append(Resnet(cur, ch[l], 0, g, 1e-6))
                cur = ch[l]
            b.downsamplers = nn.ModuleList([VaeDown(cur)]) if l < L - 1 else None
            self.down_blocks.append(b)
        self.mid_block = VaeMid(cur, g)
        self.conv_norm_out = nn.GroupNorm(g, cur, eps=1e-6)
        self.conv_out = nn.Conv2d(cur, 2 * c["latent"], 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for b in self.down_blocks:
            for r in b.resnets:
                h = r(h)
            if b.downsamplers is not None:
                h = b.downsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(h))))


class VaeDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, L, g = c["ch"], len(c["ch"]), c["groups"]
        cur = ch[-1]
        self.conv_in = nn.Conv2d(c["latent"], cur, 3, 1, 1)
        self.mid_block = VaeMid(cur, g)
        self.up_blocks = nn.ModuleList()
        for u in range(L):
            l = L - 1 - u
            b = Level()
            b.resnets = nn.ModuleList()
            for _ in range(c["layers"] + 1):
                b.resnets.append(Resnet(cur, ch[l], 0, g, 1e-6))
                cur = ch[l]
            b.upsamplers = nn.ModuleList([Sampler(cur, False)]) if l > 0 else None
            self.up_blocks.append(b)
        self.conv_norm_out = nn.GroupNorm(g, cur, eps=1e-6)
        self.conv_out = nn.Conv2d(cur, c["in_ch"], 3, 1, 1)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            for r in b.resnets:
                h = r(h)
            if b.upsamplers is not None:
                h = b.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class Vae(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.encoder, self.decoder = VaeEncoder(c), VaeDecoder(c)
        self.quant_conv = nn.Conv2d(2 * c["latent"], 2 * c["latent"], 1)
        self.post_quant_conv = nn.Conv2d(c["latent"], c["latent"], 1)

    def encode(self, x):
        return self.quant_conv(self.encoder(x))

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


def meta_of(cfg):
    return {"format": "forget-unet", "unet.heads": str(cfg["heads"]), "unet.groups": str(cfg["groups"]),
            "unet.depth": str(cfg["depth"]), "unet.layers": str(cfg["layers"]),
            "unet.ch": ",".join(map(str, cfg["ch"])), "unet.attn": ",".join(map(str, cfg["attn"]))}


def ref(out):
    cfg = CONFIGS["unet-tiny"]
    m = UNet(cfg).double()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # every weight random, norms' scales around 1
        for name, p in m.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    B, side, Lc = 2, 8, 5
    x = torch.randn(B, cfg["in_ch"], side, side, generator=g, dtype=torch.float64).requires_grad_(True)
    t = torch.tensor([3.0, 517.0], dtype=torch.float64)
    ctx = torch.randn(B, Lc, cfg["ctx"], generator=g, dtype=torch.float64).requires_grad_(True)
    eps = m(x, t, ctx)
    R = torch.randn(eps.shape, generator=g, dtype=torch.float64)
    (eps * R).sum().backward()
    tens = {k: v for k, v in m.state_dict().items()}
    tens.update({"ref.x": x, "ref.t": t, "ref.ctx": ctx, "ref.R": R, "ref.eps": eps, "ref.dx": x.grad,
                 "ref.dctx": ctx.grad})
    for k, p in m.named_parameters():
        tens["grad." + k] = p.grad
    write_safetensors(out, tens, meta_of(cfg))
    n = sum(p.numel() for p in m.parameters())
    print("wrote %s (%d tensors, %d parameters, %d bytes)" % (out, len(tens), n, os.path.getsize(out)))


def ref_vae(out):
    cfg = VAE_CONFIGS["vae-tiny"]
    m = Vae(cfg).double()
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    B, side = 2, 8
    f = 2 ** (len(cfg["ch"]) - 1)
    x = torch.randn(B, cfg["in_ch"], side, side, generator=g, dtype=torch.float64).requires_grad_(True)
    z = torch.randn(B, cfg["latent"], side // f, side // f, generator=g, dtype=torch.float64).requires_grad_(True)
    mom = m.encode(x)
    rec = m.decode(z)
    R1 = torch.randn(mom.shape, generator=g, dtype=torch.float64)
    R2 = torch.randn(rec.shape, generator=g, dtype=torch.float64)
    ((mom * R1).sum() + (rec * R2).sum()).backward()
    tens = {k: v for k, v in m.state_dict().items()}
    tens.update({"ref.x": x, "ref.z": z, "ref.R1": R1, "ref.R2": R2, "ref.moments": mom, "ref.recon": rec,
                 "ref.dx": x.grad, "ref.dz": z.grad})
    for k, p in m.named_parameters():
        tens["grad." + k] = p.grad
    meta = {"format": "forget-vae", "vae.latent_ch": str(cfg["latent"]), "vae.layers": str(cfg["layers"]),
            "vae.groups": str(cfg["groups"]), "vae.scaling_factor": "1", "vae.ch": ",".join(map(str, cfg["ch"])),
            "vae.in_ch": str(cfg["in_ch"])}
    write_safetensors(out, tens, meta)
    n = sum(p.numel() for p in m.parameters())
    print("wrote %s (%d tensors, %d parameters, %d bytes)" % (out, len(tens), n, os.path.getsize(out)))


def bench(a):
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    cfg = CONFIGS[a.config]
    side = a.side or (32 if cfg["in_ch"] == 3 else 8)
    m = UNet(cfg)
    n_params = sum(p.numel() for p in m.parameters())
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    B, Lc = a.batch, a.ctx_len
    x = torch.randn(B, cfg["in_ch"], side, side)
    ctx = torch.randn(B, Lc, cfg["ctx"])
    times = []
    for step in range(a.steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad()
        t = torch.randint(0, 1000, (B,)).float()
        noise = torch.randn_like(x)
        F.mse_loss(m(x + noise, t, ctx), noise).backward()
        opt.step()
        if step >= 2:
            times.append(time.perf_counter() - t0)
    train_ips = B / statistics.median(times)
    # DDIM sampling with guidance: conditional and unconditional halves in one batch of 2B
    S = a.sample_batch
    z = torch.randn(S, cfg["in_ch"], side, side)
    c2 = torch.randn(2 * S, Lc, cfg["ctx"])
    times = []
    with torch.no_grad():
        for step in range(a.sample_steps + 1):
            t0 = time.perf_counter()
            tt = torch.full((2 * S,), 999.0 - step * 40)
            e = m(torch.cat([z, z]), tt, c2)
            eu, ec = e.chunk(2)
            z = z - 0.01 * (eu + 7.5 * (ec - eu))
            if step >= 1:
                times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    sample_ips = S / (step_s * a.ddim_steps)
    r = {"torch": torch.__version__, "config": a.config, "params": n_params, "side": side, "batch": B,
         "threads": a.threads, "train_images_per_s": train_ips, "sample_batch": S, "ddim_steps": a.ddim_steps,
         "sample_images_per_s": sample_ips, "mkldnn": torch.backends.mkldnn.is_available()}
    if a.json:
        print(json.dumps(r))
    else:
        print("PyTorch %s %s (%d parameters, %dx%d): training %.1f images/s (batch %d), DDIM sampling %.2f images/s"
              " (batch %d, %d guided steps), %d threads" % (torch.__version__, a.config, n_params, side, side,
                                                             train_ips, B, sample_ips, S, a.ddim_steps, a.threads))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job", choices=["ref", "ref-vae", "bench", "count"])
    ap.add_argument("--out", default="tests/ref/unet-tiny.safetensors")
    ap.add_argument("--config", default="unet-latent-8", choices=sorted(CONFIGS))
    ap.add_argument("--side", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--sample-batch", type=int, default=16)
    ap.add_argument("--sample-steps", type=int, default=4)
    ap.add_argument("--ddim-steps", type=int, default=25)
    ap.add_argument("--ctx-len", type=int, default=77)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.job == "ref":
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        ref(a.out)
    elif a.job == "ref-vae":
        out = a.out if a.out != ap.get_default("out") else "tests/ref/vae-tiny.safetensors"
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        ref_vae(out)
    elif a.job == "count":  # parameter counts of the named configs (the published ones: sd-1, sd-vae)
        for k, c in CONFIGS.items():
            print(k, sum(p.numel() for p in UNet(c).parameters()))
        for k, c in VAE_CONFIGS.items():
            print(k, sum(p.numel() for p in Vae(c).parameters()))
    else:
        bench(a)


if __name__ == "__main__":
    sys.exit(main())
