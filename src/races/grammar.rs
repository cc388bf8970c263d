//! What the lines of a race report look like, for the Go race detector and
//! for ThreadSanitizer (C, C++, Rust).
//!
//! Used to keep a report's own lines and drop the log lines interleaved with
//! it. Classification is by shape only: no state, no normalisation (that is
//! `frames`' job).

use std::sync::LazyLock;

use memchr::memmem::Finder;
use regex::Regex;

use super::Runtime;

/// `Write at 0x… by goroutine 7:`, `Previous read by main goroutine:` (older
/// Go, no address), `Read of size 8 at 0x… by thread T2:` (TSan), with the
/// atomic variants and TSan's `(mutexes: …)` tail.
static ACCESS_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:Previous )?(?:[Aa]tomic )?(?:[Rr]ead|[Ww]rite)(?: of size \d+)?(?: at 0x[0-9a-fA-F]+)? by (?:goroutine \d+|main goroutine|main thread|thread T\d+).*:$",
    )
    .expect("static regex")
});
static GOROUTINE_CREATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Goroutine \d+ \((?:running|finished)\) created at:$").expect("static regex")
});
static WARNING: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("WARNING: "));

const FAILED_STACK: &str = "[failed to restore the stack]";
/// TSan blocks after the two accesses; their stacks are not the race's.
const TSAN_BLOCKS: [&str; 8] = [
    "Location is",
    "Mutex ",
    "Thread T",
    "Main thread",
    "As if synchronized via sleep",
    "Heap block",
    "Stack of",
    "Global ",
];

/// What one line of a report is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line<'a> {
    /// `==================`: closes a report.
    Delimiter,
    Blank,
    /// Starts one side of the race.
    Access,
    /// A function in a stack, as printed.
    Frame(&'a str),
    /// A TSan frame inside the sanitizer runtime (module `libtsan`,
    /// interceptors): part of the report, never part of its identity.
    RuntimeFrame,
    /// `file:line +0xOFF` under a Go frame.
    Location,
    /// Starts a block whose stack is not an access's (`Goroutine N (…)
    /// created at:`, TSan's `Location is …`, `Thread T1 … created by …`).
    OtherBlock,
    FailedStack,
    /// TSan's `SUMMARY:` line, just before the closing delimiter.
    Summary,
    /// Not part of a report: an interleaved log line.
    Foreign,
}

/// Where the report anchor starts on `line` and which runtime printed it.
/// Only the whole anchor counts: `WARNING: DATA RACE` with nothing after it
/// (so a log line quoting it is not a report), or `WARNING: ThreadSanitizer:
/// data race` with at most TSan's ` (pid=N)` or ` on vptr …` after it.
pub(super) fn anchor(line: &str) -> Option<(usize, Runtime)> {
    const GO: &str = "DATA RACE";
    const TSAN: &str = "ThreadSanitizer: data race";
    // Called on every line inside a report: one SIMD search rejects almost
    // all of them.
    for at in WARNING.find_iter(line.as_bytes()) {
        let rest = &line[at + "WARNING: ".len()..];
        if let Some(after) = rest.strip_prefix(GO) {
            if after.trim().is_empty() {
                return Some((at, Runtime::Go));
            }
        } else if let Some(after) = rest.strip_prefix(TSAN) {
            // ` (pid=N)`, or the `on vptr (ctor/dtor vs virtual call)` kind.
            if after.trim().is_empty() || after.starts_with(" (") || after.starts_with(" on vptr") {
                return Some((at, Runtime::ThreadSanitizer));
            }
        }
    }
    None
}

pub(super) fn is_delimiter(trimmed: &str) -> bool {
    trimmed.len() >= 10 && trimmed.bytes().all(|b| b == b'=')
}

/// Classify one report line (prefix already removed).
pub(super) fn classify(runtime: Runtime, line: &str) -> Line<'_> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    if is_delimiter(trimmed) {
        return Line::Delimiter;
    }
    if trimmed == FAILED_STACK {
        return Line::FailedStack;
    }
    // Regexes only for lines that can match: most lines seen inside a
    // report are interleaved log lines, and this runs for each of them.
    if trimmed.ends_with(':') && ACCESS_HEADER.is_match(trimmed) {
        return Line::Access;
    }
    let indented = line.starts_with([' ', '\t']);
    match runtime {
        Runtime::Go => {
            if trimmed.starts_with("Goroutine ") && GOROUTINE_CREATED.is_match(trimmed) {
                Line::OtherBlock
            } else if indented && is_go_location(trimmed) {
                Line::Location
            } else if line.starts_with("  ") && trimmed.ends_with(')') {
                Line::Frame(trimmed)
            } else {
                Line::Foreign
            }
        }
        Runtime::ThreadSanitizer => {
            if trimmed.starts_with("SUMMARY: ThreadSanitizer") {
                Line::Summary
            } else if !indented {
                Line::Foreign
            } else if let Some(frame) = tsan_frame_text(trimmed) {
                tsan_frame(frame)
            } else if TSAN_BLOCKS.iter().any(|b| trimmed.starts_with(b)) {
                Line::OtherBlock
            } else {
                Line::Foreign
            }
        }
    }
}

/// `/path/file.go:23 +0x1f`, or without the offset. By hand rather than by
/// regex: every line of a Go stack goes through here.
fn is_go_location(trimmed: &str) -> bool {
    let place = match trimmed.rsplit_once(" +0x") {
        Some((place, offset))
            if !offset.is_empty() && offset.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            place
        }
        _ => trimmed,
    };
    match place.rsplit_once(':') {
        Some((file, line)) => {
            !file.is_empty()
                && !file.starts_with(char::is_whitespace)
                && !line.is_empty()
                && line.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// What follows `#N ` on a TSan frame line.
fn tsan_frame_text(trimmed: &str) -> Option<&str> {
    let number = trimmed.strip_prefix('#')?;
    let digits = number.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    number[digits..].strip_prefix(' ')
}

/// Split `func location (module+0xOFF)` into the function text, and tell the
/// sanitizer runtime's own frames apart.
fn tsan_frame(frame: &str) -> Line<'_> {
    let (function, location, module) = split_tsan_frame(frame);
    let runtime = module.starts_with("libtsan")
        || location.contains("tsan_interceptors")
        || location.contains("/sanitizer_common/")
        || location.contains("libsanitizer/tsan/")
        || location.contains("compiler-rt/lib/tsan/")
        || function.starts_with("__tsan_")
        || function.starts_with("__interceptor_");
    if runtime {
        Line::RuntimeFrame
    } else {
        Line::Frame(function.trim())
    }
}

/// `(function, location, module)` of what follows `#N ` on a TSan frame
/// line; the location and module are empty when the line has none.
fn split_tsan_frame(frame: &str) -> (&str, &str, &str) {
    let (rest, module) = match frame.rfind(" (") {
        Some(open) if frame.ends_with(')') && frame[open..].contains("+0x") => {
            (&frame[..open], &frame[open + 2..frame.len() - 1])
        }
        _ => (frame, ""),
    };
    // The location is the last word when it looks like one; function text
    // (C++ signatures) may hold spaces, paths here do not.
    match rest.rsplit_once(' ') {
        Some((function, location)) if looks_like_location(location) => (function, location, module),
        _ => (rest, "", module),
    }
}

/// The source location of a TSan frame line (`/src/x.cc:12:5`), when it
/// names one (`<null>` does not).
pub(super) fn tsan_frame_location(trimmed: &str) -> Option<&str> {
    let (_, location, _) = split_tsan_frame(tsan_frame_text(trimmed)?);
    (!location.is_empty() && location != "<null>").then_some(location)
}

fn looks_like_location(word: &str) -> bool {
    word == "<null>"
        || word.starts_with('/')
        || word.starts_with("./")
        || word.starts_with("../")
        // file.cc:12 or file.cc:12:5
        || word
            .split(':')
            .skip(1)
            .any(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_need_the_whole_warning() {
        assert_eq!(anchor("WARNING: DATA RACE"), Some((0, Runtime::Go)));
        assert_eq!(
            anchor("host app[1]: WARNING: DATA RACE "),
            Some((13, Runtime::Go))
        );
        assert_eq!(
            anchor("WARNING: ThreadSanitizer: data race (pid=6330)"),
            Some((0, Runtime::ThreadSanitizer))
        );
        assert_eq!(
            anchor(
                "WARNING: ThreadSanitizer: data race on vptr (ctor/dtor vs virtual call) (pid=9)"
            ),
            Some((0, Runtime::ThreadSanitizer))
        );
        assert_eq!(anchor(r#"want "WARNING: DATA RACE" in output"#), None);
        assert_eq!(
            anchor("WARNING: low disk WARNING: DATA RACE"),
            Some((18, Runtime::Go))
        );
        assert_eq!(
            anchor("WARNING: ThreadSanitizer: heap-use-after-free"),
            None
        );
    }

    #[test]
    fn go_lines() {
        let go = |l| classify(Runtime::Go, l);
        assert_eq!(go("Write at 0x00c00007c150 by goroutine 7:"), Line::Access);
        assert_eq!(
            go("Previous read at 0x00c0 by main goroutine:"),
            Line::Access
        );
        assert_eq!(go("Write by goroutine 5:"), Line::Access);
        assert_eq!(go("Previous atomic read by goroutine 6:"), Line::Access);
        assert_eq!(go("Atomic write at 0x1 by goroutine 6:"), Line::Access);
        assert_eq!(
            go("  main.(*cache).put()"),
            Line::Frame("main.(*cache).put()")
        );
        assert_eq!(
            go("      /builds/x/cmd/cache/main.go:13 +0x159"),
            Line::Location
        );
        assert_eq!(go("      /builds/x/main.go:13"), Line::Location);
        assert_eq!(go("      <autogenerated>:1 +0x2d"), Line::Location);
        assert_eq!(go("      C:/src/app/main.go:7 +0x2d"), Line::Location);
        assert_eq!(go("      see main.go:12 +0xzz"), Line::Foreign);
        assert_eq!(go("      retrying in 5s"), Line::Foreign);
        assert_eq!(go("Goroutine 8 (finished) created at:"), Line::OtherBlock);
        assert_eq!(go("  [failed to restore the stack]"), Line::FailedStack);
        assert_eq!(go("2026/11/28 12:52:21 backup finished"), Line::Foreign);
        assert_eq!(go("Found 2 data race(s)"), Line::Foreign);
        assert_eq!(go("=================="), Line::Delimiter);
    }

    #[test]
    fn tsan_lines() {
        let tsan = |l| classify(Runtime::ThreadSanitizer, l);
        assert_eq!(
            tsan("  Read of size 8 at 0x5606 by thread T2:"),
            Line::Access
        );
        assert_eq!(
            tsan("  Previous write of size 4 at 0x7b04 by main thread (mutexes: write M0):"),
            Line::Access
        );
        assert_eq!(
            tsan("    #0 worker() /builds/x/tsan.cpp:6 (tsan+0x121f)"),
            Line::Frame("worker()")
        );
        assert_eq!(
            tsan(
                "    #1 std::thread::_M_start_thread(std::unique_ptr<std::thread::_State, std::default_delete<std::thread::_State> >, void (*)()) <null> (libstdc++.so.6+0xd4578)"
            ),
            Line::Frame(
                "std::thread::_M_start_thread(std::unique_ptr<std::thread::_State, std::default_delete<std::thread::_State> >, void (*)())"
            )
        );
        assert_eq!(
            tsan(
                "    #0 pthread_create ../../../../src/libsanitizer/tsan/tsan_interceptors_posix.cpp:1001 (libtsan.so.2+0x5e686)"
            ),
            Line::RuntimeFrame
        );
        assert_eq!(tsan("    #2 main (a.out+0x12bf)"), Line::Frame("main"));
        assert_eq!(
            tsan("    #3 Foo::operator()(int) const src/foo.cc:12:5 (a.out+0x12bf)"),
            Line::Frame("Foo::operator()(int) const")
        );
        assert_eq!(
            tsan("    #3 Foo::operator()(int) const (a.out+0x12bf)"),
            Line::Frame("Foo::operator()(int) const")
        );
        // Clang links the runtime into the program: told apart by its path.
        assert_eq!(
            tsan(
                "    #0 free /src/llvm/compiler-rt/lib/tsan/rtl/tsan_new_delete.cpp:126:3 (a.out+0x4f2e1)"
            ),
            Line::RuntimeFrame
        );
        assert_eq!(
            tsan("  Location is global 'g' of size 8 at 0x56 (tsan+0x4090)"),
            Line::OtherBlock
        );
        assert_eq!(
            tsan("SUMMARY: ThreadSanitizer: data race /x/tsan.cpp:6 in worker()"),
            Line::Summary
        );
        assert_eq!(tsan("2000"), Line::Foreign);
    }

    #[test]
    fn tsan_frame_locations() {
        assert_eq!(
            tsan_frame_location("#0 worker() /builds/x/tsan.cpp:6 (tsan+0x121f)"),
            Some("/builds/x/tsan.cpp:6")
        );
        assert_eq!(
            tsan_frame_location("#3 Foo::operator()(int) const src/foo.cc:12:5 (a.out+0x12bf)"),
            Some("src/foo.cc:12:5")
        );
        assert_eq!(
            tsan_frame_location("#1 std::thread::run() <null> (libstdc++.so.6+0xd4578)"),
            None
        );
        assert_eq!(tsan_frame_location("#2 main (a.out+0x12bf)"), None);
    }
}
