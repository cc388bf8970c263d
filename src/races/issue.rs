//! A race's GitLab issue, as text: the labels it carries, the marker that
//! identifies it, how an existing issue is matched to a race, and the issue
//! and note bodies (SPEC §4).
//!
//! Pure functions over strings: no HTTP. Existing issues are seen through
//! [`FiledIssue`], so this module does not depend on the GitLab client.
//! Text from the logs (reports, source names) only ever lands inside a
//! fenced block or escaped HTML, never in a marker.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::error::UsageError;

use super::input::{KEPT_REPORT_CAP, KEPT_TEXT_BUDGET, KeptReport, SightingId};
use super::{Fingerprint, RaceSighting};

/// The label race issues carry when none is configured.
pub const DEFAULT_LABEL: &str = "race condition";

/// The labels of race issues: at least one, none empty, none with a comma
/// (GitLab's list separator). Existing issues are listed by the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaceLabels(Vec<String>);

impl RaceLabels {
    /// Trimmed labels, or a usage error naming the bad ones.
    pub fn new(labels: impl IntoIterator<Item = String>) -> Result<Self, UsageError> {
        let labels: Vec<String> = labels.into_iter().map(|l| l.trim().to_owned()).collect();
        if labels.is_empty() || labels.iter().any(|l| l.is_empty() || l.contains(',')) {
            return Err(UsageError::new(format!(
                "race labels must be non-empty and contain no comma, got {labels:?}"
            )));
        }
        Ok(Self(labels))
    }

    /// The label existing race issues are listed by.
    pub fn first(&self) -> &str {
        &self.0[0]
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// The marker that identifies a race's issue:
/// `<!-- rp-devops:race fingerprint=HEX sides=HEX,HEX sightings=HEX,… -->`.
/// `sides` holds the fingerprint each access would have alone, so that a
/// report cut off after one side finds the issue of the full race, and the
/// other way round; `sightings` the sightings the issue was filed from, so a
/// later run reading the same logs notes nothing. Issues filed before sides
/// or sightings were recorded carry no `sides=` or `sightings=`.
///
/// Only rp-devops's own marker counts: a line that is exactly a marker,
/// outside any fenced code block, the last such line of the text (see
/// [`own_marker_line`]). Report text is always fenced and file names are
/// always escaped inline, so nothing copied from a log can be taken for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaceMarker {
    pub fingerprint: String,
    pub sides: Vec<String>,
    pub sightings: Vec<String>,
}

const MARKER_START: &str = "<!-- rp-devops:race fingerprint=";
const NOTE_MARKER_START: &str = "<!-- rp-devops:race-note fingerprint=";

static RACE_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^<!-- rp-devops:race fingerprint=([0-9a-f]+)(?: sides=([0-9a-f,]*))?(?: sightings=([0-9a-f,]*))? -->$",
    )
    .expect("static regex")
});
static NOTE_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^<!-- rp-devops:race-note fingerprint=([0-9a-f]+) run=([0-9a-f]+)(?: sightings=([0-9a-f,]*))? -->$",
    )
    .expect("static regex")
});

fn hex_list(list: Option<regex::Match<'_>>) -> Vec<String> {
    list.map(|m| {
        m.as_str()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

impl RaceMarker {
    pub fn new(fingerprint: &Fingerprint, sides: &[Fingerprint]) -> Self {
        Self {
            fingerprint: fingerprint.0.clone(),
            sides: sides.iter().map(|s| s.0.clone()).collect(),
            sightings: Vec::new(),
        }
    }

    /// The marker of a run's sighting, with the sightings it holds.
    pub fn of(sighting: &RaceSighting) -> Self {
        let mut marker = Self::new(&sighting.fingerprint, &sighting.sides);
        marker.sightings = sighting.sightings.iter().map(|id| id.to_string()).collect();
        marker
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "{MARKER_START}{} sides={}",
            self.fingerprint,
            self.sides.join(",")
        );
        if !self.sightings.is_empty() {
            out.push_str(" sightings=");
            out.push_str(&self.sightings.join(","));
        }
        out.push_str(" -->");
        out
    }

    /// rp-devops's marker in an issue description, and where it stands, if
    /// it has one (see [`own_marker_line`]).
    pub fn find(description: &str) -> Option<(Self, std::ops::Range<usize>)> {
        own_marker_line(description, MARKER_START, |line| {
            let caps = RACE_MARKER.captures(line)?;
            Some(Self {
                fingerprint: caps[1].to_owned(),
                sides: hex_list(caps.get(2)),
                sightings: hex_list(caps.get(3)),
            })
        })
    }

    /// A report with one usable side: its fingerprint is that side's.
    pub fn is_one_sided(&self) -> bool {
        self.sides.len() == 1 && self.sides[0] == self.fingerprint
    }
}

/// The marker of the note one run adds for one race: the run (so a lost
/// answer is checked, not sent twice) and the sightings it notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteMarker {
    pub fingerprint: String,
    pub run: String,
    pub sightings: Vec<String>,
}

impl NoteMarker {
    pub fn new(fingerprint: &Fingerprint, run_id: &str, sightings: &[SightingId]) -> Self {
        Self {
            fingerprint: fingerprint.0.clone(),
            run: run_id.to_owned(),
            sightings: sightings.iter().map(|id| id.to_string()).collect(),
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!("{NOTE_MARKER_START}{} run={}", self.fingerprint, self.run);
        if !self.sightings.is_empty() {
            out.push_str(" sightings=");
            out.push_str(&self.sightings.join(","));
        }
        out.push_str(" -->");
        out
    }

    /// rp-devops's note marker in a note, if it has one.
    pub fn find(body: &str) -> Option<Self> {
        own_marker_line(body, NOTE_MARKER_START, |line| {
            let caps = NOTE_MARKER.captures(line)?;
            Some(Self {
                fingerprint: caps[1].to_owned(),
                run: caps[2].to_owned(),
                sightings: hex_list(caps.get(3)),
            })
        })
        .map(|(marker, _)| marker)
    }
}

/// The sightings an issue has recorded already: those in its description's
/// marker and in the markers of rp-devops's notes on it. Only the hardened
/// lookup is used: a marker quoted in a report never counts.
pub fn noted_sightings<'a>(
    description: &str,
    notes: impl IntoIterator<Item = &'a str>,
) -> HashSet<SightingId> {
    let from_description = RaceMarker::find(description)
        .map(|(m, _)| m.sightings)
        .unwrap_or_default();
    let from_notes = notes
        .into_iter()
        .filter_map(NoteMarker::find)
        .flat_map(|m| m.sightings);
    from_description
        .into_iter()
        .chain(from_notes)
        .filter_map(|hex| hex.parse().ok())
        .collect()
}

/// The last line of `text` that starts with `start`, lies outside every
/// fenced code block (CommonMark fences of backticks or tildes) and parses
/// with `parse`; with its byte range. A marker must be a whole line of its
/// own: one inside a report (always fenced), inside an inline code span or
/// after other text is not a marker.
fn own_marker_line<T>(
    text: &str,
    start: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<(T, std::ops::Range<usize>)> {
    let mut found = None;
    let mut fence: Option<(u8, usize)> = None;
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        if let Some((ch, run)) = fence_line(line) {
            match fence {
                None => {
                    // An info string with a backtick does not open a fence.
                    let info = &line.trim_start()[run..];
                    if ch == b'~' || !info.contains('`') {
                        fence = Some((ch, run));
                    }
                }
                Some((open, len)) => {
                    let rest = &line.trim_start()[run..];
                    if open == ch && run >= len && rest.trim().is_empty() {
                        fence = None;
                    }
                }
            }
            continue;
        }
        if fence.is_some() || !line.starts_with(start) {
            continue;
        }
        let trimmed = line.trim_end();
        if let Some(marker) = parse(trimmed) {
            found = Some((marker, line_start..line_start + trimmed.len()));
        }
    }
    found
}

/// A line of at least three backticks or tildes after at most three spaces:
/// the fence character and how many.
fn fence_line(line: &str) -> Option<(u8, usize)> {
    let indent = line.bytes().take_while(|&b| b == b' ').count();
    if indent > 3 {
        return None;
    }
    let rest = &line.as_bytes()[indent..];
    let ch = *rest.first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let run = rest.iter().take_while(|&&b| b == ch).count();
    (run >= 3).then_some((ch, run))
}

/// What matching needs to know of an issue that exists already.
pub trait FiledIssue {
    fn iid(&self) -> u64;
    fn title(&self) -> &str;
    fn description(&self) -> &str;
}

/// How an existing issue's description must change to carry our marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerUpdate {
    /// It has our marker already.
    None,
    /// Made by hand or by the old tool: append the marker (adoption).
    Append,
    /// Filed from a one-sided report; now the full race is known.
    Replace,
}

/// The existing issue of a race: by fingerprint; else, for a one-sided
/// report, the one issue of a full race with that side (or, for a full race,
/// the one issue filed from a one-sided report of either side); else an
/// issue with the same title and no marker.
///
/// Two runs at once may have filed a race twice; the earliest issue (lowest
/// iid) is the race's, the later one was closed as its duplicate.
pub fn find_issue<'a, I: FiledIssue>(
    existing: &'a [I],
    ours: &RaceMarker,
    title: &str,
) -> Option<(&'a I, MarkerUpdate)> {
    let mut marked: Vec<(&I, RaceMarker)> = existing
        .iter()
        .filter_map(|i| RaceMarker::find(i.description()).map(|(m, _)| (i, m)))
        .collect();
    marked.sort_by_key(|(i, _)| i.iid());
    let mut seen = HashSet::new();
    marked.retain(|(_, m)| seen.insert(m.fingerprint.clone()));
    if let Some((issue, _)) = marked
        .iter()
        .find(|(_, m)| m.fingerprint == ours.fingerprint)
    {
        return Some((*issue, MarkerUpdate::None));
    }
    let related: Vec<&(&I, RaceMarker)> = if ours.is_one_sided() {
        marked
            .iter()
            .filter(|(_, m)| !m.is_one_sided() && m.sides.contains(&ours.fingerprint))
            .collect()
    } else {
        marked
            .iter()
            .filter(|(_, m)| m.is_one_sided() && ours.sides.contains(&m.fingerprint))
            .collect()
    };
    if let [(issue, _)] = related.as_slice() {
        let update = if ours.is_one_sided() {
            MarkerUpdate::None
        } else {
            MarkerUpdate::Replace
        };
        return Some((*issue, update));
    }
    existing
        .iter()
        .find(|i| RaceMarker::find(i.description()).is_none() && i.title() == title)
        .map(|i| (i, MarkerUpdate::Append))
}

/// The issue of the race `fingerprint` filed first (lowest iid), among
/// `issues`: after two runs created an issue each, the one that stays.
pub fn earliest_issue<'a, I: FiledIssue>(
    issues: &'a [I],
    fingerprint: &Fingerprint,
) -> Option<&'a I> {
    issues
        .iter()
        .filter(|i| {
            RaceMarker::find(i.description()).is_some_and(|(m, _)| m.fingerprint == fingerprint.0)
        })
        .min_by_key(|i| i.iid())
}

/// The description with our marker put in, or `None` when it has it already.
/// Adopting appends the marker without sightings (the note that follows
/// records them); taking over a cut-off report's issue keeps the sightings
/// its marker recorded.
pub fn marked_description(
    description: &str,
    update: MarkerUpdate,
    ours: &RaceMarker,
) -> Option<String> {
    let bare = RaceMarker {
        sightings: Vec::new(),
        ..ours.clone()
    };
    match update {
        MarkerUpdate::None => None,
        MarkerUpdate::Append => Some(format!("{}\n\n{}\n", description.trim_end(), bare.render())),
        MarkerUpdate::Replace => {
            let (old, range) = RaceMarker::find(description)?;
            let marker = RaceMarker {
                sightings: old.sightings,
                ..bare
            };
            let mut updated = description.to_owned();
            updated.replace_range(range, &marker.render());
            Some(updated)
        }
    }
}

/// The note that closes an issue as the duplicate of `original`'s, and its marker.
pub fn duplicate_note(original: u64) -> (String, String) {
    let marker = format!("<!-- rp-devops:race-duplicate of={original} -->");
    let body = format!(
        "Duplicate of #{original}: another scan-races run filed this race at the same time.\n\n{marker}\n"
    );
    (body, marker)
}

/// The description of a new race issue: where and how often the race was
/// seen, who last changed the lines of its accesses (`last_changed`, already
/// rendered, may be empty), the first report verbatim, and the marker.
pub fn issue_body(sighting: &RaceSighting, marker: &str, last_changed: &str) -> String {
    let first = &sighting.first;
    let truncated = if first.truncated {
        "\n\nThe report below was cut off in the log (truncated)."
    } else {
        ""
    };
    let last_changed = if last_changed.is_empty() {
        String::new()
    } else {
        format!("\n\n{}", last_changed.trim_end())
    };
    format!(
        "The race detector reported this data race in {}.\n\n\
         Seen **{}** time{} in this run, in:\n\n{}{last_changed}{truncated}\n\n{}\n{marker}\n",
        inline_code(&first.source),
        sighting.count,
        plural(sighting.count),
        source_list(sighting),
        report_block(first),
    )
}

/// The note on an existing issue: how often (`new` sightings not noted
/// before) and where the race was seen in this run, the newest report folded
/// away; when reopening, a regression line and rp-devops's own `/reopen`
/// quick action, so that the note and the reopening are one write (GitLab
/// runs the action and keeps the rest of the note).
pub fn note_body(sighting: &RaceSighting, marker: &str, reopening: bool, new: u64) -> String {
    let (regression, reopen) = if reopening {
        (
            "**Regression:** this race was fixed (the issue was closed) and shows up again; reopening.\n\n",
            "/reopen\n",
        )
    } else {
        ("", "")
    };
    let newest = sighting.newest();
    format!(
        "{regression}Seen again: **{new}** time{} in this run, in:\n\n{}\n\n\
         <details><summary>Newest report (from <code>{}</code>)</summary>\n\n{}\n</details>\n\n{reopen}{marker}\n",
        plural(new),
        source_list(sighting),
        html_text(&newest.source),
        report_block(newest),
    )
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A kept report as a fenced block, or why its text is missing.
fn report_block(report: &KeptReport) -> String {
    let Some(text) = &report.text else {
        return format!(
            "_The text of this report was not kept: this run held {} MiB of race \
             reports already (the races it met first keep theirs)._\n",
            KEPT_TEXT_BUDGET / (1024 * 1024)
        );
    };
    let mut out = fenced(text);
    if report.cut {
        out.push_str(&format!(
            "\n_(report cut at {} KiB)_\n",
            KEPT_REPORT_CAP / 1024
        ));
    }
    out
}

/// The longest run of backticks in `text`.
fn longest_backticks(text: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// A fence longer than any run of backticks inside `text`.
fn fence_for(text: &str) -> String {
    "`".repeat((longest_backticks(text) + 1).max(3))
}

/// `text` verbatim in a fenced block. A line starting with `/` gets one
/// space in front: GitLab looks for quick actions line by line and its
/// idea of a code block is narrower than Markdown's (a fence longer than
/// three backticks is not one to it).
fn fenced(text: &str) -> String {
    let fence = fence_for(text);
    let mut out = format!("{fence}text\n");
    for line in text.split('\n') {
        if line.starts_with('/') {
            out.push(' ');
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

/// Control characters (line breaks among them) made visible as escapes:
/// text from outside never starts a line of its own in what we write.
fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Outside text (a file name, a function name) as one Markdown code span on
/// one line: control characters escaped, a backtick run longer than any
/// inside, padded when the text starts or ends with a backtick.
pub fn inline_code(text: &str) -> String {
    let clean = escape_controls(text);
    let fence = "`".repeat(longest_backticks(&clean) + 1);
    let pad = if clean.starts_with('`') || clean.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{clean}{pad}{fence}")
}

/// Outside text inside HTML (`<code>…</code>`): escaped, on one line.
pub fn html_text(text: &str) -> String {
    escape_controls(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn source_list(sighting: &RaceSighting) -> String {
    const SHOWN: usize = 20;
    let mut list: Vec<String> = sighting
        .sources
        .iter()
        .take(SHOWN)
        .map(|s| format!("- {}", inline_code(s)))
        .collect();
    let more = (sighting.sources.len().saturating_sub(SHOWN)) as u64 + sighting.more_sources;
    if more > 0 {
        list.push(format!("- … and {more} more"));
    }
    list.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(hex: &str) -> Fingerprint {
        Fingerprint(hex.to_owned())
    }

    struct Known {
        iid: u64,
        title: &'static str,
        description: String,
    }

    impl FiledIssue for Known {
        fn iid(&self) -> u64 {
            self.iid
        }
        fn title(&self) -> &str {
            self.title
        }
        fn description(&self) -> &str {
            &self.description
        }
    }

    fn issue(iid: u64, title: &'static str, description: impl Into<String>) -> Known {
        Known {
            iid,
            title,
            description: description.into(),
        }
    }

    /// The race whose sides are `aa` and `bb`, fingerprint `ab`.
    fn full() -> RaceMarker {
        RaceMarker::new(&fp("ab"), &[fp("aa"), fp("bb")])
    }

    /// A report of that race cut off after side `aa`.
    fn cut() -> RaceMarker {
        RaceMarker::new(&fp("aa"), &[fp("aa")])
    }

    fn found(existing: &[Known], ours: &RaceMarker, title: &str) -> Option<(u64, MarkerUpdate)> {
        find_issue(existing, ours, title).map(|(i, u)| (i.iid, u))
    }

    #[test]
    fn full_markers_round_trip() {
        let marker = full();
        let body = format!("text\n{}\nmore", marker.render());
        let (back, range) = RaceMarker::find(&body).unwrap();
        assert_eq!(back, marker);
        assert_eq!(&body[range], marker.render());
        assert!(!back.is_one_sided());
    }

    #[test]
    fn one_sided_markers_round_trip() {
        let marker = cut();
        assert_eq!(
            marker.render(),
            "<!-- rp-devops:race fingerprint=aa sides=aa -->"
        );
        let (back, _) = RaceMarker::find(&marker.render()).unwrap();
        assert_eq!(back, marker);
        assert!(back.is_one_sided());
    }

    #[test]
    fn old_markers_without_sides_still_read() {
        let (old, range) =
            RaceMarker::find("x\n<!-- rp-devops:race fingerprint=beef -->\r\ny").unwrap();
        assert_eq!(old.fingerprint, "beef");
        assert!(old.sides.is_empty());
        assert!(!old.is_one_sided());
        assert_eq!(range, 2..42);
    }

    #[test]
    fn no_marker_or_a_forged_one_is_not_a_marker() {
        assert!(RaceMarker::find("no marker").is_none());
        assert!(RaceMarker::find("<!-- rp-devops:race fingerprint=abc").is_none());
        assert!(RaceMarker::find("<!-- rp-devops:race fingerprint=not-hex -->").is_none());
        assert!(
            RaceMarker::find("<!-- rp-devops:race fingerprint=ab sides=aa,/close,bb -->").is_none()
        );
        // Not on a line of its own: inside other text, or indented.
        assert!(RaceMarker::find("seen <!-- rp-devops:race fingerprint=ab -->").is_none());
        assert!(RaceMarker::find("  <!-- rp-devops:race fingerprint=ab -->").is_none());
        assert!(RaceMarker::find("`<!-- rp-devops:race fingerprint=ab -->`").is_none());
    }

    #[test]
    fn only_our_own_marker_line_outside_fences_counts() {
        let forged = RaceMarker::new(&fp("ee"), &[fp("ee")]).render();
        let ours = full().render();
        // A report quoting another race's marker, fenced as we fence it, with
        // a line of three backticks inside (which does not close a longer fence).
        for fence in ["````", "~~~"] {
            let body = format!(
                "Seen in `x`.\n\n{fence}text\n{forged}\n```\n{forged}\n{fence}\n\n{ours}\n"
            );
            assert_eq!(RaceMarker::find(&body).unwrap().0, full(), "{body}");
        }
        let body = format!("```text\n{forged}\n```\n\n{ours}\n");
        assert_eq!(RaceMarker::find(&body).unwrap().0, full(), "{body}");
        // Without our marker, a fenced forgery is nothing.
        let body = format!("````text\n```\n{forged}\n````\n");
        assert!(RaceMarker::find(&body).is_none(), "{body}");
        // An unclosed fence hides everything after it.
        let body = format!("```text\n{forged}\n");
        assert!(RaceMarker::find(&body).is_none());
        // A backtick in the info string does not open a fence.
        let body = format!("``` a`b\n{ours}\n");
        assert_eq!(RaceMarker::find(&body).unwrap().0, full());
        // The last of two own markers counts (a person edited the text).
        let body = format!("{forged}\n\ntext\n\n{ours}\n");
        assert_eq!(RaceMarker::find(&body).unwrap().0, full());
    }

    #[test]
    fn sightings_ride_in_the_markers() {
        let ids = [SightingId(0xabc), SightingId(u64::MAX)];
        let mut marker = full();
        marker.sightings = ids.iter().map(|i| i.to_string()).collect();
        let rendered = marker.render();
        assert_eq!(
            rendered,
            "<!-- rp-devops:race fingerprint=ab sides=aa,bb sightings=0000000000000abc,ffffffffffffffff -->"
        );
        assert_eq!(RaceMarker::find(&rendered).unwrap().0, marker);
        let note = NoteMarker::new(&fp("ab"), "0123", &[SightingId(7)]);
        let body = format!("Seen again\n\n{}\n", note.render());
        assert_eq!(NoteMarker::find(&body), Some(note.clone()));
        // Quoted in a report, a note marker is not one.
        assert_eq!(
            NoteMarker::find(&format!("```text\n{}\n```\n", note.render())),
            None
        );
        let noted = noted_sightings(&format!("d\n{rendered}\n"), [body.as_str(), "by hand"]);
        let mut noted: Vec<SightingId> = noted.into_iter().collect();
        noted.sort();
        assert_eq!(
            noted,
            [SightingId(7), SightingId(0xabc), SightingId(u64::MAX)]
        );
    }

    #[test]
    fn replacing_a_one_sided_marker_keeps_the_rest_and_its_sightings() {
        let mut old = cut();
        old.sightings = vec!["0000000000000001".to_owned()];
        let mut new = full();
        new.sightings = vec!["0000000000000002".to_owned()];
        let description = format!("report\n\n{}\n", old.render());
        let updated = marked_description(&description, MarkerUpdate::Replace, &new).unwrap();
        let kept = RaceMarker {
            sightings: old.sightings.clone(),
            ..full()
        };
        assert_eq!(updated, format!("report\n\n{}\n", kept.render()));
        assert_eq!(
            marked_description(&description, MarkerUpdate::None, &new),
            None
        );
    }

    #[test]
    fn adopting_appends_the_marker_after_the_text() {
        let mut marker = full();
        marker.sightings = vec!["0000000000000002".to_owned()];
        let updated =
            marked_description("Found by hand.\n\n", MarkerUpdate::Append, &marker).unwrap();
        assert_eq!(updated, format!("Found by hand.\n\n{}\n", full().render()));
        assert_eq!(RaceMarker::find(&updated).unwrap().0, full());
    }

    #[test]
    fn found_by_fingerprint_including_old_markers() {
        let existing = [
            issue(1, "other", RaceMarker::new(&fp("cc"), &[]).render()),
            issue(2, "t", "<!-- rp-devops:race fingerprint=ab -->"),
        ];
        assert_eq!(
            found(&existing, &full(), "t"),
            Some((2, MarkerUpdate::None))
        );
    }

    #[test]
    fn the_earliest_of_two_issues_of_one_race_wins() {
        let existing = [
            issue(7, "t", full().render()),
            issue(3, "t", full().render()),
        ];
        assert_eq!(
            found(&existing, &full(), "t"),
            Some((3, MarkerUpdate::None))
        );
        assert_eq!(earliest_issue(&existing, &fp("ab")).map(|i| i.iid), Some(3));
        assert!(earliest_issue(&existing, &fp("cd")).is_none());
    }

    #[test]
    fn a_cut_off_report_finds_the_full_race_with_its_side() {
        let existing = [issue(4, "full", full().render())];
        assert_eq!(found(&existing, &cut(), "x"), Some((4, MarkerUpdate::None)));
    }

    #[test]
    fn a_full_race_takes_over_the_issue_of_its_cut_off_report() {
        let other_side = RaceMarker::new(&fp("bb"), &[fp("bb")]);
        assert_eq!(
            found(&[issue(5, "cut", cut().render())], &full(), "x"),
            Some((5, MarkerUpdate::Replace))
        );
        assert_eq!(
            found(&[issue(6, "cut", other_side.render())], &full(), "x"),
            Some((6, MarkerUpdate::Replace))
        );
    }

    #[test]
    fn two_candidates_are_not_guessed_between() {
        // Two full races share side `aa`: a cut-off `aa` report matches neither.
        let existing = [
            issue(1, "one", full().render()),
            issue(
                2,
                "two",
                RaceMarker::new(&fp("ac"), &[fp("aa"), fp("cc")]).render(),
            ),
        ];
        assert_eq!(found(&existing, &cut(), "t"), None);
        // Both sides cut off separately: the full race picks neither issue.
        let other_side = RaceMarker::new(&fp("bb"), &[fp("bb")]);
        let existing = [
            issue(1, "a", cut().render()),
            issue(2, "b", other_side.render()),
        ];
        assert_eq!(found(&existing, &full(), "t"), None);
    }

    #[test]
    fn an_unmarked_issue_with_the_same_title_is_adopted() {
        let existing = [
            issue(
                1,
                "Data race in f()",
                "another race's\n<!-- rp-devops:race fingerprint=ee -->",
            ),
            issue(2, "Data race in g()", "by hand"),
            issue(3, "Data race in f()", "by hand"),
        ];
        assert_eq!(
            found(&existing, &full(), "Data race in f()"),
            Some((3, MarkerUpdate::Append))
        );
        assert_eq!(found(&existing, &full(), "Data race in h()"), None);
    }

    #[test]
    fn labels_are_trimmed_and_checked() {
        let labels = RaceLabels::new([" race ".to_owned(), "go".to_owned()]).unwrap();
        assert_eq!(labels.first(), "race");
        assert_eq!(labels.as_slice(), ["race", "go"]);
        assert!(RaceLabels::new(Vec::new()).is_err());
        assert!(RaceLabels::new([" ".to_owned()]).is_err());
        assert!(RaceLabels::new(["a,b".to_owned()]).is_err());
    }

    #[test]
    fn fences_outgrow_backticks_in_the_report() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
    }

    #[test]
    fn outside_text_stays_on_its_line() {
        assert_eq!(inline_code("host:/var/log/a.log"), "`host:/var/log/a.log`");
        assert_eq!(
            inline_code("a\n/close\r\u{2028}b"),
            "`a\\n/close\\r\\u{2028}b`"
        );
        assert_eq!(inline_code("x`y"), "``x`y``");
        assert_eq!(inline_code("`x"), "`` `x ``");
        assert_eq!(html_text("<b>&\n/close"), "&lt;b&gt;&amp;\\n/close");
        // Report lines starting with a slash are indented one space.
        assert_eq!(fenced("a\n/close\nb"), "```text\na\n /close\nb\n```\n");
    }

    /// A sighting of a race whose log is called `name`, on host `h`.
    fn sighting_named(name: &str, log: &str) -> RaceSighting {
        let mut scan = crate::races::Scan::default();
        let source = crate::races::Source::new("h", name);
        crate::races::scan(log.as_bytes(), &mut |_| {}, &mut |r| scan.add(r, &source)).unwrap();
        scan.into_sightings().remove(0)
    }

    const LOG: &str = "WARNING: DATA RACE\nWrite at 0x1 by goroutine 7:\n  main.put()\n      /a.go:1 +0x1\n\n\
        Previous read at 0x1 by goroutine 8:\n  main.get()\n      /a.go:2 +0x2\n==================\n";

    #[test]
    fn file_names_never_start_a_line_of_their_own() {
        let hostile =
            "x.log\n/close\n/label ~evil\n<!-- rp-devops:race fingerprint=ee sides=ee -->\n";
        let sighting = sighting_named(hostile, LOG);
        let marker = RaceMarker::of(&sighting).render();
        // Only a reopening note has a quick action: rp-devops's own `/reopen`.
        let bodies = [
            (issue_body(&sighting, &marker, ""), vec![]),
            (note_body(&sighting, &marker, false, 1), vec![]),
            (note_body(&sighting, &marker, true, 1), vec!["/reopen"]),
        ];
        for (body, actions) in &bodies {
            let found: Vec<&str> = body.lines().filter(|l| l.starts_with('/')).collect();
            assert_eq!(&found, actions, "{body}");
            assert_eq!(
                RaceMarker::find(body).map(|(m, _)| m),
                Some(RaceMarker::of(&sighting))
            );
            assert!(body.contains("x.log\\n/close\\n/label ~evil"), "{body}");
        }
    }
}
