//! Issue references in merge-request text (SPEC §7): `#12`,
//! `group/project#12`, and full issue URLs on the same GitLab instance.
//!
//! Pure and linear: the text is capped, code (fenced blocks, inline code
//! spans) and HTML comments are masked out in one pass each, then one regex
//! (linear time, no backtracking) finds the references. `!12` (a merge
//! request), `foo#12`, `&#12;` and references inside code are not issue
//! references. What comes out is only a validated project path and a
//! number, never the surrounding text.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// At most this much text is searched (GitLab caps descriptions at 1 MB).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// At most this many distinct references are returned per call.
pub const MAX_REFERENCES: usize = 100;

/// An issue named in text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssueReference {
    /// `None`: the project the text belongs to.
    pub project: Option<String>,
    pub iid: u64,
}

impl fmt::Display for IssueReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.project {
            Some(project) => write!(f, "{project}#{}", self.iid),
            None => write!(f, "#{}", self.iid),
        }
    }
}

/// A GitLab project path segment (`restorepoint`, `my.project-2`).
const SEGMENT: &str = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*";

/// `group/sub/project#12` or `#12`.
static SHORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?P<path>{SEGMENT}(?:/{SEGMENT})+)?#(?P<iid>[0-9]{{1,12}})"
    ))
    .expect("static regex")
});

/// Finds the issue references in text written on one GitLab instance.
#[derive(Debug, Clone)]
pub struct ReferenceFinder {
    url: Regex,
}

impl ReferenceFinder {
    /// `base_url` is the instance's URL (`https://gitlab.example.com`, maybe
    /// with a path); issue URLs under it count, with either scheme.
    pub fn new(base_url: &str) -> Self {
        let base = base_url.trim().trim_end_matches('/');
        let rest = base
            .split_once("://")
            .map_or(base, |(_, rest)| rest)
            .to_owned();
        let url = Regex::new(&format!(
            r"(?i:https?://{})/(?P<path>{SEGMENT}(?:/{SEGMENT})+?)/(?:-/)?issues/(?P<iid>[0-9]{{1,12}})",
            regex::escape(&rest)
        ))
        .expect("escaped URL regex");
        Self { url }
    }

    /// The distinct references in `text`, in order of first appearance.
    pub fn find(&self, text: &str) -> Vec<IssueReference> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.find_into(text, &mut out, &mut seen);
        out
    }

    /// The distinct references in several texts (title, description, commit
    /// messages), in order of first appearance, at most [`MAX_REFERENCES`].
    pub fn find_all<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> Vec<IssueReference> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for text in texts {
            if out.len() >= MAX_REFERENCES {
                break;
            }
            self.find_into(text, &mut out, &mut seen);
        }
        out
    }

    fn find_into(
        &self,
        text: &str,
        out: &mut Vec<IssueReference>,
        seen: &mut HashSet<IssueReference>,
    ) {
        let prose = mask_code(cap(text, MAX_TEXT_BYTES));
        let mut found: Vec<(usize, IssueReference)> = Vec::new();
        // URLs first; their spans are then blanked so that the `#note_…` or
        // path inside them is not read again as a short reference.
        let mut rest = prose.clone().into_bytes();
        for caps in self.url.captures_iter(&prose) {
            let whole = caps.get(0).expect("match");
            if !boundary_before(&prose, whole.start(), b"") || !boundary_after(&prose, whole.end())
            {
                continue;
            }
            if let Some(iid) = caps["iid"].parse().ok().filter(|&n| n > 0) {
                let project = Some(caps["path"].to_owned());
                found.push((whole.start(), IssueReference { project, iid }));
            }
            rest[whole.start()..whole.end()].fill(b' ');
        }
        let rest = String::from_utf8(rest).unwrap_or_default();
        for caps in SHORT.captures_iter(&rest) {
            let whole = caps.get(0).expect("match");
            // `x#1`, `&#1;`, `a/#1`, `https://host/a/b#1`: not references.
            if !boundary_before(&rest, whole.start(), b"&/:.-@#!~+=%$")
                || !boundary_after(&rest, whole.end())
            {
                continue;
            }
            let Some(iid) = caps["iid"].parse().ok().filter(|&n| n > 0) else {
                continue;
            };
            let project = caps.name("path").map(|p| p.as_str().to_owned());
            found.push((whole.start(), IssueReference { project, iid }));
        }
        found.sort_by_key(|(at, _)| *at);
        for (_, reference) in found {
            if out.len() >= MAX_REFERENCES {
                break;
            }
            if seen.insert(reference.clone()) {
                out.push(reference);
            }
        }
    }
}

/// The byte before `at` is the start, or neither a word character nor one of `also`.
fn boundary_before(text: &str, at: usize, also: &[u8]) -> bool {
    match text.as_bytes()[..at].last() {
        None => true,
        Some(&b) => !(b.is_ascii_alphanumeric() || b == b'_' || also.contains(&b)),
    }
}

/// The byte at `at` is the end, or not a word character (`#12abc` is not `#12`).
fn boundary_after(text: &str, at: usize) -> bool {
    match text.as_bytes().get(at) {
        None => true,
        Some(&b) => !(b.is_ascii_alphanumeric() || b == b'_'),
    }
}

fn cap(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` with fenced code blocks, inline code spans and HTML comments
/// replaced by spaces (byte for byte, so offsets and UTF-8 stay valid:
/// every byte of a masked multi-byte character becomes a space).
fn mask_code(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let blocks = mask_fences(text, &mut bytes);
    for (start, end) in blocks {
        mask_comments(&mut bytes[start..end]);
        mask_code_spans(&mut bytes[start..end]);
    }
    // Only ASCII bytes were replaced by ASCII, and whole characters at that
    // (every byte of a masked range), so this cannot fail.
    String::from_utf8(bytes).unwrap_or_default()
}

fn blank(bytes: &mut [u8]) {
    for b in bytes {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

/// Mask fenced code blocks (``` or ~~~, three or more, indented at most
/// three spaces; closed by a fence of the same character at least as long,
/// or by the end of the text). Returns the paragraphs outside them: runs of
/// lines separated by blank lines, which is as far as a code span reaches.
fn mask_fences(text: &str, bytes: &mut [u8]) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut block_start: Option<usize> = None;
    let mut fence: Option<(u8, usize)> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        let indent = content.len() - content.trim_start_matches(' ').len();
        let body = &content[indent..];
        let run = |c: u8| body.bytes().take_while(|&b| b == c).count();
        match fence {
            Some((c, len)) => {
                blank(&mut bytes[start..offset]);
                if indent <= 3 && run(c) >= len && body[run(c)..].trim().is_empty() {
                    fence = None;
                }
            }
            None => {
                let opener = [b'`', b'~'].into_iter().find_map(|c| {
                    let n = run(c);
                    // A backtick fence's info string may not hold a backtick.
                    let info_ok = c == b'~' || !body[n..].contains('`');
                    (indent <= 3 && n >= 3 && info_ok).then_some((c, n))
                });
                if let Some(opened) = opener {
                    if let Some(s) = block_start.take() {
                        blocks.push((s, start));
                    }
                    blank(&mut bytes[start..offset]);
                    fence = Some(opened);
                } else if content.trim().is_empty() {
                    if let Some(s) = block_start.take() {
                        blocks.push((s, start));
                    }
                } else if block_start.is_none() {
                    block_start = Some(start);
                }
            }
        }
    }
    if let Some(s) = block_start {
        blocks.push((s, offset));
    }
    blocks
}

/// Mask `<!-- … -->` (an unclosed one runs to the end).
fn mask_comments(bytes: &mut [u8]) {
    let mut at = 0;
    while let Some(open) = memchr::memmem::find(&bytes[at..], b"<!--").map(|i| at + i) {
        let end = memchr::memmem::find(&bytes[open + 4..], b"-->")
            .map_or(bytes.len(), |i| open + 4 + i + 3);
        blank(&mut bytes[open..end]);
        at = end;
    }
}

/// Mask inline code spans: a run of N backticks up to the next run of
/// exactly N backticks. Unmatched runs are literal. Linear: for each run
/// length, a cursor into that length's runs only moves forward.
fn mask_code_spans(bytes: &mut [u8]) {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let start = i;
            while i < bytes.len() && bytes[i] == b'`' {
                i += 1;
            }
            runs.push((start, i - start));
        } else {
            i += 1;
        }
    }
    let mut by_len: HashMap<usize, (Vec<usize>, usize)> = HashMap::new();
    for (index, &(_, len)) in runs.iter().enumerate() {
        by_len.entry(len).or_default().0.push(index);
    }
    let mut index = 0;
    while index < runs.len() {
        let (start, len) = runs[index];
        let (same, cursor) = by_len.get_mut(&len).expect("every run is indexed");
        while *cursor < same.len() && same[*cursor] <= index {
            *cursor += 1;
        }
        match same.get(*cursor) {
            Some(&closer) => {
                let (close_start, close_len) = runs[closer];
                blank(&mut bytes[start..close_start + close_len]);
                index = closer + 1;
            }
            None => index += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://gitlab.example.com";

    fn refs(text: &str) -> Vec<String> {
        ReferenceFinder::new(BASE)
            .find(text)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(refs("Fixes #5."), ["#5"]);
        assert_eq!(
            refs("Closes restorepoint/product#12 and group/sub/lib#3"),
            ["restorepoint/product#12", "group/sub/lib#3"]
        );
        assert_eq!(
            refs("See https://gitlab.example.com/restorepoint/product/-/issues/44#note_9"),
            ["restorepoint/product#44"]
        );
        assert_eq!(
            refs(
                "old style https://GITLAB.example.com/a/b/issues/7, new http://gitlab.example.com/a/sub/b/-/issues/8/"
            ),
            ["a/b#7", "a/sub/b#8"]
        );
        assert_eq!(
            refs("(#1) [#2] #3, #4; \"#5\"\n#6"),
            ["#1", "#2", "#3", "#4", "#5", "#6"]
        );
    }

    #[test]
    fn what_is_not_a_reference() {
        for text in [
            "!12",
            "see group/project!12",
            "foo#12",
            "&#12;",
            "#12abc",
            "#0",
            "# Heading",
            "https://github.com/foo/bar/issues/12",
            "https://github.com/foo/bar#12",
            "https://gitlab.example.com.evil.com/a/b/-/issues/1",
            "https://gitlab.example.com/a/b/-/merge_requests/3",
            "a/#12",
            "C#12",
        ] {
            assert_eq!(refs(text), Vec::<String>::new(), "{text:?}");
        }
    }

    #[test]
    fn code_is_ignored() {
        assert_eq!(refs("use `#1` here, but fix #2"), ["#2"]);
        assert_eq!(refs("``a ` #1 ``, #2"), ["#2"]);
        assert_eq!(refs("```\n#1\n```\n#2"), ["#2"]);
        assert_eq!(refs("  ~~~~ sh\n#1\n~~~\nstill code #3\n~~~~\n#2"), ["#2"]);
        // An unclosed fence runs to the end.
        assert_eq!(refs("#2\n```\n#1\n"), ["#2"]);
        // An unmatched backtick is literal, and a code span stops at a blank line.
        assert_eq!(refs("a ` stray #1\n\nlater `x` #2"), ["#1", "#2"]);
        assert_eq!(refs("<!-- template: #1 -->\nFixes #2"), ["#2"]);
        assert_eq!(
            refs("`https://gitlab.example.com/a/b/-/issues/1` #2"),
            ["#2"]
        );
    }

    #[test]
    fn deduplicated_in_order_and_bounded() {
        let finder = ReferenceFinder::new(BASE);
        let found = finder.find_all(["Fix #3", "#1 and #3", "group/p#3 #1"]);
        let names: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["#3", "#1", "group/p#3"]);
        let many: String = (1..=500).map(|n| format!("#{n} ")).collect();
        assert_eq!(finder.find(&many).len(), MAX_REFERENCES);
    }

    #[test]
    fn base_url_with_a_path() {
        let finder = ReferenceFinder::new("https://example.com/gitlab/");
        let found = finder
            .find("https://example.com/gitlab/g/p/-/issues/5 https://example.com/g/p/-/issues/6");
        assert_eq!(
            found,
            [IssueReference {
                project: Some("g/p".into()),
                iid: 5
            }]
        );
    }

    #[test]
    fn hostile_and_huge_text_is_fine() {
        // Many backtick runs of different lengths, none closed: linear.
        let text: String = (1..2000).map(|n| "`".repeat(n % 50 + 1) + " x ").collect();
        let _ = refs(&text);
        let text = "`".repeat(MAX_TEXT_BYTES * 2);
        assert!(refs(&text).is_empty());
        let text = format!("{}é #1", "a".repeat(MAX_TEXT_BYTES - 1));
        assert!(refs(&text).is_empty());
        assert_eq!(refs("ü #7 ünïcode"), ["#7"]);
        assert_eq!(refs("`ü` #7"), ["#7"]);
    }
}
