//! A race's GitLab issue, as text: the labels it carries, the marker that
//! identifies it, how an existing issue is matched to a race, and the issue
//! and note bodies (SPEC §4).
//!
//! Pure functions over strings: no HTTP. Existing issues are seen through
//! [`FiledIssue`], so this module does not depend on the GitLab client.
//! Text from the logs (reports, source names) only ever lands inside a
//! fenced block or escaped HTML, never in a marker.

use std::collections::HashSet;

use crate::error::UsageError;

use super::{Fingerprint, RaceSighting};

/// The label race issues carry when none is configured.
pub const DEFAULT_LABEL: &str = "race condition";
/// Reports longer than this are cut in issue bodies (GitLab's limit is 1 MB).
const BODY_REPORT_LIMIT: usize = 256 * 1024;

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
/// `<!-- rp-devops:race fingerprint=HEX sides=HEX,HEX -->`. `sides` holds the
/// fingerprint each access would have alone, so that a report cut off after
/// one side finds the issue of the full race, and the other way round.
/// Issues filed before sides were recorded carry no `sides=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaceMarker {
    pub fingerprint: String,
    pub sides: Vec<String>,
}

const MARKER_START: &str = "<!-- rp-devops:race fingerprint=";

impl RaceMarker {
    pub fn new(fingerprint: &Fingerprint, sides: &[Fingerprint]) -> Self {
        Self {
            fingerprint: fingerprint.0.clone(),
            sides: sides.iter().map(|s| s.0.clone()).collect(),
        }
    }

    /// The marker of a run's sighting.
    pub fn of(sighting: &RaceSighting) -> Self {
        Self::new(&sighting.fingerprint, &sighting.sides)
    }

    pub fn render(&self) -> String {
        format!(
            "{MARKER_START}{} sides={} -->",
            self.fingerprint,
            self.sides.join(",")
        )
    }

    /// The marker in an issue description, and where it stands, if it has
    /// one. Only hex digits are taken from it, whatever else the text holds.
    pub fn find(description: &str) -> Option<(Self, std::ops::Range<usize>)> {
        let start = description.find(MARKER_START)?;
        let end = start + description[start..].find("-->")? + "-->".len();
        let inner = &description[start + MARKER_START.len()..end - "-->".len()];
        let mut words = inner.split_whitespace();
        let fingerprint = words.next().filter(|f| is_hex(f))?.to_owned();
        let sides = words
            .find_map(|w| w.strip_prefix("sides="))
            .map(|list| {
                list.split(',')
                    .filter(|s| is_hex(s))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some((Self { fingerprint, sides }, start..end))
    }

    /// A report with one usable side: its fingerprint is that side's.
    pub fn is_one_sided(&self) -> bool {
        self.sides.len() == 1 && self.sides[0] == self.fingerprint
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
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
pub fn marked_description(description: &str, update: MarkerUpdate, marker: &str) -> Option<String> {
    match update {
        MarkerUpdate::None => None,
        MarkerUpdate::Append => Some(format!("{}\n\n{marker}\n", description.trim_end())),
        MarkerUpdate::Replace => {
            let (_, range) = RaceMarker::find(description)?;
            let mut updated = description.to_owned();
            updated.replace_range(range, marker);
            Some(updated)
        }
    }
}

/// The marker of the note one run adds for one race, so a lost answer is
/// checked, not sent twice.
pub fn note_marker(fingerprint: &Fingerprint, run_id: &str) -> String {
    format!("<!-- rp-devops:race-note fingerprint={fingerprint} run={run_id} -->")
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
/// seen, the first report verbatim, and the marker.
pub fn issue_body(sighting: &RaceSighting, marker: &str) -> String {
    let truncated = if sighting.first.truncated {
        "\n\nThe report below was cut off in the log (truncated)."
    } else {
        ""
    };
    format!(
        "The race detector reported this data race in `{}`.\n\n\
         Seen **{}** time{} in this run, in:\n\n{}{truncated}\n\n{}\n{marker}\n",
        sighting.first_source,
        sighting.count,
        if sighting.count == 1 { "" } else { "s" },
        source_list(sighting),
        fenced(&sighting.first.text),
    )
}

/// The note on an existing issue: how often and where the race was seen in
/// this run, the newest report folded away, a regression line when reopening.
pub fn note_body(sighting: &RaceSighting, marker: &str, reopening: bool) -> String {
    let regression = if reopening {
        "**Regression:** this race was fixed (the issue was closed) and shows up again; reopening.\n\n"
    } else {
        ""
    };
    format!(
        "{regression}Seen again: **{}** time{} in this run, in:\n\n{}\n\n\
         <details><summary>Newest report (from <code>{}</code>)</summary>\n\n{}\n</details>\n\n{marker}\n",
        sighting.count,
        if sighting.count == 1 { "" } else { "s" },
        source_list(sighting),
        sighting.newest_source.replace('<', "&lt;"),
        fenced(&sighting.newest.text),
    )
}

/// A fence longer than any run of backticks inside `text`.
fn fence_for(text: &str) -> String {
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
    "`".repeat((longest + 1).max(3))
}

fn fenced(text: &str) -> String {
    let (text, cut) = if text.len() > BODY_REPORT_LIMIT {
        let mut end = BODY_REPORT_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        (&text[..end], true)
    } else {
        (text, false)
    };
    let fence = fence_for(text);
    let mut out = format!("{fence}text\n{text}\n{fence}\n");
    if cut {
        out.push_str(&format!(
            "\n_(report cut at {} KiB)_\n",
            BODY_REPORT_LIMIT / 1024
        ));
    }
    out
}

fn source_list(sighting: &RaceSighting) -> String {
    const SHOWN: usize = 20;
    let mut list: Vec<String> = sighting
        .sources
        .iter()
        .take(SHOWN)
        .map(|s| format!("- `{s}`"))
        .collect();
    if sighting.sources.len() > SHOWN {
        list.push(format!("- … and {} more", sighting.sources.len() - SHOWN));
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
            RaceMarker::find("x <!-- rp-devops:race fingerprint=beef --> y").unwrap();
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
        // Only hex survives in sides, whatever was written there.
        let (m, _) =
            RaceMarker::find("<!-- rp-devops:race fingerprint=ab sides=aa,/close,bb -->").unwrap();
        assert_eq!(m.sides, ["aa", "bb"]);
    }

    #[test]
    fn replacing_a_one_sided_marker_keeps_the_rest() {
        let old = cut().render();
        let new = full().render();
        let description = format!("report\n\n{old}\n");
        let updated = marked_description(&description, MarkerUpdate::Replace, &new).unwrap();
        assert_eq!(updated, format!("report\n\n{new}\n"));
        assert_eq!(
            marked_description(&description, MarkerUpdate::None, &new),
            None
        );
    }

    #[test]
    fn adopting_appends_the_marker_after_the_text() {
        let marker = full().render();
        let updated =
            marked_description("Found by hand.\n\n", MarkerUpdate::Append, &marker).unwrap();
        assert_eq!(updated, format!("Found by hand.\n\n{marker}\n"));
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
                "another race's <!-- rp-devops:race fingerprint=ee -->",
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
}
