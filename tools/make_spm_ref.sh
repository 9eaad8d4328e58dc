#!/usr/bin/env bash
# tests/ref/spm-bpe.model: a SentencePiece model made by the library's own command-line trainer
# (Debian package sentencepiece: spm_train), with Llama's tokenizer settings (BPE, byte fallback,
# digits split, identity normalisation, unk 0 / bos 1 / eos 2), on a licence text Debian ships. tests/io/test_sp_tokenizer.c
# reads it as a "real" tokenizer.model, one forget did not write. CI does not need spm_train.
set -euo pipefail
out=${1:-tests/ref/spm-bpe.model}
tmp=$(mktemp -d)
spm_train --input=/usr/share/common-licenses/GPL-3 --model_prefix="$tmp/m" --vocab_size=600 --model_type=bpe \
  --byte_fallback=true --split_digits=true --character_coverage=0.9995 --unk_id=0 --bos_id=1 --eos_id=2 \
  --pad_id=-1 --normalization_rule_name=identity --minloglevel=2 >/dev/null
cp "$tmp/m.model" "$out"
rm -rf "$tmp"
echo "wrote $out ($(stat -c %s "$out") bytes)"
