#!/usr/bin/env bash
# Installs the Debian packages forget builds against, when any is missing.
# As root it runs apt-get itself; otherwise it prints the one line to run and fails.
set -euo pipefail

PACKAGES=(
  gcc g++ make pkg-config
  libdnnl-dev      # GEMM (dnnl_sgemm)
  libcjson-dev     # JSON: safetensors headers, CLI output
  libpcre2-dev     # CLIP pre-tokenizer regex with Unicode classes
  libicu-dev       # Unicode lower-casing with Python's rules (full mapping, final sigma)
  libpng-dev libjpeg-dev zlib1g-dev
  libmicrohttpd-dev libcurl4-openssl-dev libglib2.0-dev   # the black-box API: server, client, base64
  wamerican                    # the candidate words of the strict black-box methods
  liblapacke-dev               # CMA-ES eigendecomposition, closed-form calibration
  libxxhash-dev                # per-tensor digests in every safetensors file forget writes
  libopenmpi-dev openmpi-bin   # data-parallel training (mpirun -np N forget train ...)
  dataset-fashion-mnist        # the real data the zoo trains on
  libfreetype-dev libharfbuzz-dev libxml2-dev   # Emoji-Domains: glyphs, shaping, CLDR annotations
  fonts-noto-color-emoji fonts-symbola unicode-data unicode-cldr-core
  fonts-dejavu-core            # the captions of generated-image grids
  libsentencepiece-dev         # Llama-style tokenizers (tokenizer.model), trained and read
)
# Fuzz targets need clang's libFuzzer runtime; only `make fuzz` asks for these.
if [ "${1:-}" = "--fuzz" ]; then PACKAGES+=(clang libclang-rt-14-dev); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "forget: missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Lists may be absent on a fresh machine; refresh them once before installing.
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
else
  echo "run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
