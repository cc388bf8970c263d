#!/usr/bin/env bash
# Fuzz rp-devops's parsers with cargo fuzz (libFuzzer), one target at a time,
# at the lowest priority: the race-log parser, the config loader, the release
# receiver's multipart form, the webhook payload and signature, the
# issue-reference finder, and Freshdesk HTML -> Markdown.
#
#   scripts/fuzz.sh                  # every target, 10 minutes each
#   scripts/fuzz.sh 60 race_log      # one target, 60 seconds
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); both
# are installed on first use if missing. Each target starts from the
# hand-written seeds in fuzz/seeds/TARGET and the committed corpus in
# fuzz/corpus/TARGET, adds what it learns to the corpus and minimizes it
# afterwards (`cargo fuzz cmin`), so that committing fuzz/corpus keeps the
# coverage reached; a crash lands in fuzz/artifacts/TARGET and stops the
# script with the command that replays it. The summary gives executions per
# target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(race_log config release_form webhook_payload references html_markdown)

command -v rustup >/dev/null || { echo "fuzz.sh: needs rustup" >&2; exit 2; }
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# Build every target once (cargo fuzz run reuses the build).
nice -n 19 cargo +nightly fuzz build -O
summary=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  echo "== $target: ${seconds}s"
  set +e
  nice -n 19 cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -dict="dicts/$target.dict" -print_final_stats=1 \
    -rss_limit_mb=2048 -timeout=20 >"$log" 2>&1
  status=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | tr -d 'cov: ')
  grep -E '^(#[0-9]+.*(DONE|pulse)|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)' "$log" | tail -n 4 || true
  if [ $status -ne 0 ]; then
    tail -n 40 "$log"
    echo "fuzz.sh: $target found a crash (exit $status); replay with:" >&2
    echo "  cd fuzz && cargo +nightly fuzz run -O $target artifacts/$target/<file>" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  nice -n 19 cargo +nightly fuzz cmin -O "$target" "corpus/$target" >/dev/null 2>&1 \
    || echo "fuzz.sh: minimizing corpus/$target failed; the corpus is kept as it is" >&2
  summary+=("$target: ${runs:-?} executions (${per_second:-?}/s), coverage ${coverage:-?} edges, corpus $(ls "corpus/$target" | wc -l) inputs")
done
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
