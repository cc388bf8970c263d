#!/usr/bin/env bash
# The chaos suite's nightly mode: RUNS seeded runs (default 50) per command
# that writes to GitLab or Freshdesk (scan-races, check-versions,
# transition-issues, escalate, serve's webhook and escalation endpoint),
# each compared with the fault-free run; then the figures.
#
#   scripts/chaos-nightly.sh            # 50 seeds per scenario
#   scripts/chaos-nightly.sh 200 1000   # 200 seeds, starting at seed 1000
#
# The normal `cargo test` runs the same suite with 3 seeds per scenario.
# A failing seed is named; `RP_CHAOS_SEED=N RP_CHAOS_RUNS=1 cargo test
# --test chaos SCENARIO` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-50}
first=${2:-1}
report=target/chaos-report.jsonl
mkdir -p target
rm -f "$report"
started=$(date +%s)
status=0
RP_CHAOS_RUNS=$runs RP_CHAOS_SEED=$first RP_CHAOS_REPORT=$PWD/$report \
  cargo test --release --test chaos -- --nocapture --test-threads=2 2>&1 \
  | grep -E '^(chaos |test |thread |  (extra|missing)|seed )' || status=$?
echo "== chaos: $runs seeds per scenario from seed $first, $(( $(date +%s) - started ))s"
if [ -f "$report" ]; then
  python3 - "$report" <<'PY' || cat "$report"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
total = {k: sum(r[k] for r in rows) for k in ("seeds", "invocations", "requests", "faults_injected", "reruns", "duplicates", "missing")}
print(f"{'scenario':28} {'runs':>5} {'requests':>9} {'faults':>7} {'re-runs':>8} {'dup':>4} {'missing':>7}  known, not compared")
known_total = {}
for r in rows:
    known = {k: n for k, n in r.get("known_deviations", {}).items() if n}
    for k, n in known.items():
        known_total[k] = known_total.get(k, 0) + n
    shown = ", ".join(f"{n} {k}" for k, n in sorted(known.items())) or "-"
    print(f"{r['scenario']:28} {r['seeds']:>5} {r['requests']:>9} {r['faults_injected']:>7} {r['reruns']:>8} {r['duplicates']:>4} {r['missing']:>7}  {shown}")
shown = ", ".join(f"{n} {k}" for k, n in sorted(known_total.items())) or "-"
print(f"{'total':28} {total['seeds']:>5} {total['requests']:>9} {total['faults_injected']:>7} {total['reruns']:>8} {total['duplicates']:>4} {total['missing']:>7}  {shown}")
kinds = {}
for r in rows:
    for k, n in r["faults"].items():
        kinds[k] = kinds.get(k, 0) + n
print("faults by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
PY
fi
exit "$status"
