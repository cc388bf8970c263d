#!/usr/bin/env bash
# `serve` under load and abuse, on loopback only; stops by itself (a few
# minutes). Builds the release binary and the soak driver (tests/soak.rs,
# not part of `cargo test`), then: 200 concurrent uploads, 2,000 half-open
# connections, garbage requests, oversize bodies, a burst of 1,000 webhook
# deliveries; /healthz watched every 100 ms (2 s allowed) and serve's RSS
# sampled from /proc throughout. Prints PASS/FAIL per check; exits 1 if any
# check failed.
#
#   scripts/soak-serve.sh
#   SOAK_SERVE_NOFILE=65536 scripts/soak-serve.sh   # serve's soft fd limit (default 1024, systemd's)
set -euo pipefail
cd "$(dirname "$0")/.."
# The load generator holds 2,000 connections itself.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec timeout 900 cargo test --release --test soak -- --nocapture --test-threads=1
