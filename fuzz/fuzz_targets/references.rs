//! The issue-reference finder (SPEC §7) on arbitrary text: no panic, at
//! most MAX_REFERENCES distinct references, each a valid path and number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rp_devops::references::{MAX_REFERENCES, ReferenceFinder};
use std::sync::LazyLock;

static FINDER: LazyLock<ReferenceFinder> =
    LazyLock::new(|| ReferenceFinder::new("https://gitlab.example.com/sub"));

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Split in two texts, as title and description.
    let (a, b) = text.split_at(
        text.char_indices()
            .nth(text.chars().count() / 2)
            .map_or(0, |(i, _)| i),
    );
    let found = FINDER.find_all([a, b]);
    assert!(found.len() <= MAX_REFERENCES, "{} references", found.len());
    let mut seen = std::collections::HashSet::new();
    for reference in &found {
        assert!(seen.insert(reference), "{reference} twice");
        if let Some(project) = &reference.project {
            assert!(
                project.split('/').count() >= 2
                    && project
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)),
                "{project:?}"
            );
        }
    }
    let single = FINDER.find(&text);
    assert!(
        single.len() <= MAX_REFERENCES,
        "{} references",
        single.len()
    );
});
