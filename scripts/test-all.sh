#!/usr/bin/env bash
# make test: the unit and end-to-end suite, the same suite under ASan+UBSan, and a
# short run of every fuzz target. Ends with one line "N passed, N failed" over all of it.
set -uo pipefail
pass=0; fail=0; skip=0
count() { # adds the "N passed, N failed" line of a suite's log
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$1" | tail -1)
  if [ -z "$line" ]; then fail=$((fail + 1)); return; fi
  pass=$((pass + $(echo "$line" | cut -d' ' -f1))); fail=$((fail + $(echo "$line" | cut -d' ' -f3 | tr -d ,)))
  local s; s=$(echo "$line" | sed -n 's/.*, \([0-9]*\) skipped$/\1/p'); skip=$((skip + ${s:-0}))
}
mkdir -p build
echo "== unit and end-to-end tests (release build)"
make -s bin/forget bin/forget-tests >/dev/null && FORGET_BIN=bin/forget ./bin/forget-tests 2>&1 | tee build/test-rel.log
count build/test-rel.log
echo "== the same tests under ASan + UBSan"
make -s SAN=1 bin/san/forget bin/san/forget-tests >/dev/null && \
  LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp FORGET_BIN=bin/san/forget ./bin/san/forget-tests 2>&1 | tee build/test-san.log | grep -vE '^ok ' 
count build/test-san.log
echo "== the layers' include rules (tools/check_layers.py)"
if command -v python3 >/dev/null; then
  if python3 tools/check_layers.py; then echo "layers: ok"; pass=$((pass + 1)); else fail=$((fail + 1)); fi
else
  echo "layers: python3 not installed, not checked"
fi
echo "== fuzz targets, ${FUZZ_SECONDS:=10}s each"
FUZZ_SECONDS=$FUZZ_SECONDS bash scripts/fuzz.sh 2>&1 | tee build/test-fuzz.log
pass=$((pass + $(grep -c ': ok (' build/test-fuzz.log))); fail=$((fail + $(grep -c ': FAILED' build/test-fuzz.log)))
[ "$(grep -c '^fuzz ' build/test-fuzz.log)" -eq "$(ls fuzz/fuzz_*.c | wc -l)" ] || fail=$((fail + 1)) # every target reported
if [ "$skip" -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
[ "$fail" -eq 0 ]
