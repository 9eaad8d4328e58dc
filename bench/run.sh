#!/usr/bin/env bash
# make bench: forget's own throughput against this machine's sgemm peak, and,
# where Debian's python3-torch is installed, against PyTorch measured in the same run.
set -euo pipefail
BIN=${1:-bin/forget}
BATCH=${BATCH:-16}
ITERS=${ITERS:-5}
ours=$("$BIN" bench clip --batch "$BATCH" --iters "$ITERS" --json)
train=$("$BIN" bench train --synthetic --precision fp32,bf16 --json)   # the work bench/torch_train.py does
zoo=$("$BIN" bench train --json)                 # the zoo build's own steps (data, captions, augmentation)
rn=$("$BIN" bench resnet --json)                 # ResNet-20 training, 28 px grey, batch 128 (tools/torch_resnet.py bench)
un=$("$BIN" bench unet --precision fp32,bf16,int8 --json) # SD-shaped UNet on 8x8x4 latents: training and guided DDIM (tools/torch_unet.py bench)
lm=$("$BIN" bench lm --json)                     # the MLLM's Llama (lm-s): training, decoding with and without the cache (tools/torch_lm.py bench)
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "$ours" | sed 's/^/forget: /'
  echo "$train" | sed 's/^/forget: /'
  echo "$zoo" | sed 's/^/forget: /'
  echo "$rn" | sed 's/^/forget: /'
  echo "$un" | sed 's/^/forget: /'
  echo "$lm" | sed 's/^/forget: /'
  echo "PyTorch not installed (Debian python3-torch; with libopenblas0-pthread for its BLAS): no PyTorch comparison"
  exit 0
fi
# PyTorch at its best setting: its BLAS is OpenBLAS here (SkylakeX is its best kernel choice on AVX-512
# machines), and its idle OpenMP threads spin against OpenBLAS's own unless OMP_WAIT_POLICY=PASSIVE.
t_runs=()
for ct in auto SkylakeX; do
  for wp in ACTIVE PASSIVE; do
    if [ "$ct" = auto ]; then ctenv=(); else ctenv=(OPENBLAS_CORETYPE="$ct"); fi
    r=$(env "${ctenv[@]}" OMP_WAIT_POLICY="$wp" "$PY" bench/torch_clip.py --batch "$BATCH" --iters "$ITERS" --json)
    t_runs+=("$(echo "$r" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); d["setting"]=sys.argv[1]; print(json.dumps(d))' "OPENBLAS_CORETYPE=$ct OMP_WAIT_POLICY=$wp")")
  done
done
t_all=$(printf '%s\n' "${t_runs[@]}" | "$PY" -c 'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin if l.strip()]))')
# The peer users would pick for CLIP features on a CPU: ONNX Runtime (npm onnxruntime-node) on the same
# architecture exported from the PyTorch reference.
ort='null'
if ! command -v node >/dev/null; then
  echo "ONNX Runtime peer skipped: no node (Debian nodejs)" >&2
elif [ ! -d bench/node_modules/onnxruntime-node ]; then
  echo "ONNX Runtime peer skipped: install it with (cd bench && npm install --ignore-scripts)" >&2
else
  if [ ! -f "build/onnx/clip-image-b$BATCH.onnx" ] || [ ! -f "build/onnx/clip-text-b$BATCH.onnx" ]; then
    "$PY" tools/export_onnx.py --batch "$BATCH" --out build/onnx >/dev/null 2>&1
  fi
  ort=$(node bench/ort_clip.js --dir build/onnx --batch "$BATCH" --iters "$ITERS" --threads "$(nproc)")
fi
tt=$(OPENBLAS_CORETYPE=SkylakeX "$PY" bench/torch_train.py --json)
trn=$("$PY" tools/torch_resnet.py bench --threads "$(nproc)" --json)
tun=$("$PY" tools/torch_unet.py bench --threads "$(nproc)" --json)
tlm=$(OPENBLAS_CORETYPE=SkylakeX OMP_WAIT_POLICY=PASSIVE "$PY" tools/torch_lm.py bench --threads "$(nproc)" --json)  # its best setting here
"$PY" - "$ours" "$t_all" "$ort" "$train" "$tt" "$zoo" "$rn" "$trn" "$un" "$tun" "$lm" "$tlm" <<'PYEOF'
import json, sys
o, tall, ort, tr, ptr, zoo, rn, trn, un, tun, lm, tlm = (json.loads(x) for x in sys.argv[1:13])
best = max(tall, key=lambda r: r["images_per_s"])
bt = max(tall, key=lambda r: r["texts77_per_s"])
print("forget bench (batch %d, %d threads, medians; oneDNN ISA %s):" % (o["batch"], o["threads"], o["isa"]))
print("  sgemm peak (oneDNN, 2048^3)   %7.1f GFLOP/s" % o["sgemm_gflops"])
print("  CLIP ViT-B/32                          images/s  % sgemm   x ORT  x torch   texts/s(77)   x ORT  x torch  cos img/txt")
f32 = o["precisions"].get("fp32", {"images_per_s": o["images_per_s"], "texts77_per_s": o["texts77_per_s"]})
def row(name, img, txt, peak, cos):
    oi = "%6.2fx" % (img / ort["images_per_s"]) if ort else "    - "
    ot = "%6.2fx" % (txt / ort["texts77_per_s"]) if ort else "    - "
    print("  %-38s %8.1f  %6s  %s  %6.2fx   %10.1f  %s  %6.2fx  %s" % (name, img, peak, oi, img / best["images_per_s"], txt,
          ot, txt / bt["texts77_per_s"], cos))
for name, q in o["precisions"].items():
    row("forget %s (%s)" % (q["ran"], q["impl"]), q["images_per_s"], q["texts77_per_s"],
        "%5.1f%%" % (100 * q["images_peak_ratio"]), "%.5f/%.5f" % (q["image_cosine_to_fp32"], q["text_cosine_to_fp32"]))
if ort:
    row("ONNX Runtime %s fp32" % ort["onnxruntime"], ort["images_per_s"], ort["texts77_per_s"], "", "")
else:
    print("  ONNX Runtime: not measured (see the message above)")
row("PyTorch %s fp32 (best setting)" % best["torch"], best["images_per_s"], bt["texts77_per_s"], "", "")
for r in tall:
    print("    PyTorch %s: %.1f img/s, %.1f txt/s" % (r["setting"], r["images_per_s"], r["texts77_per_s"]))
print("  texts/s, short    forget fp32 %7.1f  (%.1f tokens; PyTorch and ORT compute all 77)"
      % (o["short_texts_per_s"], o["short_text_mean_tokens"]))
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
tb = tr.get("precisions", {}).get("bf16")
if tb:
    print("  training in bf16 (mixed precision, same synthetic batch): forget %.1f images/s, %.2fx forget fp32"
          % (tb["train_images_per_s"], tb["train_images_per_s"] / tr["train_images_per_s"]))
for name, q in un.get("precisions", {}).items():
    print("  UNet guided DDIM in %s: %.2f images/s, %.2fx fp32" % (name, q["sample_images_per_s"],
          q["sample_images_per_s"] / un["sample_images_per_s"]))
print("  LM %s (%.2fM params): training (batch %d x %d) forget %.0f tokens/s, PyTorch %.0f, ratio %.2fx; decoding "
      "(prompt %d, %d new) with the KV cache forget %.1f tokens/s, PyTorch %.1f, ratio %.2fx; without the cache forget %.1f, "
      "PyTorch %.1f; cache speed-up %.1fx; peak RSS %.0f MB"
      % (lm["net"], lm["params"] / 1e6, lm["batch"], lm["seq"], lm["train_tokens_per_s"], tlm["train_tokens_per_s"],
         lm["train_tokens_per_s"] / tlm["train_tokens_per_s"], lm["prompt"], lm["new"], lm["decode_tokens_per_s"],
         tlm["decode_tokens_per_s"], lm["decode_tokens_per_s"] / tlm["decode_tokens_per_s"],
         lm["decode_nocache_tokens_per_s"], tlm["decode_nocache_tokens_per_s"],
         lm["decode_tokens_per_s"] / lm["decode_nocache_tokens_per_s"], lm["peak_rss_mb"]))
print("  training as the zoo build does it (data, captions, augmentation): forget %.1f images/s" % zoo["train_images_per_s"])
PYEOF
