#!/usr/bin/env bash
# Benchmark: how long `rp-devops tag-library --dry-run` takes to find the
# next version on a remote with 10,000 tags, next to the shell pipeline that
# tag jobs usually run (`git ls-remote --tags REMOTE | sort -V | tail -1`),
# timed in the same run, best of N. Target: at most 1.5x the pipeline.
#
# Usage: scripts/bench-tag-library.sh [TAGS] [RUNS]
# Remotes: a file:// URL and a git daemon on 127.0.0.1 (both measured).
set -euo pipefail

TAGS=${1:-10000}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
DAEMON_PID=
cleanup() {
    if [[ -n $DAEMON_PID ]]; then kill "$DAEMON_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Build first, with the caller's HOME (rustup and cargo live there).
echo "building release binary..." >&2
(cd "$ROOT" && cargo build --release --quiet)
RP=$ROOT/target/release/rp-devops

# Hermetic git: no user or system config, a fixed identity for the setup.
export HOME=$WORK/home GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
mkdir -p "$HOME"

echo "making a remote with $TAGS annotated tags..." >&2
git init -q --bare -b main "$WORK/srv/lib.git"
# One fast-import stream: 100 commits, then TAGS annotated tags
# v0.0.1 ... spread over majors, minors and patches, each on one of the
# commits, the highest on the last commit's parent.
{
    for c in $(seq 1 100); do
        printf 'commit refs/heads/main\nmark :%d\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s\n' \
            "$c" $((1700000000 + c)) $((${#c} + 7)) "commit $c"
        if [[ $c -gt 1 ]]; then printf 'from :%d\n' $((c - 1)); fi
        printf 'M 644 inline file.txt\ndata %d\n%s\n\n' $((${#c} + 1)) "$c"
    done
    n=0
    for major in $(seq 0 9); do
        for minor in $(seq 0 9); do
            for patch in $(seq 1 100); do
                n=$((n + 1))
                [[ $n -gt $TAGS ]] && break 3
                mark=$(( (n * 99 / TAGS) ))
                [[ $mark -lt 1 ]] && mark=1
                printf 'tag v%d.%d.%d\nfrom :%d\ntagger Bench <bench@example.com> 1700000000 +0000\ndata 8\nrelease\n\n' \
                    "$major" "$minor" "$patch" "$mark"
            done
        done
    done
} | git --git-dir="$WORK/srv/lib.git" fast-import --quiet
git --git-dir="$WORK/srv/lib.git" pack-refs --all
git --git-dir="$WORK/srv/lib.git" gc --quiet

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
git daemon --export-all --reuseaddr --base-path="$WORK/srv" --listen=127.0.0.1 --port="$PORT" "$WORK/srv" 2>"$WORK/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 1 100); do
    (echo > /dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
    sleep 0.05
done

now_ms() { date +%s%3N; }

# best_of CMD...: the fastest of RUNS wall times, in milliseconds.
best_of() {
    local best= start end
    for _ in $(seq 1 "$RUNS"); do
        start=$(now_ms)
        "$@" > /dev/null
        end=$(now_ms)
        if [[ -z $best || $((end - start)) -lt $best ]]; then best=$((end - start)); fi
    done
    echo "$best"
}

pipeline() { git ls-remote --tags "$1" | sort -V | tail -1; }
rp_dry_run() { (cd "$1" && "$RP" tag-library --dry-run --json -q); }

echo >&2
printf '%-10s %-46s %10s\n' remote command "best of $RUNS"
for kind in file daemon; do
    case $kind in
        file) URL=file://$WORK/srv/lib.git ;;
        daemon) URL=git://127.0.0.1:$PORT/lib.git ;;
    esac
    CLONE=$WORK/clone-$kind
    git clone -q --depth 1 --no-tags "$URL" "$CLONE"

    # Same answer from both, or the timing means nothing.
    # (The timed pipeline is the one tag jobs use as is; this one is the
    # correct version of it, to check the answer.)
    expected=$(git ls-remote --tags --refs "$URL" | cut -f2 | sed 's#refs/tags/##' | sort -V | tail -1)
    got=$(rp_dry_run "$CLONE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["previous"])')
    if [[ $expected != "$got" ]]; then
        echo "mismatch: pipeline says $expected, rp-devops says $got" >&2
        exit 1
    fi

    # Warm the page cache once for both, then measure alternately.
    pipeline "$URL" > /dev/null
    rp_ms=$(best_of rp_dry_run "$CLONE")
    pipe_ms=$(best_of pipeline "$URL")
    printf '%-10s %-46s %8d ms\n' "$kind" "rp-devops tag-library --dry-run --json" "$rp_ms"
    printf '%-10s %-46s %8d ms\n' "$kind" "git ls-remote --tags | sort -V | tail -1" "$pipe_ms"
    ratio=$(python3 -c "print(f'{$rp_ms / max($pipe_ms, 1):.2f}')")
    printf '%-10s %-46s %10sx (latest %s, target <= 1.5x)\n' "$kind" "ratio" "$ratio" "$expected"
done
