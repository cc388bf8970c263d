//! Which frame of a stack identifies one side of a race, and how its name is
//! normalised so that two builds, two hosts or two compilers agree.
//!
//! Names stay as printed (generics `[...]`, closures `.funcN`/`func·001`, the
//! trailing `()` of Go frames) except for what the compiler or the vendoring
//! adds and a rebuild may change: `.gowrapN`, `·dwrap·N` and `-fm` wrappers,
//! `/vendor/` path prefixes, Rust `::h<hash>` suffixes, and argument words
//! (`0xc000…`) that very old Go printed inside the parentheses.

use std::sync::LazyLock;

use regex::Regex;

/// Go's compiler-made wrappers: the wrapped function is the identity.
static GO_WRAPPER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:\.gowrap\d+|·dwrap·\d+|-fm)(\(|\[|$)").expect("static regex"));
static RUST_HASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"::h[0-9a-f]{16}\b").expect("static regex"));
/// `(0xc000012345, 0x1, ...)`: argument words, which change from run to run.
static GO_ARGS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\((?:0x[0-9a-fA-F]+|\.\.\.)(?:, (?:0x[0-9a-fA-F]+|\.\.\.))*\)$")
        .expect("static regex")
});

/// Frames of the Go runtime, the race runtime and the TSan runtime: where a
/// race is detected, never where it is.
const RUNTIME_PREFIXES: [&str; 7] = [
    "runtime.",
    "runtime/internal/",
    "internal/race",
    "internal/runtime/",
    "sync/atomic.",
    "__tsan_",
    "__interceptor_",
];

/// The first frame outside the runtimes, normalised.
pub(super) fn top_frame(frames: &[String]) -> Option<String> {
    top_frame_index(frames).map(|i| normalize(&frames[i]))
}

/// Where the first frame outside the runtimes is.
pub(super) fn top_frame_index(frames: &[String]) -> Option<usize> {
    frames.iter().position(|f| {
        let f = normalize(f);
        !f.is_empty() && f != "<null>" && !is_runtime(&f)
    })
}

pub(super) fn is_runtime(function: &str) -> bool {
    RUNTIME_PREFIXES.iter().any(|p| function.starts_with(p))
}

pub(super) fn normalize(function: &str) -> String {
    let function = function.trim();
    let function = match function.rfind("/vendor/") {
        Some(at) => &function[at + "/vendor/".len()..],
        None => function,
    };
    let function = GO_WRAPPER.replace_all(function, "$1");
    let function = RUST_HASH.replace_all(&function, "");
    GO_ARGS.replace(&function, "()").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_what_builds_change() {
        assert_eq!(normalize("main.main.gowrap1()"), "main.main()");
        assert_eq!(normalize("main.main·dwrap·1()"), "main.main()");
        assert_eq!(normalize("main.(*T).run-fm()"), "main.(*T).run()");
        assert_eq!(
            normalize("example.com/app/vendor/github.com/x/y.(*Pool).Get()"),
            "github.com/x/y.(*Pool).Get()"
        );
        assert_eq!(
            normalize("racy::main::{{closure}}::h0123456789abcdef"),
            "racy::main::{{closure}}"
        );
        assert_eq!(normalize("main.worker(0xc000012345, 0x1)"), "main.worker()");
    }

    #[test]
    fn keeps_what_names_the_code() {
        for name in [
            "main.(*Queue[...]).Push()",
            "main.process[...]()",
            "main.main.func1()",
            "main.func·001()",
            "worker()",
            "std::thread::_State_impl<std::thread::_Invoker<std::tuple<void (*)()> > >::_M_run()",
            "racy::Counter::fm",
        ] {
            assert_eq!(normalize(name), name);
        }
    }

    #[test]
    fn skips_runtime_frames() {
        let frames: Vec<String> = [
            "runtime.mapassign_faststr()",
            "internal/race.Write()",
            "runtime/internal/atomic.Store()",
            "sync/atomic.AddInt32()",
            "main.(*cache).put()",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(top_frame(&frames).as_deref(), Some("main.(*cache).put()"));
        assert_eq!(top_frame(&frames[..3]), None);
        // Packages next to the runtime are the program's own code.
        assert_eq!(
            top_frame(&["runtime/debug.SetGCPercent()".to_owned()]).as_deref(),
            Some("runtime/debug.SetGCPercent()")
        );
    }
}
