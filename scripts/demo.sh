#!/usr/bin/env bash
# make demo: the main job on the embedded default. Builds the zoo model fmnist-clip if it is
# missing (~16 min on 2 cores, with a progress bar), serves it on loopback (training split for
# the search, test split for the measurement), makes it forget 4 of the 10 Fashion-MNIST
# classes through the API alone with the strict method `dirichlet` (our reconstruction, see
# docs/blackbox.md), prints Err_forget / Acc_keep / H before and after, writes
# demo/report.html and stops the servers. Options through the environment: FORGET_HOME (zoo
# location), DEMO_BUDGET (queries, default 4000), DEMO_SEED (default 1), DEMO_PRECISION (the
# served model's weight products: fp32, bf16 or int8; default fp32).
set -euo pipefail
BIN=${1:-bin/forget}
BUDGET=${DEMO_BUDGET:-4000}
SEED=${DEMO_SEED:-1}
PRECISION=${DEMO_PRECISION:-fp32}
OUT=demo
FORGET="t-shirt,trouser,pullover,dress"

echo "== forget demo: black-box forgetting of $FORGET on Fashion-MNIST"
MODEL=$("$BIN" zoo path fmnist-clip)
if [ ! -f "$MODEL" ]; then
    echo "== training the zoo model fmnist-clip (once; ~16 min on 2 cores) -> $MODEL"
    "$BIN" zoo build fmnist-clip
fi
mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# Start a server on a free loopback port (in this shell, so the trap can stop it) and read the
# port from its first line.
serve() { # split log
    "$BIN" serve --model "$MODEL" --dataset fmnist --split "$1" --port 0 --precision "$PRECISION" >/dev/null 2>"$2" &
    pids+=($!)
}
url_of() { # log pid
    for _ in $(seq 1 600); do
        if grep -q "http://" "$1" 2>/dev/null; then sed -n 's|.*http://\([0-9.]*:[0-9]*\)/.*|http://\1|p' "$1" | head -1; return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then cat "$1" >&2; return 1; fi
        sleep 0.1
    done
    echo "the server did not start (log: $1)" >&2
    return 1
}
echo "== serving $MODEL on loopback (the API reveals only class probabilities)"
serve train "$OUT/serve-train.log"
serve test "$OUT/serve-test.log"
API=$(url_of "$OUT/serve-train.log" "${pids[0]}")
EVAL=$(url_of "$OUT/serve-test.log" "${pids[1]}")
echo "   search API $API (training split), evaluation API $EVAL (test split)"

echo "== searching a 4-word suffix with dirichlet, $BUDGET queries"
"$BIN" blackbox --api "$API" --eval-api "$EVAL" --forget "$FORGET" --method dirichlet --budget "$BUDGET" \
    --seed "$SEED" --report "$OUT/report.html" --json > "$OUT/result.json"
python3 - "$OUT/result.json" <<'PY' 2>/dev/null || tail -1 "$OUT/result.json"
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
z = r["zero_shot"]
print("   prompt: \"a photo of a {class} %s.\"  (%d queries, %.1f s)" % (r["suffix"], r["queries"], r["seconds"]))
print("                 Err_forget  Acc_keep      H")
print("   before        %8.2f%%  %7.2f%%  %6.2f%%" % (100 * z["err_forget"], 100 * z["acc_keep"], 100 * z["H"]))
print("   after         %8.2f%%  %7.2f%%  %6.2f%%" % (100 * r["err_forget"], 100 * r["acc_keep"], 100 * r["H"]))
PY
echo "== report: $OUT/report.html (result: $OUT/result.json); stopping the servers"
