#!/usr/bin/env python3
"""The architecture's rules on includes, checked: no include cycle among headers, no pair of
files that include each other's header, and models/ (and nn/, core/) never include evaluation,
training or data-set headers. Exit 1 naming the offending files."""
import glob, os, re, sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
inc = {}
for f in glob.glob("src/**/*.[ch]", recursive=True):
    inc[f[4:]] = re.findall(r'#include "([^"]+)"', open(f, encoding="utf-8").read())

cycles, seen, stack, onstack = [], set(), [], set()
def dfs(u):
    seen.add(u); stack.append(u); onstack.add(u)
    for v in inc.get(u, []):
        if v not in inc: continue
        if v in onstack: cycles.append(stack[stack.index(v):] + [v])
        elif v not in seen: dfs(v)
    stack.pop(); onstack.discard(u)
for u in sorted(inc):
    if u not in seen: dfs(u)

upward = ("eval/", "train/", "forget/", "serve/", "cli/", "io/dataset", "io/emoji", "io/captions")
low = [f for f in inc if f.split("/")[0] in ("core", "nn", "models")
       and any(i.startswith(upward) for i in inc[f])]
pairs = set()
for f, incs in inc.items():
    if not f.endswith(".c"): continue
    h = f[:-2] + ".h"
    for i in incs:
        c2 = i[:-2] + ".c"
        if i != h and i.endswith(".h") and c2 in inc and h in inc[c2]: pairs.add(tuple(sorted((f, c2))))
for c in cycles: print("include cycle:", " -> ".join(c))
for f in low: print(f"{f} includes a header of a layer above it:", [i for i in inc[f] if i.startswith(upward)])
for p in sorted(pairs): print("files include each other's header:", *p)
sys.exit(1 if cycles or low or pairs else 0)
