#!/usr/bin/env bash
# make bench: forget's own throughput against this machine's sgemm peak, and,
# where Debian's python3-torch is installed, against PyTorch measured in the same run.
set -euo pipefail
BIN=${1:-bin/forget}
BATCH=${BATCH:-16}
ITERS=${ITERS:-5}
ours=$("$BIN" bench clip --batch "$BATCH" --iters "$ITERS" --json)
train=$("$BIN" bench train --synthetic --json)   # the work bench/torch_train.py does
zoo=$("$BIN" bench train --json)                 # the zoo build's own steps (data, captions, augmentation)
rn=$("$BIN" bench resnet --json)                 # ResNet-20 training, 28 px grey, batch 128 (tools/torch_resnet.py bench)
un=$("$BIN" bench unet --json)                   # SD-shaped UNet on 8x8x4 latents: training and guided DDIM (tools/torch_unet.py bench)
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "$ours" | sed 's/^/forget: /'
  echo "$train" | sed 's/^/forget: /'
  echo "$zoo" | sed 's/^/forget: /'
  echo "$rn" | sed 's/^/forget: /'
  echo "$un" | sed 's/^/forget: /'
  echo "PyTorch not installed (Debian python3-torch; with libopenblas0-pthread for its BLAS): no PyTorch comparison"
  exit 0
fi
# PyTorch's BLAS is OpenBLAS here; its best kernel choice is SkylakeX on AVX-512 machines, so try both.
t_auto=$("$PY" bench/torch_clip.py --batch "$BATCH" --iters "$ITERS" --json)
t_skx=$(OPENBLAS_CORETYPE=SkylakeX "$PY" bench/torch_clip.py --batch "$BATCH" --iters "$ITERS" --json)
tt=$(OPENBLAS_CORETYPE=SkylakeX "$PY" bench/torch_train.py --json)
trn=$("$PY" tools/torch_resnet.py bench --threads "$(nproc)" --json)
tun=$("$PY" tools/torch_unet.py bench --threads "$(nproc)" --json)
"$PY" - "$ours" "$t_auto" "$t_skx" "$train" "$tt" "$zoo" "$rn" "$trn" "$un" "$tun" <<'PYEOF'
import json, sys
o, a, s, tr, ptr, zoo, rn, trn, un, tun = (json.loads(x) for x in sys.argv[1:11])
best = max((a, s), key=lambda r: r["images_per_s"])
bt = max((a, s), key=lambda r: r["texts77_per_s"])
print("forget bench (batch %d, %d threads, medians):" % (o["batch"], o["threads"]))
print("  sgemm peak (oneDNN, 2048^3)   %7.1f GFLOP/s" % o["sgemm_gflops"])
print("  images/s          forget %7.1f   %5.1f%% of sgemm peak   PyTorch %5.1f   ratio %.2fx"
      % (o["images_per_s"], 100 * o["image_peak_ratio"], best["images_per_s"], o["images_per_s"] / best["images_per_s"]))
print("  texts/s, 77 tok   forget %7.1f                          PyTorch %5.1f   ratio %.2fx"
      % (o["texts77_per_s"], bt["texts77_per_s"], o["texts77_per_s"] / bt["texts77_per_s"]))
print("  texts/s, short    forget %7.1f  (%.1f tokens; PyTorch computes all 77)       ratio %.2fx"
      % (o["short_texts_per_s"], o["short_text_mean_tokens"], o["short_texts_per_s"] / bt["texts77_per_s"]))
print("  training (fmnist-s, batch %d): forget %.1f images/s, PyTorch %.1f images/s, ratio %.2fx"
      % (tr["batch"], tr["train_images_per_s"], ptr["images_per_s"], tr["train_images_per_s"] / ptr["images_per_s"]))
print("  ResNet-20 training (28 px grey, batch %d): forget %.1f images/s (%.1f%% of sgemm peak), PyTorch %.1f images/s "
      "(oneDNN %s), ratio %.2fx" % (rn["batch"], rn["train_images_per_s"], 100 * rn["peak_ratio"], trn["images_per_s"],
      "on" if trn["mkldnn"] else "off", rn["train_images_per_s"] / trn["images_per_s"]))
print("  UNet %s (%d params, %dx%d latents): training (batch %d) forget %.1f images/s (%.1f%% of sgemm peak), "
      "PyTorch %.1f, ratio %.2fx; guided DDIM (batch %d, %d steps) forget %.2f images/s, PyTorch %.2f, ratio %.2fx"
      % (un["net"], un["params"], un["side"], un["side"], un["batch"], un["train_images_per_s"], 100 * un["peak_ratio"],
         tun["train_images_per_s"], un["train_images_per_s"] / tun["train_images_per_s"], un["sample_batch"],
         un["ddim_steps"], un["sample_images_per_s"], tun["sample_images_per_s"],
         un["sample_images_per_s"] / tun["sample_images_per_s"]))
print("  training as the zoo build does it (data, captions, augmentation): forget %.1f images/s" % zoo["train_images_per_s"])
print("  PyTorch %s: OPENBLAS_CORETYPE auto -> %.1f img/s %.1f txt/s; SkylakeX -> %.1f img/s %.1f txt/s"
      % (a["torch"], a["images_per_s"], a["texts77_per_s"], s["images_per_s"], s["texts77_per_s"]))
PYEOF
