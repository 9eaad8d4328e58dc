#!/bin/bash
# Chooses the dirichlet search's settings on VALIDATION H only (never the test split), with seeds
# kept apart from the experiment's (default 101-106). Serves MODEL's train split twice (probabilities,
# labels) and its test split once, runs `forget blackbox --dirichlet SPEC --json` per setting, mode
# and seed, appends each JSON line to OUT and prints the mean validation_H per setting and mode.
#   usage: scripts/tune-dirichlet.sh DATASET MODEL OUT SPEC...
#   e.g.   scripts/tune-dirichlet.sh fmnist /tmp/fh/zoo/fmnist-clip.safetensors /tmp/tune.txt eta=0.3 elitist=1
# Environment: SEEDS (default "101 102 103 104 105 106"), SHOTS (16), BUDGET (4000), TEMPLATE.
set -eu
[ $# -ge 4 ] || { sed -n 2,9p "$0"; exit 2; }
DS=$1 MODEL=$2 OUT=$3; shift 3
B=$(dirname "$0")/../bin/forget
SEEDS=${SEEDS:-101 102 103 104 105 106} SHOTS=${SHOTS:-16} BUDGET=${BUDGET:-4000}
TEMPLATE=${TEMPLATE:-a photo of a \{\}}
P=$((20000 + RANDOM % 20000))
"$B" serve --model "$MODEL" --dataset "$DS" --split train --port $P >/dev/null 2>&1 & S1=$!
"$B" serve --model "$MODEL" --dataset "$DS" --split train --reveal labels --port $((P + 1)) >/dev/null 2>&1 & S2=$!
"$B" serve --model "$MODEL" --dataset "$DS" --split test --port $((P + 2)) >/dev/null 2>&1 & S3=$!
trap 'kill $S1 $S2 $S3 2>/dev/null' EXIT
for _ in $(seq 120); do curl -sf http://127.0.0.1:$((P + 2))/v1/stats >/dev/null && curl -sf http://127.0.0.1:$P/v1/stats >/dev/null && break; sleep 1; done
C=$(curl -sf http://127.0.0.1:$P/v1/dataset | grep -o '"classes":\[[^]]*\]' | grep -o '","' | wc -l)
C=$((C + 1))
NF=$(( (4 * C + 5) / 10 ))
FORGET=$(seq -s, 0 $((NF - 1)))
for spec in "$@"; do
    for mode in probs labels; do
        api=http://127.0.0.1:$P
        [ $mode = labels ] && api=http://127.0.0.1:$((P + 1))
        for seed in $SEEDS; do
            line=$("$B" blackbox --api $api --eval-api http://127.0.0.1:$((P + 2)) --forget "$FORGET" --dirichlet "$spec" \
                --budget "$BUDGET" --shots "$SHOTS" --template "$TEMPLATE" --seed "$seed" --curve-points 0 --json --quiet | tail -1)
            echo "$spec $mode $seed $line" >>"$OUT"
        done
    done
done
awk '{ v = $0; sub(/.*"validation_H":/, "", v); sub(/[,}].*/, "", v); k = $1 " " $2; s[k] += v; n[k]++ }
     END { for (k in s) printf "%-40s n=%d mean validation H %.2f\n", k, n[k], 100 * s[k] / n[k] }' "$OUT" | sort -k2,2 -k1,1
