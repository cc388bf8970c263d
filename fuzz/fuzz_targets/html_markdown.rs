//! Freshdesk HTML → GitLab Markdown on arbitrary text: no panic, bounded
//! output, and the result is inert (no quick action at a line start, no
//! HTML comment that could forge a marker).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rp_devops::escalation::markdown::{MAX_MARKDOWN_CHARS, to_markdown};

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    let out = to_markdown(&html, &html);
    assert!(
        out.chars().count() <= MAX_MARKDOWN_CHARS + 200,
        "{} characters",
        out.chars().count()
    );
    assert!(!out.contains("<!--"), "an HTML comment opens in {out:?}");
    for line in out.lines() {
        let line = line.trim_start();
        if let Some(rest) = line.strip_prefix('/') {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            let after = rest[name.len()..].chars().next();
            assert!(
                name.is_empty() || after.is_some_and(|c| !c.is_whitespace()),
                "a quick action survives: {line:?}"
            );
        }
    }
});
