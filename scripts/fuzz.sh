#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for FUZZ_SECONDS.
# Prints one line per target: "fuzz TARGET: ok (N runs)" or the crash, and exits non-zero on any crash.
set -uo pipefail
SECONDS_EACH=${FUZZ_SECONDS:-20}
OUT=build/fuzz
mkdir -p "$OUT/obj"
bash scripts/ensure-deps.sh --fuzz || exit 1
CFLAGS="-std=c11 -D_GNU_SOURCE -O1 -g -fopenmp -Isrc $(pkg-config --cflags glib-2.0 ompi-c freetype2 harfbuzz libxml-2.0) -fsanitize=fuzzer-no-link,address,undefined -Wno-pass-failed"
LIBS="-lsentencepiece -lsentencepiece_train -lstdc++ -ldnnl -ljpeg -llapacke -lm $(pkg-config --libs libxxhash glib-2.0 libcjson libpcre2-8 icu-uc libpng zlib ompi-c freetype2 harfbuzz libxml-2.0 libmicrohttpd libcurl)"
objs=()
for src in $(find src -name '*.c' ! -path 'src/cli/*' | sort); do
  obj="$OUT/obj/$(echo "$src" | tr / _).o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
    clang $CFLAGS -c "$src" -o "$obj" 2>"$obj.log" || { cat "$obj.log"; exit 1; }
  fi
  objs+=("$obj")
done
for src in $(find src -name '*.cc' | sort); do # the libsentencepiece face
  obj="$OUT/obj/$(echo "$src" | tr / _).o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
    clang++ -std=c++17 -D_GNU_SOURCE -O1 -g -Isrc -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=vptr,function \
      -c "$src" -o "$obj" \
      2>"$obj.log" || { cat "$obj.log"; exit 1; }
  fi
  objs+=("$obj")
done
clang -c src/io/embedded_data.S -Wa,-I. -o "$OUT/obj/embedded_data.o" || exit 1
objs+=("$OUT/obj/embedded_data.o")
status=0
for t in ${FUZZ_TARGETS:-safetensors tokenizer image request reply http}; do
  clang $CFLAGS -fsanitize=fuzzer "fuzz/fuzz_$t.c" "${objs[@]}" -o "$OUT/fuzz_$t" $LIBS || exit 1
  mkdir -p "$OUT/corpus_$t"
  log="$OUT/fuzz_$t.log"
  if "./$OUT/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -artifact_prefix="$OUT/crash_$t-" \
       "$OUT/corpus_$t" "fuzz/seeds/$t" >"$log" 2>&1; then
    echo "fuzz $t: ok ($(grep -o 'Done [0-9]* runs' "$log" | tail -1 | cut -d' ' -f2) runs in ${SECONDS_EACH}s)"
  else
    echo "fuzz $t: FAILED (see $log)"; grep -E 'ERROR|SUMMARY|artifact' "$log" | head -5
    status=1
  fi
done
exit $status
