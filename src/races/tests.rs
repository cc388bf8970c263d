//! Behaviour of `scan` on the real race-detector logs in
//! `tests/fixtures/races/` and on variants built from them here: what a user
//! would check in the issues it leads to (how many reports, which frames,
//! which title, which race is the same race).

use std::io::Read;

use super::stream::Lines;
use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/races/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn scan_all(input: impl Read) -> (Vec<RaceReport>, ScanStats) {
    let mut found = Vec::new();
    let stats = scan(input, &mut |_| {}, &mut |r| found.push(r)).expect("reading memory");
    (found, stats)
}

fn reports(input: &[u8]) -> Vec<RaceReport> {
    scan_all(input).0
}

fn one(input: &[u8]) -> RaceReport {
    let mut found = reports(input);
    assert_eq!(found.len(), 1, "want exactly one report");
    found.remove(0)
}

fn tops(report: &RaceReport) -> (Option<String>, Option<String>) {
    report.top_frames()
}

fn want(a: Option<&str>, b: Option<&str>) -> (Option<String>, Option<String>) {
    (a.map(str::to_owned), b.map(str::to_owned))
}

const ADD: &str = "example.com/racegen/internal/store.(*Inventory).Add()";
const SNAPSHOT: &str = "example.com/racegen/internal/store.(*Inventory).Snapshot()";
const TOUCH: &str = "example.com/racegen/internal/store.(*Inventory).Touch()";

/// Per corpus file: top frames, title and truncated flag of each report.
#[test]
fn corpus_reports_frames_and_titles() {
    type Want = (
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
        bool,
    );
    let corpus: [(&str, Vec<Want>); 9] = [
        (
            "counter.log",
            vec![(
                Some(ADD),
                Some(SNAPSHOT),
                "Data race in example.com/racegen/internal/store.(*Inventory).Add() vs example.com/racegen/internal/store.(*Inventory).Snapshot()",
                false,
            )],
        ),
        (
            "cache.log",
            vec![
                (
                    Some("main.(*cache).put()"),
                    Some("main.(*cache).get()"),
                    "Data race in main.(*cache).put() vs main.(*cache).get()",
                    false,
                ),
                (
                    Some("main.main.func3()"),
                    Some("main.main()"),
                    "Data race in main.main.func3() vs main.main()",
                    false,
                ),
            ],
        ),
        (
            "generic.log",
            vec![
                (
                    Some("main.(*Queue[...]).Push()"),
                    Some("main.(*Queue[...]).Push()"),
                    "Data race in main.(*Queue[...]).Push()",
                    false,
                ),
                // runtime.growslice is skipped: same race as the first.
                (
                    Some("main.(*Queue[...]).Push()"),
                    Some("main.(*Queue[...]).Push()"),
                    "Data race in main.(*Queue[...]).Push()",
                    false,
                ),
            ],
        ),
        (
            "gorace-logpath.race.log",
            vec![
                (
                    Some(TOUCH),
                    Some(TOUCH),
                    "Data race in example.com/racegen/internal/store.(*Inventory).Touch()",
                    false,
                ),
                (
                    Some("main.(*scheduler).tick()"),
                    Some("main.(*scheduler).tick()"),
                    "Data race in main.(*scheduler).tick()",
                    false,
                ),
            ],
        ),
        (
            "gotest.log",
            vec![(
                Some("example.com/racegen/internal/sched.(*Runner).Run()"),
                Some("example.com/racegen/internal/sched.(*Runner).Run()"),
                "Data race in example.com/racegen/internal/sched.(*Runner).Run()",
                false,
            )],
        ),
        (
            "journald-prefixed.log",
            vec![
                (
                    Some(TOUCH),
                    Some(TOUCH),
                    "Data race in example.com/racegen/internal/store.(*Inventory).Touch()",
                    false,
                ),
                (
                    Some("main.(*scheduler).tick()"),
                    Some("main.(*scheduler).tick()"),
                    "Data race in main.(*scheduler).tick()",
                    false,
                ),
            ],
        ),
        (
            "server-run1.log",
            vec![
                (
                    Some(TOUCH),
                    Some(TOUCH),
                    "Data race in example.com/racegen/internal/store.(*Inventory).Touch()",
                    false,
                ),
                (
                    Some("main.(*scheduler).tick()"),
                    Some("main.(*scheduler).tick()"),
                    "Data race in main.(*scheduler).tick()",
                    false,
                ),
            ],
        ),
        (
            "truncated.log",
            vec![(
                Some("main.(*cache).put()"),
                None,
                "Data race in main.(*cache).put()",
                true,
            )],
        ),
        (
            "tsan-cpp.log",
            vec![(
                Some("worker()"),
                Some("worker()"),
                "Data race in worker()",
                false,
            )],
        ),
    ];
    for (name, want) in corpus {
        let (found, stats) = scan_all(fixture(name).as_bytes());
        let got: Vec<(Option<String>, Option<String>, String, bool)> = found
            .iter()
            .map(|r| (r.top_frames().0, r.top_frames().1, r.title(), r.truncated))
            .collect();
        let expected: Vec<(Option<String>, Option<String>, String, bool)> = want
            .iter()
            .map(|w| {
                (
                    w.0.map(str::to_owned),
                    w.1.map(str::to_owned),
                    w.2.to_owned(),
                    w.3,
                )
            })
            .collect();
        assert_eq!(got, expected, "{name}");
        assert_eq!(stats.reports, want.len() as u64, "{name}");
        assert_eq!(
            stats.truncated,
            want.iter().filter(|w| w.3).count() as u64,
            "{name}"
        );
        assert_eq!(stats.bytes, fixture(name).len() as u64, "{name}");
        for report in &found {
            assert!(
                report.text.starts_with("WARNING: "),
                "{name}: {}",
                report.text
            );
            assert!(!report.text.contains("=================="), "{name}");
        }
    }
}

#[test]
fn report_text_accesses_and_line_numbers() {
    let found = reports(fixture("cache.log").as_bytes());
    let first = &found[0];
    assert_eq!(first.runtime, Runtime::Go);
    assert_eq!(first.line, 2);
    assert_eq!(found[1].line, 28);
    assert_eq!(first.accesses.len(), 2);
    assert_eq!(
        first.accesses[0].header,
        "Write at 0x00c00007c150 by goroutine 7:"
    );
    // Frames as printed, the runtime frame included; identity skips it.
    assert_eq!(
        first.accesses[0].frames,
        [
            "runtime.mapassign_faststr()",
            "main.(*cache).put()",
            "main.main.func1()"
        ]
    );
    assert_eq!(
        first.accesses[1].header,
        "Previous read at 0x00c00007c150 by goroutine 8:"
    );
    let log = fixture("cache.log");
    let lines: Vec<&str> = log.lines().skip(1).take(24).collect();
    assert_eq!(first.text, lines.join("\n"));
    // The previous access of the second report is by the main goroutine.
    assert_eq!(
        found[1].accesses[1].header,
        "Previous write at 0x00c00001a278 by main goroutine:"
    );
}

#[test]
fn offsets_raw_digests_and_top_frame_locations() {
    let log = fixture("cache.log");
    let found = reports(log.as_bytes());
    let warning = |n: usize| {
        log.match_indices("WARNING: DATA RACE")
            .nth(n)
            .map(|(at, _)| at as u64)
    };
    assert_eq!(Some(found[0].offset), warning(0));
    assert_eq!(Some(found[1].offset), warning(1));
    // The same report read again has the same raw digest; two reports do not.
    assert_eq!(reports(log.as_bytes())[0].raw_digest, found[0].raw_digest);
    assert_ne!(found[0].raw_digest, found[1].raw_digest);

    let first = &found[0].accesses;
    assert_eq!(first[0].kind(), "Write");
    assert_eq!(first[1].kind(), "Previous read");
    // The runtime frame above it is skipped, its location with it.
    assert_eq!(
        first[0].top(),
        Some((
            "main.(*cache).put()",
            Some("/builds/restorepoint/racegen/cmd/cache/main.go:13 +0x159")
        ))
    );
    assert!(first[1].top().expect("top").1.is_some());

    let tsan = one(fixture("tsan-cpp.log").as_bytes());
    assert_eq!(tsan.accesses[0].kind(), "Read of size 8");
    assert_eq!(
        tsan.accesses[1].top(),
        Some(("worker()", Some("/builds/restorepoint/racegen/tsan.cpp:6")))
    );
    assert_eq!(
        tsan.accesses[0].locations.len(),
        tsan.accesses[0].frames.len()
    );
}

#[test]
fn line_prefixes_and_json_events_count_in_the_raw_digest() {
    // Two days of one race in logs that differ only by their timestamps:
    // the same normalised text, different raw text.
    let log = fixture("counter.log");
    let stamped = |day: u32| -> String {
        log.lines()
            .map(|l| format!("Nov {day} 03:12:44 testbox-07 app[1]: {l}\n"))
            .collect()
    };
    let (a, b) = (one(stamped(28).as_bytes()), one(stamped(29).as_bytes()));
    assert_eq!(a.text, b.text);
    assert_eq!(a.offset, b.offset);
    assert_ne!(a.raw_digest, b.raw_digest);
    assert_eq!(a.raw_digest, one(stamped(28).as_bytes()).raw_digest);

    let json = as_test_json(&fixture("gotest.log"));
    let later = json.replace("2026-", "2027-");
    assert_ne!(json, later, "the events carry a time");
    let (a, b) = (one(json.as_bytes()), one(later.as_bytes()));
    assert_eq!(a.text, b.text);
    assert_ne!(a.raw_digest, b.raw_digest);
}

#[test]
fn tsan_report() {
    let report = one(fixture("tsan-cpp.log").as_bytes());
    assert_eq!(report.runtime, Runtime::ThreadSanitizer);
    assert!(!report.truncated);
    assert!(
        report
            .text
            .starts_with("WARNING: ThreadSanitizer: data race (pid=6330)")
    );
    assert!(report.text.ends_with(
        "SUMMARY: ThreadSanitizer: data race /builds/restorepoint/racegen/tsan.cpp:6 in worker()"
    ));
    assert_eq!(report.accesses.len(), 2);
    assert_eq!(
        report.accesses[0].header,
        "Read of size 8 at 0x560695a6b090 by thread T2:"
    );
    assert_eq!(report.accesses[0].frames.len(), 7);
    assert_eq!(report.accesses[0].frames[6], "<null>");
    assert_eq!(report.title(), "Data race in worker()");
    // The trailing "ThreadSanitizer: reported 1 warnings" and "2000" are not
    // part of it.
    assert!(!report.text.contains("reported 1 warnings"));
}

#[test]
fn journald_prefix_is_removed_and_identity_kept() {
    let plain = reports(fixture("server-run1.log").as_bytes());
    let journald = reports(fixture("journald-prefixed.log").as_bytes());
    assert_eq!(journald.len(), 2);
    for (p, j) in plain.iter().zip(&journald) {
        assert_eq!(j.fingerprint(), p.fingerprint());
        assert!(!j.text.contains("testbox-07"));
        assert!(!j.text.contains("backup finished"));
        // Only goroutine ids differ between the two runs.
        assert_eq!(
            j.text.replace("goroutine 10", "goroutine X"),
            p.text.replace("goroutine 10", "goroutine X")
        );
    }
}

#[test]
fn test_failure_lines_are_context_not_reports() {
    let (found, stats) = scan_all(fixture("gotest.log").as_bytes());
    assert_eq!(stats.reports, 1);
    assert!(!found[0].truncated);
    for context in ["--- FAIL", "testing.go:1319", "FAIL\t"] {
        assert!(!found[0].text.contains(context), "{context}");
    }
    // Same for the lines after a report in a plain run.
    let report = one(fixture("counter.log").as_bytes());
    assert!(!report.text.contains("Found 1 data race"));
    assert!(!report.text.contains("exit status"));
}

/// The counter.log report with its two accesses the other way round, as
/// another run may print it.
fn swap_accesses(log: &str) -> String {
    let start = log.find("Write at").expect("fixture has a write");
    let middle = log
        .find("Previous read at")
        .expect("fixture has a previous read");
    let end = log
        .find("Goroutine 10")
        .expect("fixture has a goroutine block");
    let write = &log[start..middle];
    let read = &log[middle..end];
    format!(
        "{}{}\n{}{}",
        &log[..start],
        read.trim_end().replace("Previous read", "Read"),
        write.trim_end().replace("Write at", "Previous write at"),
        format_args!("\n\n{}", &log[end..])
    )
}

#[test]
fn swapped_accesses_are_the_same_race() {
    let log = fixture("counter.log");
    let original = one(log.as_bytes());
    let swapped = one(swap_accesses(&log).as_bytes());
    assert_eq!(tops(&swapped), want(Some(SNAPSHOT), Some(ADD)));
    assert_eq!(swapped.fingerprint(), original.fingerprint());
    // The title follows the report's own order.
    assert_eq!(swapped.title(), format!("Data race in {SNAPSHOT} vs {ADD}"));
}

#[test]
fn addresses_lines_offsets_and_ids_are_not_identity() {
    let log = fixture("counter.log");
    let rebuilt = regex::Regex::new(r"0x[0-9a-f]+")
        .expect("static regex")
        .replace_all(&log, "0xdeadbeef");
    let rebuilt = regex::Regex::new(r"\.go:\d+")
        .expect("static regex")
        .replace_all(&rebuilt, ".go:999");
    let rebuilt = rebuilt
        .replace("goroutine 10", "goroutine 301")
        .replace("goroutine 11", "goroutine 302")
        .replace("/builds/restorepoint/", "/home/ci/src/");
    assert_ne!(rebuilt, log);
    assert_eq!(
        one(rebuilt.as_bytes()).fingerprint(),
        one(log.as_bytes()).fingerprint()
    );
    // Two hosts, two runs: the plain log and the GORACE=log_path one.
    let a: Vec<Fingerprint> = reports(fixture("server-run1.log").as_bytes())
        .iter()
        .map(RaceReport::fingerprint)
        .collect();
    let b: Vec<Fingerprint> = reports(fixture("gorace-logpath.race.log").as_bytes())
        .iter()
        .map(RaceReport::fingerprint)
        .collect();
    assert_eq!(a, b);
}

#[test]
fn different_races_differ() {
    let mut by_frames = std::collections::BTreeMap::new();
    for name in [
        "cache.log",
        "counter.log",
        "generic.log",
        "gotest.log",
        "server-run1.log",
        "truncated.log",
        "tsan-cpp.log",
    ] {
        for report in reports(fixture(name).as_bytes()) {
            let mut pair = [report.top_frames().0, report.top_frames().1];
            pair.sort();
            by_frames.insert(pair, report.fingerprint());
        }
    }
    // cache ×2, counter, generic, gotest, server ×2, truncated (one side), tsan
    assert_eq!(by_frames.len(), 9);
    let distinct: std::collections::BTreeSet<_> = by_frames.values().collect();
    assert_eq!(distinct.len(), by_frames.len());
    for fingerprint in distinct {
        assert_eq!(fingerprint.0.len(), 16);
        assert!(fingerprint.0.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}

#[test]
fn crlf_line_endings() {
    let log = fixture("cache.log");
    let crlf = log.replace('\n', "\r\n");
    let plain = reports(log.as_bytes());
    let windows = reports(crlf.as_bytes());
    assert_eq!(windows.len(), 2);
    for (p, w) in plain.iter().zip(&windows) {
        assert_eq!(w.text, p.text);
        assert!(!w.text.contains('\r'));
        assert_eq!(w.fingerprint(), p.fingerprint());
    }
}

#[test]
fn invalid_utf8_is_replaced_never_fatal() {
    let log = fixture("counter.log");
    let mut bytes = b"\xff\xfe garbage before \xc3\n".to_vec();
    let (head, tail) = log.split_at(log.find("Previous read").expect("fixture"));
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend_from_slice(b"\x80\x81 interleaved \xff\n");
    bytes.extend_from_slice(tail.replace("Snapshot", "Snap\u{0}shot").as_bytes());
    bytes.extend_from_slice(b"\xf0\x9f\n");
    // An invalid byte inside a function name.
    let at = bytes
        .windows(9)
        .position(|w| w == b"Snap\0shot")
        .expect("marker");
    bytes[at + 4] = 0xff;
    let report = one(&bytes);
    assert_eq!(report.line, 3);
    assert_eq!(
        tops(&report).1.as_deref(),
        Some("example.com/racegen/internal/store.(*Inventory).Snap\u{fffd}shot()")
    );
    assert!(!report.text.contains("interleaved"));
    assert!(!report.truncated);
}

#[test]
fn interleaved_lines_without_prefix_are_dropped() {
    let log = fixture("counter.log");
    let mut noisy = String::new();
    for line in log.lines() {
        noisy.push_str(line);
        noisy.push('\n');
        noisy.push_str("2026/11/28 12:52:21 backup finished for core-sw1\n");
        noisy.push_str("level=info msg=\"poll\" took=3ms\n");
    }
    let clean = one(log.as_bytes());
    let report = one(noisy.as_bytes());
    assert_eq!(report.text, clean.text);
    assert_eq!(report.fingerprint(), clean.fingerprint());
    assert!(!report.truncated);
}

#[test]
fn interleaved_lines_with_prefix_are_dropped() {
    let log = fixture("journald-prefixed.log");
    let mut noisy = String::new();
    for (i, line) in log.lines().enumerate() {
        // The timestamp ticks halfway through: still the same prefix.
        let line = if i > 15 {
            line.replace("03:12:44", "03:12:45")
        } else {
            line.to_owned()
        };
        noisy.push_str(&line);
        noisy.push('\n');
        noisy.push_str(
            "Nov 28 03:12:44 testbox-07 CRON[4242]: (root) CMD (run-parts /etc/cron.hourly)\n",
        );
        noisy.push_str("Nov 28 03:12:44 testbox-07 restorepoint[31337]: 2026/11/28 12:52:21 backup finished for core-sw2\n");
    }
    let clean = reports(log.as_bytes());
    let found = reports(noisy.as_bytes());
    assert_eq!(found.len(), 2);
    for (c, n) in clean.iter().zip(&found) {
        assert_eq!(n.text, c.text);
        assert_eq!(n.fingerprint(), c.fingerprint());
        assert!(!n.truncated);
    }
}

#[test]
fn next_report_before_the_closing_delimiter_truncates_the_first() {
    let log = fixture("cache.log");
    // Drop one of the two adjacent delimiters and the goroutine blocks of
    // the first report.
    let cut_from = log.find("Goroutine 7 (running)").expect("fixture");
    let second = log.rfind("==================\nWARNING").expect("fixture");
    let joined = format!(
        "{}{}",
        &log[..cut_from],
        &log[second + "==================\n".len()..]
    );
    let found = reports(joined.as_bytes());
    assert_eq!(found.len(), 2);
    assert!(found[0].truncated);
    assert_eq!(
        tops(&found[0]),
        want(Some("main.(*cache).put()"), Some("main.(*cache).get()"))
    );
    assert!(!found[1].truncated);
    assert_eq!(
        tops(&found[1]),
        want(Some("main.main.func3()"), Some("main.main()"))
    );
}

#[test]
fn delimiter_glued_to_the_previous_line() {
    let log = fixture("counter.log");
    let glued = format!("2026/11/28 12:52:21 backup finished for core-sw1{log}");
    let journald_glued = fixture("journald-prefixed.log").replace(
        "core-sw1\nNov 28 03:12:44 testbox-07 restorepoint[31337]: ==================",
        "core-sw1==================",
    );
    assert!(glued.contains("core-sw1==================\nWARNING"));
    assert_eq!(one(glued.as_bytes()).text, one(log.as_bytes()).text);
    let found = reports(journald_glued.as_bytes());
    let plain = reports(fixture("journald-prefixed.log").as_bytes());
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].text, plain[0].text);
    assert_eq!(found[1].text, plain[1].text);
}

/// gotest.log as `go test -json` prints it: one event per line of output,
/// with events of another test interleaved and two lines split in two.
fn as_test_json(log: &str) -> String {
    let event = |test: &str, action: &str, output: Option<&str>| {
        let mut e = serde_json::json!({
            "Time": "2026-11-28T12:52:21.123456789Z",
            "Action": action,
            "Package": "example.com/racegen/internal/sched",
            "Test": test,
        });
        if let Some(output) = output {
            e["Output"] = output.into();
        }
        format!("{e}\n")
    };
    let mut out = event("TestRunnerParallel", "run", None);
    out.push_str(&event(
        "TestRunnerParallel",
        "output",
        Some("=== RUN   TestRunnerParallel\n"),
    ));
    for (i, line) in log.lines().enumerate() {
        if line == "WARNING: DATA RACE" {
            // The newline in an event of its own.
            out.push_str(&event("TestRunnerParallel", "output", Some(line)));
            out.push_str(&event("TestRunnerParallel", "output", Some("\n")));
        } else if line.starts_with("Previous write") {
            let (a, b) = line.split_at(9);
            out.push_str(&event("TestRunnerParallel", "output", Some(a)));
            out.push_str(&event(
                "TestRunnerParallel",
                "output",
                Some(&format!("{b}\n")),
            ));
        } else {
            out.push_str(&event(
                "TestRunnerParallel",
                "output",
                Some(&format!("{line}\n")),
            ));
        }
        if i % 5 == 3 {
            out.push_str(&event(
                "TestOther",
                "output",
                Some("    other_test.go:12: still polling\n"),
            ));
            out.push_str(&event("TestOther", "pause", None));
        }
    }
    out.push_str(&event("TestRunnerParallel", "fail", None));
    out
}

#[test]
fn go_test_json_events() {
    let log = fixture("gotest.log");
    let json = as_test_json(&log);
    let plain = one(log.as_bytes());
    let (found, stats) = scan_all(json.as_bytes());
    assert_eq!(stats.reports, 1);
    let report = &found[0];
    assert_eq!(report.text, plain.text);
    assert_eq!(report.fingerprint(), plain.fingerprint());
    assert!(!report.truncated);
    assert_eq!(report.accesses[1].header, plain.accesses[1].header);
    // Line of the JSON event holding the WARNING line.
    assert!(
        json.lines()
            .nth(report.line as usize - 1)
            .is_some_and(|l| l.contains("WARNING: DATA RACE"))
    );
}

#[test]
fn older_go_reports() {
    // Go before 1.2 printed accesses without an address and closures as
    // func·NNN.
    let old = "==================\n\
        WARNING: DATA RACE\n\
        Write by goroutine 5:\n\
        \x20 main.func·001()\n\
        \x20     /home/dev/race/race.go:14 +0x169\n\
        \n\
        Previous read by goroutine 6:\n\
        \x20 main.func·002()\n\
        \x20     /home/dev/race/race.go:20 +0x4b\n\
        \n\
        Goroutine 5 (running) created at:\n\
        \x20 main.main()\n\
        \x20     /home/dev/race/race.go:16 +0x1c3\n\
        ==================\n";
    let report = one(old.as_bytes());
    assert_eq!(
        tops(&report),
        want(Some("main.func·001()"), Some("main.func·002()"))
    );
    assert_eq!(report.accesses[0].header, "Write by goroutine 5:");
    assert!(!report.truncated);
    assert_eq!(
        report.title(),
        "Data race in main.func·001() vs main.func·002()"
    );
}

#[test]
fn failed_to_restore_the_stack() {
    let log = fixture("counter.log");
    let start = log
        .find("  example.com/racegen/internal/store.(*Inventory).Snapshot()")
        .expect("fixture");
    let end = log.find("Goroutine 10").expect("fixture");
    let broken = format!(
        "{}  [failed to restore the stack]\n\n{}",
        &log[..start],
        &log[end..]
    );
    let report = one(broken.as_bytes());
    assert_eq!(tops(&report), want(Some(ADD), None));
    assert_eq!(report.title(), format!("Data race in {ADD}"));
    assert!(!report.truncated);
    assert!(report.text.contains("[failed to restore the stack]"));
    // Matched on that side alone: another report with the same usable side.
    let mut other = broken.replace("0x00c0000a4028", "0x00c000123456");
    other = other.replace(":23 +0xf2", ":24 +0x102");
    assert_eq!(one(other.as_bytes()).fingerprint(), report.fingerprint());
    assert_ne!(report.fingerprint(), one(log.as_bytes()).fingerprint());

    let both = broken.replacen(
        "  example.com/racegen/internal/store.(*Inventory).Add()\n",
        "  [failed to restore the stack]\n",
        1,
    );
    let both = one(both.as_bytes());
    // Only main.main.func1() is left on the first side: a usable frame.
    assert_eq!(tops(&both).0.as_deref(), Some("main.main.func1()"));
    let nothing = "WARNING: DATA RACE\nWrite at 0x1 by goroutine 1:\n  [failed to restore the stack]\n\nPrevious read at 0x1 by goroutine 2:\n  [failed to restore the stack]\n==================\n";
    assert_eq!(
        one(nothing.as_bytes()).title(),
        "Data race (no usable stack)"
    );
}

#[test]
fn compiler_wrappers_vendor_and_rust_hashes_are_not_identity() {
    let log = fixture("counter.log");
    let original = one(log.as_bytes()).fingerprint();
    let vendored = log.replace(
        "  example.com/racegen/internal/store.",
        "  example.com/restorepoint/vendor/example.com/racegen/internal/store.",
    );
    let wrapped = log
        .replace("(*Inventory).Add()", "(*Inventory).Add-fm()")
        .replace("(*Inventory).Snapshot()", "(*Inventory).Snapshot.gowrap2()");
    let dwrapped = log.replace("(*Inventory).Add()", "(*Inventory).Add·dwrap·7()");
    for variant in [vendored, wrapped, dwrapped] {
        assert_ne!(variant, log);
        let report = one(variant.as_bytes());
        assert_eq!(tops(&report), want(Some(ADD), Some(SNAPSHOT)), "{variant}");
        assert_eq!(report.fingerprint(), original);
    }

    let tsan = fixture("tsan-cpp.log");
    let rust = |hash: &str| tsan.replace("#0 worker()", &format!("#0 racy::worker::h{hash}"));
    let a = one(rust("0123456789abcdef").as_bytes());
    let b = one(rust("fedcba9876543210").as_bytes());
    assert_eq!(a.title(), "Data race in racy::worker");
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.fingerprint(), one(tsan.as_bytes()).fingerprint());
}

#[test]
fn tsan_runtime_frames_are_skipped() {
    let tsan = fixture("tsan-cpp.log").replacen(
        "    #0 worker() /builds/restorepoint/racegen/tsan.cpp:6 (tsan+0x121f)\n",
        "    #0 memcpy ../../../../src/libsanitizer/sanitizer_common/sanitizer_common_interceptors.inc:827 (libtsan.so.2+0x3b2f1)\n\
         \x20   #1 __tsan_read8 /llvm/compiler-rt/lib/tsan/rtl/tsan_interface.cpp:20 (app+0x99)\n\
         \x20   #2 worker() /builds/restorepoint/racegen/tsan.cpp:6 (tsan+0x121f)\n",
        1,
    );
    let report = one(tsan.as_bytes());
    assert_eq!(tops(&report), want(Some("worker()"), Some("worker()")));
    assert_eq!(
        report.fingerprint(),
        one(fixture("tsan-cpp.log").as_bytes()).fingerprint()
    );
}

#[test]
fn binary_garbage() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut garbage = vec![0u8; 3 * 1024 * 1024];
    rng.fill(&mut garbage);
    assert_eq!(scan_all(&garbage[..]).1.reports, 0);
    // Anchors among garbage, with nothing of a report around them.
    for at in (1000..garbage.len()).step_by(100_003) {
        let anchor: &[u8] = if at % 2 == 0 {
            b"\nWARNING: DATA RACE\n"
        } else {
            b"WARNING: ThreadSanitizer: data race"
        };
        garbage[at..at + anchor.len()].copy_from_slice(anchor);
    }
    let (found, stats) = scan_all(&garbage[..]);
    assert_eq!(stats.bytes, garbage.len() as u64);
    assert!(found.iter().all(|r| !r.accesses.is_empty()));
}

/// `size` bytes of one line of `x`, then `tail`: made as it is read, so the
/// test itself never holds the long line.
struct LongLine {
    left: u64,
    tail: std::io::Cursor<Vec<u8>>,
}

impl Read for LongLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return self.tail.read(buf);
        }
        let n = buf.len().min(self.left as usize);
        buf[..n].fill(b'x');
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_100_mb_line_then_a_report() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let tail = format!("\n{}", fixture("counter.log"));
    let total = SIZE + tail.len() as u64;
    let input = LongLine {
        left: SIZE,
        tail: std::io::Cursor::new(tail.into_bytes()),
    };
    let (found, stats) = scan_all(input);
    assert_eq!(stats.bytes, total);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 3);
    assert_eq!(tops(&found[0]), want(Some(ADD), Some(SNAPSHOT)));

    // The reader's buffer is allocated once and never grows.
    let mut lines = Lines::new(LongLine {
        left: SIZE,
        tail: std::io::Cursor::new(b"\nWARNING: DATA RACE\n".to_vec()),
    });
    assert!(lines.skip_to_anchor(&mut |_| {}).expect("memory"));
    assert_eq!(lines.buffer_capacity(), READ_BUFFER);
    let (number, offset, line) = lines
        .next_line(&mut |_| {})
        .expect("memory")
        .expect("a line");
    assert_eq!(
        (number, offset, line),
        (2, SIZE + 1, &b"WARNING: DATA RACE"[..])
    );
}

/// `size` bytes of one line repeating `word`, then `tail`, made as it is read.
struct RepeatedLine {
    word: &'static [u8],
    at: usize,
    left: u64,
    tail: std::io::Cursor<Vec<u8>>,
}

impl Read for RepeatedLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return self.tail.read(buf);
        }
        let n = buf.len().min(self.left as usize);
        for byte in &mut buf[..n] {
            *byte = self.word[self.at];
            self.at = (self.at + 1) % self.word.len();
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_long_line_full_of_warnings_is_scanned_in_linear_work() {
    // Every `WARNING: ` on the line is a candidate anchor; looking back for
    // the line's start at each one made the work grow with the square of
    // the line's length (minutes for a few megabytes).
    const SIZE: u64 = 4 * 1024 * 1024;
    for word in [
        &b"WARNING: low disk "[..],
        b"WARNING: ",
        b"xWARNING: Thread",
    ] {
        let input = RepeatedLine {
            word,
            at: 0,
            left: SIZE,
            tail: std::io::Cursor::new(format!("\n{}", fixture("counter.log")).into_bytes()),
        };
        let (found, stats) = scan_all(input);
        assert_eq!(found.len(), 1, "the report after the line is found");
        assert_eq!(tops(&found[0]), want(Some(ADD), Some(SNAPSHOT)));
        assert!(
            stats.examined <= 4 * stats.bytes,
            "{} bytes examined for {} bytes of input ({:?})",
            stats.examined,
            stats.bytes,
            String::from_utf8_lossy(word)
        );
    }
}

#[test]
fn long_lines_inside_a_report_are_cut_not_kept() {
    let log = fixture("counter.log");
    let at = log.find("Previous read").expect("fixture");
    let mut input = log.as_bytes()[..at].to_vec();
    input.extend(std::iter::repeat_n(b'y', 5 * LINE_CAP));
    input.push(b'\n');
    input.extend_from_slice(&log.as_bytes()[at..]);
    let report = one(&input);
    assert_eq!(tops(&report), want(Some(ADD), Some(SNAPSHOT)));
    assert!(!report.text.contains("yyyy"));

    // Read the same input line by line: the long one comes back cut.
    let mut lines = Lines::new(&input[..]);
    let mut longest = 0;
    let mut count = 0;
    while let Some((_, _, line)) = lines.next_line(&mut |_| {}).expect("memory") {
        longest = longest.max(line.len());
        count += 1;
    }
    assert_eq!(longest, LINE_CAP);
    assert_eq!(count, log.lines().count() + 1);
}

#[test]
fn one_report_is_capped() {
    let log = fixture("counter.log");
    let frame = "  main.deep()\n      /builds/restorepoint/racegen/cmd/counter/deep.go:1 +0x1\n";
    let at = log.find("  main.main.func1()").expect("fixture");
    let huge = format!("{}{}{}{log}", &log[..at], frame.repeat(20_000), &log[at..]);
    let found = reports(huge.as_bytes());
    assert_eq!(found.len(), 2, "the cut report, then the next one");
    assert!(found[0].truncated);
    assert!(found[0].text.len() <= REPORT_CAP);
    assert!(found[0].text.len() > REPORT_CAP - 200);
    assert_eq!(tops(&found[0]).0.as_deref(), Some(ADD));
    assert!(!found[1].truncated);
}

#[test]
fn a_report_drowned_in_foreign_lines_ends() {
    let log = fixture("counter.log");
    let at = log.find("Previous read").expect("fixture");
    let noise = "2026/11/28 12:52:21 backup finished for core-sw1\n";
    let limit = super::assemble::NOISE_LIMIT as usize;
    let drowned = format!("{}{}{}", &log[..at], noise.repeat(limit), &log[at..]);
    let found = reports(drowned.as_bytes());
    assert_eq!(found.len(), 1);
    assert!(found[0].truncated);
    assert_eq!(tops(&found[0]), want(Some(ADD), None));
    let noisy = format!("{}{}{}", &log[..at], noise.repeat(limit - 1), &log[at..]);
    let report = one(noisy.as_bytes());
    assert!(!report.truncated);
    assert_eq!(tops(&report), want(Some(ADD), Some(SNAPSHOT)));
}

#[test]
fn titles_are_capped_at_255_characters() {
    let long = format!("example.com/ünïcode/{}.Handle()", "deep/".repeat(80));
    let log = fixture("counter.log").replace(ADD, &long);
    let title = one(log.as_bytes()).title();
    assert_eq!(title.chars().count(), 255);
    assert!(title.ends_with('…'));
    assert!(title.starts_with("Data race in example.com/ünïcode/deep/"));
}

#[test]
fn reports_spread_through_a_big_log_are_all_found() {
    // Across read-buffer boundaries: each report must be found whole.
    let service = "2026/11/28 12:52:21 backup finished for core-sw1 in 1.2s\n";
    let mut log = String::new();
    let mut want = Vec::new();
    let races = [
        "cache.log",
        "counter.log",
        "tsan-cpp.log",
        "journald-prefixed.log",
    ];
    for i in 0..40 {
        log.push_str(&service.repeat(1 + i * 997 % 3000));
        let race = fixture(races[i % races.len()]);
        want.extend(reports(race.as_bytes()).iter().map(RaceReport::fingerprint));
        log.push_str(&race);
    }
    assert!(log.len() > 2 * READ_BUFFER);
    let mut progress = Vec::new();
    let mut found = Vec::new();
    let stats = scan(log.as_bytes(), &mut |n| progress.push(n), &mut |r| {
        found.push(r)
    })
    .expect("memory");
    let got: Vec<Fingerprint> = found.iter().map(RaceReport::fingerprint).collect();
    assert_eq!(got, want);
    assert_eq!(stats.truncated, 0);
    assert!(progress.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(progress.last(), Some(&(log.len() as u64)));
    for report in &found {
        let line = log
            .lines()
            .nth(report.line as usize - 1)
            .expect("line exists");
        assert!(
            line.ends_with(report.text.lines().next().expect("text")),
            "{line}"
        );
    }
}

#[test]
fn delimiter_glued_to_the_warning_line() {
    let log = fixture("counter.log");
    let glued = log.replacen(
        "==================\nWARNING",
        "==================WARNING",
        1,
    );
    assert_ne!(glued, log);
    assert_eq!(one(glued.as_bytes()).text, one(log.as_bytes()).text);

    let journald = fixture("journald-prefixed.log").replacen(
        "==================\nNov 28 03:12:44 testbox-07 restorepoint[31337]: WARNING",
        "==================WARNING",
        1,
    );
    let found = reports(journald.as_bytes());
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[0].text,
        reports(fixture("journald-prefixed.log").as_bytes())[0].text
    );
}

#[test]
fn prefixed_tsan_report_with_interleaved_lines() {
    let tsan = fixture("tsan-cpp.log");
    let mut prefixed = String::new();
    for line in tsan.lines() {
        prefixed.push_str(&format!(
            "Nov 28 03:12:44 testbox-03 tsan-app[77]: {line}\n"
        ));
        prefixed.push_str("Nov 28 03:12:44 testbox-03 kernel: eth0: link up\n");
        prefixed.push_str("Nov 28 03:12:44 testbox-03 tsan-app[77]: worker 3 done\n");
    }
    let plain = one(tsan.as_bytes());
    let report = one(prefixed.as_bytes());
    assert_eq!(report.text, plain.text);
    assert_eq!(report.fingerprint(), plain.fingerprint());
    assert!(!report.truncated);
}

#[test]
fn test_name_prefix() {
    let log = fixture("gotest.log");
    let prefixed: String = log
        .lines()
        .map(|l| format!("[TestRunnerParallel] {l}\n"))
        .collect();
    let plain = one(log.as_bytes());
    let report = one(prefixed.as_bytes());
    assert_eq!(report.text, plain.text);
    assert_eq!(report.line, 2);
}

#[test]
fn container_log_prefix_with_ticking_fractions_and_trimmed_blanks() {
    // containerd's CRI log format: RFC 3339 timestamps whose fractions drop
    // trailing zeros, so the prefix changes length from line to line; and a
    // blank report line whose trailing space was trimmed.
    let log = fixture("counter.log");
    let fractions = ["123456789", "12345678", "5", "9876"];
    let mut cri = String::new();
    for (i, line) in log.lines().enumerate() {
        let stamped = format!(
            "2026-11-28T12:52:2{}.{}Z stderr F {line}",
            i % 10,
            fractions[i % 4]
        );
        cri.push_str(stamped.trim_end());
        cri.push('\n');
        cri.push_str("2026-11-28T12:52:21.5Z stdout F GET /healthz 200\n");
    }
    let plain = one(log.as_bytes());
    let report = one(cri.as_bytes());
    assert_eq!(report.text, plain.text);
    assert_eq!(report.fingerprint(), plain.fingerprint());
    assert!(!report.truncated);
}

/// Hands out a few bytes per read, as a pipe or a slow decompressor may.
struct Trickle<'a> {
    data: &'a [u8],
    rng: fastrand::Rng,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.rng.usize(1..8).min(self.data.len()).min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn reads_of_any_size_give_the_same_reports() {
    let mut log = String::new();
    for name in [
        "server-run1.log",
        "journald-prefixed.log",
        "tsan-cpp.log",
        "cache.log",
        "truncated.log",
    ] {
        log.push_str(&fixture(name));
    }
    log.push_str(&as_test_json(&fixture("gotest.log")));
    let whole = reports(log.as_bytes());
    assert_eq!(whole.len(), 9);
    // truncated.log's report is cut by the JSON report after it.
    assert!(whole[7].truncated);
    assert!(!whole[8].truncated);
    assert_eq!(
        whole[8].fingerprint(),
        one(fixture("gotest.log").as_bytes()).fingerprint()
    );
    let trickled = scan_all(Trickle {
        data: log.as_bytes(),
        rng: fastrand::Rng::with_seed(3),
    })
    .0;
    let summary = |found: &[RaceReport]| -> Vec<(u64, String, bool, String)> {
        found
            .iter()
            .map(|r| (r.line, r.text.clone(), r.truncated, r.fingerprint().0))
            .collect()
    };
    assert_eq!(summary(&trickled), summary(&whole));
}

#[test]
fn a_cut_report_is_not_closed_by_the_next_reports_opening_delimiter() {
    // Delimiters look the same whether they close a report or open the next
    // one; a cut report must still come out truncated.
    let log = format!("{}{}", fixture("truncated.log"), fixture("counter.log"));
    let found = reports(log.as_bytes());
    assert_eq!(found.len(), 2);
    assert!(found[0].truncated);
    assert!(!found[1].truncated);

    let tsan = fixture("tsan-cpp.log");
    let cut = &tsan[..tsan.find("  Location is").expect("fixture")];
    let log = format!("{cut}{tsan}");
    let found = reports(log.as_bytes());
    assert_eq!(found.len(), 2);
    assert!(found[0].truncated);
    assert_eq!(found[0].title(), "Data race in worker()");
    assert!(!found[1].truncated);
}
