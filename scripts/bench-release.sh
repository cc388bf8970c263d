#!/usr/bin/env bash
# Benchmark of the release pipeline (issues 4 and 12): `rp-devops release
# upload` of a 1 GiB artifact to `rp-devops serve` over loopback, against
# `md5sum` of the same file in the same run. Two uploads to one server:
# unpinned (both ends share the machine's cores), then pinned with taskset
# (the client on CPU 0, every thread of the server on CPU 1: what a build
# server and an update server that are separate machines see).
#
# Targets: wall time pinned <= 1.5x md5sum's and unpinned <= 1.7x; the
# receiver's CPU time about 1.4 MD5 passes (<= ~3 s for 1 GiB on the
# development machine); the client's about one; peak RSS < 32 MiB for the
# client (GNU time's %M) and for the server (VmHWM from /proc/PID/status).
#
# Usage: scripts/bench-release.sh [SIZE_MIB]   (default 1024)
# RP_BENCH_BIN=/path/to/rp-devops benchmarks that binary instead of building
# this tree (to compare two builds in one sitting).
# The artifact is cached in ./bench-data/ (git-ignored); the release dir is a
# temporary directory under bench-data/ (or under $BENCH_RELEASE_PARENT, e.g.
# /dev/shm to take the disk out of the picture), removed afterwards.
# CPU times come from GNU time (client, md5sum) and /proc/PID/stat before
# and after each upload (server); they are less affected than wall times by
# other work on the machine, whose load average is printed. On a busy
# machine, `chrt -f 10 scripts/bench-release.sh` (root) gives the benchmark,
# md5sum included, the CPUs as a quiet machine would.
set -euo pipefail

cd "$(dirname "$0")/.."
size_mib=${1:-1024}
secret="bench-$RANDOM$RANDOM"

command -v /usr/bin/time >/dev/null || { echo "needs GNU time (/usr/bin/time; Debian package 'time')" >&2; exit 2; }
command -v taskset >/dev/null || { echo "needs taskset (Debian package 'util-linux')" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 CPUs (one per side when pinned)" >&2; exit 2; }

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
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Warm the page cache so both sides read from memory, as in CI right after
# the build wrote the artifact.
cat "$artifact" > /dev/null
expected=$(md5sum < "$artifact" | cut -c1-32)

now() { date +%s.%N; }
calc() { awk "BEGIN {print $*}"; }
ticks=$(getconf CLK_TCK)
server_cpu() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$server_pid/stat"; }

t0=$(now)
/usr/bin/time -f '%U %S' -o "$work/md5sum.cpu" md5sum "$artifact" > /dev/null
t1=$(now)
md5_wall=$(calc "$t1 - $t0")
read -r md5_user md5_sys < <(tail -1 "$work/md5sum.cpu")
md5_cpu=$(calc "$md5_user + $md5_sys")

# upload NAME VERSION [taskset -c N]: one upload; prints its line.
upload() {
    local name=$1 version=$2
    shift 2
    local cpu0 cpu1 t0 t1 wall kib user sys
    cpu0=$(server_cpu)
    t0=$(now)
    RP_RELEASE_SECRET=$secret /usr/bin/time -f '%M %U %S' -o "$work/client.out" "$@" \
        "$bin" -q --json release upload "$artifact" --url "$url" --product bench --meta "version=$version" \
        > "$work/answer.json"
    t1=$(now)
    cpu1=$(server_cpu)
    grep -q "\"md5\": \"$expected\"" "$work/answer.json" \
        || { echo "md5 mismatch in answer" >&2; cat "$work/answer.json" >&2; exit 1; }
    read -r kib user sys < <(tail -1 "$work/client.out")
    wall=$(calc "$t1 - $t0")
    printf '%-22s %6.2f s %6.2fx %10.2f s %10.2f s %7.2fx %9.1f MiB\n' "$name" "$wall" "$(calc "$wall / $md5_wall")" \
        "$(calc "$user + $sys")" "$(calc "$cpu1 - $cpu0")" "$(calc "($cpu1 - $cpu0) / $md5_cpu")" \
        "$(calc "$kib / 1024")"
}

printf 'artifact               %d MiB\n' "$size_mib"
printf 'md5sum                 %6.2f s wall, %.2f s CPU\n' "$md5_wall" "$md5_cpu"
printf '%-22s %8s %7s %12s %12s %8s %13s\n' "release upload" "wall" "ratio" "client CPU" "server CPU" "/md5sum" "client RSS"
upload "unpinned (<= 1.7x)" 1.0
taskset -a -p -c 1 "$server_pid" > /dev/null
upload "pinned (<= 1.5x)" 2.0 taskset -c 0
printf 'server peak RSS        %.1f MiB (target < 32, both uploads)\n' \
    "$(calc "$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status") / 1024")"
printf 'machine                %s cores, load average %s before, %s after\n' \
    "$(nproc)" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)"
