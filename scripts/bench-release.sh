#!/usr/bin/env bash
# Benchmark of the release pipeline (issue 4): `rp-devops release upload` of a
# 1 GiB artifact to `rp-devops serve` over loopback, against `md5sum` of the
# same file in the same run.
#
# Targets: upload wall time <= 1.5x md5sum's; peak RSS < 32 MiB for the
# client (GNU time's %M) and for the server (VmHWM from /proc/PID/status).
#
# Usage: scripts/bench-release.sh [SIZE_MIB]   (default 1024)
# RP_BENCH_BIN=/path/to/rp-devops benchmarks that binary instead of building
# this tree (to compare two builds in one sitting).
# The artifact is cached in ./bench-data/ (git-ignored); the release dir is a
# temporary directory under bench-data/ (or under $BENCH_RELEASE_PARENT, e.g.
# /dev/shm to take the disk out of the picture), removed afterwards.
set -euo pipefail

cd "$(dirname "$0")/.."
size_mib=${1:-1024}
secret="bench-$RANDOM$RANDOM"

command -v /usr/bin/time >/dev/null || { echo "needs GNU time (/usr/bin/time; Debian package 'time')" >&2; exit 2; }

bin=${RP_BENCH_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=$PWD/target/release/rp-devops
fi

mkdir -p bench-data
artifact=bench-data/artifact-${size_mib}MiB.tgz
if [ ! -f "$artifact" ] || [ "$(stat -c %s "$artifact")" -ne $((size_mib * 1024 * 1024)) ]; then
    echo "making $artifact ..." >&2
    # Random data: incompressible, like a real .tgz.
    head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$artifact.tmp"
    mv "$artifact.tmp" "$artifact"
fi

work=$(mktemp -d "${BENCH_RELEASE_PARENT:-$PWD/bench-data}/rp-bench.XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/rp-devops.yml" <<EOF
release:
  dir: $work/rel
  max_size: 8GiB
  products:
    bench: {}
EOF

RP_RELEASE_SECRET=$secret "$bin" --config "$work/rp-devops.yml" serve --listen 127.0.0.1:0 \
    2> "$work/serve.log" &
server_pid=$!
for _ in $(seq 100); do
    grep -q '^listening on' "$work/serve.log" 2>/dev/null && break
    sleep 0.05
done
url=$(sed -n 's/^listening on //p' "$work/serve.log" | head -1)
[ -n "$url" ] || { cat "$work/serve.log" >&2; exit 1; }

# Warm the page cache so both sides read from memory, as in CI right after
# the build wrote the artifact.
cat "$artifact" > /dev/null

now() { date +%s.%N; }

t0=$(now)
/usr/bin/time -f '%U %S' -o "$work/md5sum.cpu" md5sum "$artifact" > /dev/null
t1=$(now)
md5_wall=$(awk "BEGIN {print $t1 - $t0}")

ticks=$(getconf CLK_TCK)
server_cpu() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$server_pid/stat"; }
server_cpu0=$(server_cpu)
t0=$(now)
RP_RELEASE_SECRET=$secret /usr/bin/time -f '%M %U %S' -o "$work/client.rss" \
    "$bin" -q --json release upload "$artifact" --url "$url" --product bench --meta version=1 \
    > "$work/answer.json"
t1=$(now)
upload_wall=$(awk "BEGIN {print $t1 - $t0}")

server_cpu1=$(server_cpu)
read -r client_kib client_user client_sys < <(tail -1 "$work/client.rss")
read -r md5_user md5_sys < <(tail -1 "$work/md5sum.cpu")
server_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status")
expected=$(md5sum < "$artifact" | cut -c1-32)
grep -q "\"md5\": \"$expected\"" "$work/answer.json" || { echo "md5 mismatch in answer" >&2; cat "$work/answer.json" >&2; exit 1; }

ratio=$(awk "BEGIN {print $upload_wall / $md5_wall}")
printf 'artifact            %d MiB\n' "$size_mib"
printf 'md5sum              %.2f s\n' "$md5_wall"
printf 'release upload      %.2f s  (%.0f MiB/s, incl. server fsync)\n' "$upload_wall" "$(awk "BEGIN {print $size_mib / $upload_wall}")"
printf 'ratio               %.2fx   (target <= 1.5x)\n' "$ratio"
printf 'client peak RSS     %.1f MiB (target < 32)\n' "$(awk "BEGIN {print $client_kib / 1024}")"
printf 'server peak RSS     %.1f MiB (target < 32)\n' "$(awk "BEGIN {print $server_kib / 1024}")"
printf 'CPU time            md5sum %.2f s; upload: client %.2f s + server %.2f s\n' \
    "$(awk "BEGIN {print $md5_user + $md5_sys}")" \
    "$(awk "BEGIN {print $client_user + $client_sys}")" \
    "$(awk "BEGIN {print $server_cpu1 - $server_cpu0}")"
printf 'machine             %s cores, load average %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
