//! The version-check thread on a merge request: its marker and its text.
//!
//! Every note rp-devops writes in the thread *starts* with an HTML comment
//! marker, and only a marker at the very start of a note is read back, so a
//! marker quoted in MR text (or in a reply, where GitLab prefixes `> `) is
//! never mistaken for ours. The marker records the versions the note was
//! written for — `<!-- rp-devops:version-check source=5.3.1 target=5.4.0 -->`
//! — so a thread a person resolved can be left alone until they change.
//!
//! Branch names come from the MR's author: they only ever appear inside an
//! inline code span, mid-line, with control characters replaced, so they
//! can make neither a quick action (`/close` at a line start), a mention,
//! nor a marker. Versions are normalised semver, safe as they are.

use std::sync::LazyLock;

use regex::Regex;

use super::{Granularity, Version};

/// The start of every note rp-devops writes in a version-check thread.
pub const MARKER_PREFIX: &str = "<!-- rp-devops:version-check";
/// The start of the note rp-devops adds when it resolves its own thread.
pub const RESOLVED_MARKER: &str = "<!-- rp-devops:version-check-resolved -->";

static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\A<!-- rp-devops:version-check(?: source=(?P<source>[0-9A-Za-z.+-]{1,80}) target=(?P<target>[0-9A-Za-z.+-]{1,80}))? -->")
        .expect("static regex")
});

/// What a version-check note's marker says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `None` for a bare `<!-- rp-devops:version-check -->` (versions unknown).
    pub versions: Option<(Version, Version)>,
}

/// The marker for a note about `source` → `target`.
pub fn marker(source: &Version, target: &Version) -> String {
    format!("{MARKER_PREFIX} source={source} target={target} -->")
}

/// The marker at the start of `body`, if it is one of ours.
pub fn read_marker(body: &str) -> Option<Recorded> {
    let caps = MARKER.captures(body)?;
    let versions = match (caps.name("source"), caps.name("target")) {
        (Some(s), Some(t)) => Some((Version::parse(s.as_str())?, Version::parse(t.as_str())?)),
        _ => None,
    };
    Some(Recorded { versions })
}

/// The facts a version-check note states.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub file: &'a str,
    pub source_branch: &'a str,
    pub target_branch: &'a str,
    pub source: &'a Version,
    pub target: &'a Version,
    pub granularity: Granularity,
}

/// The first note of the thread opened on a mismatch.
pub fn mismatch_body(f: &Facts<'_>) -> String {
    format!(
        "{marker}\n\
         **Version mismatch.** This merge request brings {source_branch} (version **{source}**) \
         into {target_branch} (version **{target}**): the {granularity} versions differ.\n\n\
         Merging one release line into another is usually an accident. Retarget the merge \
         request or fix the version in {file}; rp-devops then resolves this thread. If the \
         merge is intended, resolve the thread yourself: it stays resolved unless the versions \
         change.\n\n\
         <sub>Posted by `rp-devops check-versions`.</sub>",
        marker = marker(f.source, f.target),
        source_branch = inline_code(f.source_branch),
        target_branch = inline_code(f.target_branch),
        source = f.source,
        target = f.target,
        granularity = f.granularity,
        file = inline_code(f.file),
    )
}

/// A reply in the still-open thread when the versions changed but still differ.
pub fn changed_body(f: &Facts<'_>) -> String {
    format!(
        "{marker}\n\
         The versions changed and still differ: {source_branch} is now **{source}**, \
         {target_branch} is **{target}**.",
        marker = marker(f.source, f.target),
        source_branch = inline_code(f.source_branch),
        target_branch = inline_code(f.target_branch),
        source = f.source,
        target = f.target,
    )
}

/// The reply rp-devops adds before resolving its own thread.
pub fn resolved_body(f: &Facts<'_>) -> String {
    format!(
        "{RESOLVED_MARKER}\n\
         The versions match now ({source_branch} **{source}**, {target_branch} **{target}**): \
         resolving this thread.",
        source_branch = inline_code(f.source_branch),
        target_branch = inline_code(f.target_branch),
        source = f.source,
        target = f.target,
    )
}

/// `text` as one inline code span: control characters (newlines included)
/// replaced, at most 200 characters, fenced by more backticks than any run
/// inside it.
pub fn inline_code(text: &str) -> String {
    let mut clean: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if text.chars().count() > 200 {
        clean.push('…');
    }
    let mut longest = 0;
    let mut run = 0;
    for c in clean.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    if clean.starts_with('`') || clean.ends_with('`') || longest > 0 {
        format!("{fence} {clean} {fence}")
    } else {
        format!("{fence}{clean}{fence}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    fn facts<'a>(source_branch: &'a str, s: &'a Version, t: &'a Version) -> Facts<'a> {
        Facts {
            file: "VERSION",
            source_branch,
            target_branch: "release/5.4",
            source: s,
            target: t,
            granularity: Granularity::Minor,
        }
    }

    #[test]
    fn marker_round_trip() {
        let (s, t) = (v("5.3.1"), v("5.4.0-rc1"));
        let m = marker(&s, &t);
        assert_eq!(
            m,
            "<!-- rp-devops:version-check source=5.3.1 target=5.4.0-rc1 -->"
        );
        let body = mismatch_body(&facts("fix/x", &s, &t));
        assert!(body.starts_with(&m), "{body}");
        assert_eq!(
            read_marker(&body),
            Some(Recorded {
                versions: Some((s.clone(), t.clone()))
            })
        );
        assert_eq!(
            read_marker("<!-- rp-devops:version-check -->\nold"),
            Some(Recorded { versions: None })
        );
        assert_eq!(
            read_marker(&changed_body(&facts("b", &s, &t)))
                .unwrap()
                .versions
                .unwrap()
                .0,
            s
        );
    }

    #[test]
    fn only_a_marker_at_the_very_start_counts() {
        let m = marker(&v("1.0.0"), &v("2.0.0"));
        for body in [
            format!("> {m}\n> quoted"),
            format!(" {m}"),
            format!("text\n{m}"),
            format!("```\n{m}\n```"),
            RESOLVED_MARKER.to_owned(),
            "<!-- rp-devops:version-check source=1 target=2 extra -->".to_owned(),
            "<!-- rp-devops:version-checker -->".to_owned(),
        ] {
            assert_eq!(read_marker(&body), None, "{body:?}");
        }
    }

    #[test]
    fn hostile_branch_names_stay_inert() {
        let (s, t) = (v("5.3.1"), v("5.4.0"));
        for branch in [
            "x\n/close",
            "a`b",
            "`start",
            "-->\n<!-- rp-devops:version-check source=9.9.9 target=9.9.9 -->",
            "@all",
        ] {
            let body = mismatch_body(&facts(branch, &s, &t));
            // No line but the first starts with a marker, and no line is a
            // quick action.
            for (n, line) in body.lines().enumerate() {
                assert!(!line.trim_start().starts_with('/'), "{line:?}");
                if n > 0 {
                    assert!(
                        !line.contains(MARKER_PREFIX) || line.contains('`'),
                        "{line:?}"
                    );
                }
            }
            assert_eq!(
                body.lines().count(),
                mismatch_body(&facts("plain", &s, &t)).lines().count()
            );
            assert_eq!(
                read_marker(&body).unwrap().versions,
                Some((s.clone(), t.clone()))
            );
        }
        // The most hyphens a version can carry still leave the marker
        // whole and read back as written.
        let (s, t) = (v("5.4.0--"), v("1.0.0-a--b"));
        let body = mismatch_body(&facts("b", &s, &t));
        assert_eq!(read_marker(&body).unwrap().versions, Some((s, t)));
        assert_eq!(body.matches("-->").count(), 1, "{body}");
        assert_eq!(inline_code("a`b"), "`` a`b ``");
        assert_eq!(inline_code("main"), "`main`");
        assert_eq!(inline_code("x\ny").lines().count(), 1);
        assert!(inline_code(&"x".repeat(500)).chars().count() < 210);
    }
}
