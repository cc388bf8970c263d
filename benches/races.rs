//! Throughput of `races::scan` on an in-memory log: ordinary service lines
//! with race reports from `tests/fixtures/races` spread through them.
//!
//! Two mixes: sparse (a report every ~1 MiB, the common case where the fast
//! search does nearly all the work) and dense (a report every ~16 KiB, where
//! reading reports line by line dominates). `scripts/bench-scan-races.sh`
//! measures the whole command against ripgrep and grep on a 1 GiB file.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rp_devops::races;

const FIXTURES: [&str; 6] = [
    "cache.log",
    "counter.log",
    "journald-prefixed.log",
    "tsan-cpp.log",
    "gotest.log",
    "truncated.log",
];

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/races/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// About `size` bytes of log with a report every `every` bytes; returns the
/// log and how many reports it holds.
fn log(size: usize, every: usize) -> (Vec<u8>, u64) {
    let reports: Vec<(String, u64)> = FIXTURES
        .iter()
        .map(|name| {
            let text = fixture(name);
            let count = text.matches("WARNING: DATA RACE").count()
                + text.matches("WARNING: ThreadSanitizer: data race").count();
            (text, count as u64)
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(42);
    let mut out = Vec::with_capacity(size + 64 * 1024);
    let mut next_report = every;
    let mut count = 0;
    let mut i = 0;
    while out.len() < size {
        let line = match rng.u8(..10) {
            0..=3 => format!(
                "2026/11/28 12:{:02}:{:02} backup finished for core-sw{} in {}ms\n",
                rng.u8(..60),
                rng.u8(..60),
                rng.u8(..40),
                rng.u16(..2000)
            ),
            4..=7 => format!(
                "2026-11-28T12:52:21.{:06}Z INFO  restorepoint::poll: polled edge-rtr{} status=ok rtt={}ms\n",
                rng.u32(..1_000_000),
                rng.u8(..12),
                rng.u16(..500)
            ),
            8 => format!(
                "level=warn msg=\"retrying connection\" device=core-sw{} attempt={}\n",
                rng.u8(..40),
                rng.u8(1..6)
            ),
            _ => format!(
                "2026/11/28 12:52:21 WARNING: core-sw{} answered slowly ({}ms)\n",
                rng.u8(..40),
                rng.u16(..2000)
            ),
        };
        out.extend_from_slice(line.as_bytes());
        if out.len() >= next_report {
            let (text, n) = &reports[i % reports.len()];
            out.extend_from_slice(text.as_bytes());
            count += n;
            i += 1;
            next_report = out.len() + every;
        }
    }
    (out, count)
}

fn scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    group.sample_size(20);
    for (name, every) in [("sparse", 1 << 20), ("dense", 16 << 10)] {
        let (log, reports) = log(64 << 20, every);
        group.throughput(Throughput::Bytes(log.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut found = 0u64;
                let stats = races::scan(black_box(&log[..]), &mut |_| {}, &mut |_| found += 1)
                    .expect("reading memory");
                assert_eq!(stats.reports, reports);
                found
            })
        });
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
