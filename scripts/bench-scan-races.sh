#!/usr/bin/env bash
# Benchmark `rp-devops scan-races` against ripgrep and grep on a 1 GiB log.
#
# Generates (once, cached in ./bench-data/, git-ignored) a log of ordinary
# service lines with race reports from tests/fixtures/races spread through
# it, varied (addresses, goroutine ids, journald prefix, CRLF). Then builds
# the release binary and times, on the same warm file, best of 3 each:
#   rp-devops scan-races --dry-run --json   (offline: no GitLab configured)
#   rg -c 'WARNING: DATA RACE'
#   grep -c 'WARNING: DATA RACE'
# and prints wall times, ratios and rp-devops' peak RSS.
#
# Usage: scripts/bench-scan-races.sh [SIZE_MIB]   (default 1024)
# Targets: rp-devops <= 3x rg, faster than grep, peak RSS < 64 MiB.
set -euo pipefail

cd "$(dirname "$0")/.."
size_mib=${1:-1024}
data_dir=bench-data
log="$data_dir/race-bench.log"
[[ $size_mib == 1024 ]] || log="$data_dir/race-bench-${size_mib}m.log"
expected_file="$log.reports"

mkdir -p "$data_dir"

if [[ ! -s $log || ! -s $expected_file ]]; then
    echo "generating $log (${size_mib} MiB, once)..." >&2
    python3 - "$log" "$size_mib" tests/fixtures/races <<'PY'
import os, random, re, sys

out_path, size_mib, fixtures = sys.argv[1], int(sys.argv[2]), sys.argv[3]
target = size_mib * 1024 * 1024
rng = random.Random(20261128)

# Race reports from the fixtures: each file as written (its reports plus
# the context lines around them). Anchors are counted per file.
anchor = re.compile(r"WARNING: (DATA RACE$|ThreadSanitizer: data race)", re.M)
samples = []
for name in sorted(os.listdir(fixtures)):
    text = open(os.path.join(fixtures, name), encoding="utf-8").read()
    samples.append((name, text, len(anchor.findall(text))))

def vary(text):
    """Another run of the same races: other addresses and goroutine ids."""
    text = re.sub(r"0x00c0[0-9a-f]{8}", lambda _: "0x00c0%08x" % rng.randrange(1 << 32), text)
    text = re.sub(r"goroutine (\d+)", lambda m: "goroutine %d" % (int(m.group(1)) + rng.randrange(1000)), text)
    if rng.random() < 0.2:
        # One process on one host; its clock ticks during the report.
        host, pid, sec = rng.randrange(20), rng.randrange(1000, 1 << 15), rng.randrange(50)
        text = "".join("Nov 28 03:12:%02d testbox-%02d restorepoint[%d]: %s\n"
                       % (sec + i // 20, host, pid, line)
                       for i, line in enumerate(text.splitlines()))
    if rng.random() < 0.1:
        text = text.replace("\n", "\r\n")
    return text

devices = ["core-sw%d" % i for i in range(1, 40)] + ["edge-rtr%d" % i for i in range(1, 12)]
templates = [
    "2026/11/28 12:{m:02d}:{s:02d} backup finished for {dev} in {ms}ms ({kb} KiB)",
    "2026/11/28 12:{m:02d}:{s:02d} scheduler idle, jobs: {n}",
    "2026-11-28T12:{m:02d}:{s:02d}.{us:06d}Z INFO  restorepoint::poll: polled {dev} status=ok rtt={ms}ms",
    "2026-11-28T12:{m:02d}:{s:02d}.{us:06d}Z DEBUG restorepoint::store: snapshot {n} written to /var/lib/restorepoint/{dev}/{n}.cfg",
    "level=info ts=2026-11-28T12:{m:02d}:{s:02d}Z caller=http.go:{n} msg=\"request served\" method=GET path=/api/v1/devices/{dev} status=200 took={ms}ms",
    "level=warn ts=2026-11-28T12:{m:02d}:{s:02d}Z caller=ssh.go:{n} msg=\"retrying connection\" device={dev} attempt={a}",
    "2026/11/28 12:{m:02d}:{s:02d} WARNING: {dev} answered slowly ({ms}ms), raising timeout",
]
weights = [30, 10, 25, 15, 15, 4, 1]

def service_block(nbytes):
    lines, size = [], 0
    while size < nbytes:
        t = rng.choices(templates, weights)[0]
        line = t.format(m=rng.randrange(60), s=rng.randrange(60), us=rng.randrange(10**6),
                        dev=rng.choice(devices), ms=rng.randrange(2000), kb=rng.randrange(1 << 16),
                        n=rng.randrange(100000), a=rng.randrange(1, 6)) + "\n"
        lines.append(line)
        size += len(line)
    return "".join(lines)

# A fixture holds 1.5 reports on average (truncated.log is used half as
# often): about 330 insertions make about 500 reports.
insertions = 330
gap = max(target // insertions, 4096)
# A pool of service text, cut into pieces that fill the gaps between reports.
pool = service_block(max(8 * 1024 * 1024, 2 * gap))
expected = 0
written = 0
with open(out_path + ".tmp", "w", encoding="utf-8", newline="") as out:
    while written < target:
        start = pool.index("\n", rng.randrange(len(pool) - gap)) + 1
        piece = pool[start:start + gap]
        piece = piece[: piece.rfind("\n") + 1]
        out.write(piece)
        written += len(piece.encode())
        if written >= target:
            break
        name, text, anchors = rng.choice(samples)
        if name == "truncated.log" and rng.random() < 0.5:
            continue
        text = vary(text)
        out.write(text)
        written += len(text.encode())
        expected += anchors
os.replace(out_path + ".tmp", out_path)
open(out_path + ".reports", "w").write("%d\n" % expected)
print("wrote %d bytes with %d reports" % (written, expected), file=sys.stderr)
PY
fi
expected=$(cat "$expected_file")

cargo build --release --quiet
bin=target/release/rp-devops

if ! command -v rg >/dev/null; then
    echo "installing ripgrep..." >&2
    if ! apt-get install -y -qq ripgrep >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq ripgrep >/dev/null
    fi
fi

# Warm the page cache: every tool reads the file from memory.
cat "$log" >/dev/null

# No GitLab configured: scan-races does an offline dry run.
run_rp() {
    env -i PATH="$PATH" HOME="$(mktemp -d)" "$bin" scan-races --dry-run --json "$log"
}

# Best wall time of 3 runs, in seconds. Output goes to a real file: GNU grep
# stops at the first match when its output is /dev/null.
sink=$(mktemp)
best_of_3() {
    local best="" t
    for _ in 1 2 3; do
        local start end
        start=$(date +%s.%N)
        "$@" >"$sink" 2>/dev/null || true
        end=$(date +%s.%N)
        t=$(echo "$end - $start" | bc -l)
        if [[ -z $best ]] || (($(echo "$t < $best" | bc -l))); then best=$t; fi
    done
    printf '%.3f' "$best"
}

reports=$(run_rp 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["reports"])')
if [[ $reports != "$expected" ]]; then
    echo "FAIL: rp-devops found $reports reports, $expected were injected" >&2
    exit 1
fi

t_rp=$(best_of_3 run_rp)
t_rg=$(best_of_3 rg -c 'WARNING: DATA RACE' "$log")
t_grep=$(best_of_3 grep -c 'WARNING: DATA RACE' "$log")
rss_file=$(mktemp)
env -i PATH="$PATH" HOME="$(mktemp -d)" /usr/bin/time -o "$rss_file" -f %M \
    "$bin" scan-races --dry-run --json "$log" >/dev/null 2>&1
rss_kib=$(tail -1 "$rss_file")

size=$(stat -c %s "$log")
echo "file:              $log ($((size / 1024 / 1024)) MiB, $expected reports injected, $reports found)"
echo "rp-devops:         ${t_rp} s"
rg_version=$(rg --version)
echo "rg -c:             ${t_rg} s  (${rg_version%%$'\n'*})"
echo "grep -c:           ${t_grep} s  ($(grep --version | head -1))"
echo "rp-devops / rg:    $(echo "scale=2; $t_rp / $t_rg" | bc -l)x  (target <= 3)"
echo "rp-devops / grep:  $(echo "scale=2; $t_rp / $t_grep" | bc -l)x  (target < 1)"
echo "peak RSS:          $((rss_kib / 1024)) MiB ($rss_kib KiB, target < 64 MiB)"
echo "throughput:        $(echo "scale=0; $size / 1048576 / $t_rp" | bc -l) MiB/s"
