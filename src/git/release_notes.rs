//! Release notes for a library tag: the commits since the previous release
//! as a Markdown list, one line per change with its short id linked.
//!
//! - Merge commits of GitLab merge requests (the default message ends in
//!   `See merge request group/project!N`) are collapsed: one line with the
//!   MR's title and `!N`, and the commits the MR brought in are not listed
//!   again. Other merge commits are left out and the commits they brought
//!   in are listed.
//! - When most lines follow Conventional Commits (`type(scope)!: subject`),
//!   they are grouped: breaking changes first, then features, fixes and
//!   everything else. Otherwise the list is in plain history order, newest
//!   first.
//!
//! Pure: commits in, text out, no I/O; the order of the input does not
//! matter (the history is walked from the tagged commit by parent ids).
//! Commit text is outside text: it is put on one line, cut to a bounded
//! length, and cannot open HTML (`<` is written as `&lt;`), so a crafted
//! title cannot hide or restyle the rest of the notes.

use std::collections::{HashMap, HashSet};

use regex::Regex;

use super::version::{Bump, CommitClassifier};

/// At most this many lines are listed; the rest are counted.
const MAX_ENTRIES: usize = 500;
/// A title longer than this is cut (in characters).
const MAX_TITLE: usize = 200;

/// A commit as the notes need it (GitLab's commit fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteCommit {
    pub id: String,
    pub short_id: String,
    pub title: String,
    /// The full message (title included).
    pub message: String,
    pub parent_ids: Vec<String>,
    pub web_url: Option<String>,
}

/// What the notes are about.
#[derive(Debug, Clone, Copy)]
pub struct NotesInput<'a> {
    /// The tagged commit's id: the history is walked back from it.
    pub head: &'a str,
    /// The previous release tag, or `None` for the first release.
    pub previous: Option<&'a str>,
    /// The commits after `previous` up to `head`, in any order.
    pub commits: &'a [NoteCommit],
    /// Older commits exist that were not read (a first release of a long
    /// history is listed back to a bound, not to the root).
    pub older_not_read: bool,
}

/// The rendered notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseNotes {
    pub markdown: String,
    /// Lines listed (an MR's line counts once).
    pub entries: usize,
    /// Commits the notes cover.
    pub commits: usize,
}

/// Where a line goes when the notes are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Breaking,
    Features,
    Fixes,
    Other,
}

impl Group {
    fn heading(self) -> &'static str {
        match self {
            Group::Breaking => "Breaking changes",
            Group::Features => "Features",
            Group::Fixes => "Fixes",
            Group::Other => "Other changes",
        }
    }
}

/// One line of the notes.
#[derive(Debug)]
struct Entry<'a> {
    commit: &'a NoteCommit,
    /// The commit's title, or the MR's title for a collapsed merge.
    title: String,
    merge_request: Option<u64>,
    group: Group,
    conventional: bool,
}

/// The rules, compiled once.
struct Rules {
    conventional: Regex,
    merge_request: Regex,
    classifier: CommitClassifier,
}

impl Rules {
    fn new() -> Self {
        // Constant patterns: a failure to compile is a bug the unit tests
        // catch, not something outside input can cause.
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("bad built-in regex {p}: {e}"));
        Self {
            conventional: re(r"^(?P<type>[A-Za-z]+)(?:\([^()\r\n]*\))?(?P<bang>!)?: +\S"),
            merge_request: re(r"^See merge request (?:[\w.-]+(?:/[\w.-]+)*)?!(?P<iid>\d{1,12})$"),
            classifier: CommitClassifier::new(),
        }
    }

    /// A GitLab MR merge: its title (the paragraph after the subject) and iid.
    fn merge_request<'m>(&self, commit: &'m NoteCommit) -> Option<(&'m str, u64)> {
        if commit.parent_ids.len() < 2 {
            return None;
        }
        let mut lines = commit.message.lines().map(str::trim);
        let iid = lines
            .clone()
            .rev()
            .find(|l| !l.is_empty())
            .and_then(|last| self.merge_request.captures(last))
            .and_then(|c| c["iid"].parse().ok())?;
        lines.next(); // "Merge branch 'x' into 'y'"
        let title = lines
            .find(|l| !l.is_empty())
            .filter(|l| !self.merge_request.is_match(l))
            .unwrap_or(commit.title.as_str());
        Some((title, iid))
    }

    /// Group and whether the subject is a Conventional Commit. Breaking if
    /// the subject says `!` or any of `messages` asks for a major version
    /// (the same rule `--bump auto` applies).
    fn classify<'m>(
        &self,
        subject: &str,
        mut messages: impl Iterator<Item = &'m str>,
    ) -> (Group, bool) {
        let captures = self.conventional.captures(subject);
        let breaking = captures.as_ref().is_some_and(|c| c.name("bang").is_some())
            || messages.any(|m| self.classifier.classify(m) == Bump::Major);
        let kind = captures.map(|c| c["type"].to_ascii_lowercase());
        let group = match kind.as_deref() {
            _ if breaking => Group::Breaking,
            Some("feat") => Group::Features,
            Some("fix") => Group::Fixes,
            _ => Group::Other,
        };
        (group, kind.is_some())
    }
}

/// The notes for `input`.
pub fn render(input: &NotesInput<'_>) -> ReleaseNotes {
    let rules = Rules::new();
    let entries = collapse(input, &rules);
    let mut out = match input.previous {
        Some(previous) => format!("Changes since {}:\n", one_line(previous)),
        None => "Changes in this first release:\n".to_owned(),
    };
    if entries.is_empty() {
        out = match input.previous {
            Some(previous) => format!("No changes since {}.\n", one_line(previous)),
            None => "No changes listed.\n".to_owned(),
        };
    }
    let conventional = entries.iter().filter(|e| e.conventional).count();
    let grouped = conventional > 0 && conventional * 2 >= entries.len();
    let listed = entries.len().min(MAX_ENTRIES);
    let shown = &entries[..listed];
    if grouped {
        let mut groups: Vec<Group> = shown.iter().map(|e| e.group).collect();
        groups.sort();
        groups.dedup();
        for group in groups {
            out.push_str(&format!("\n### {}\n\n", group.heading()));
            for entry in shown.iter().filter(|e| e.group == group) {
                out.push_str(&line(entry));
            }
        }
    } else if !shown.is_empty() {
        out.push('\n');
        for entry in shown {
            out.push_str(&line(entry));
        }
    }
    if entries.len() > listed {
        out.push_str(&format!(
            "\n…and {} more changes not listed here.\n",
            entries.len() - listed
        ));
    }
    if input.older_not_read {
        out.push_str("\nOlder commits are not listed.\n");
    }
    ReleaseNotes {
        markdown: out,
        entries: entries.len(),
        commits: input.commits.len(),
    }
}

/// Notes for when the commits cannot be read: the range of commits, which
/// GitLab renders as a link to its comparison view (`SHA...SHA` is a GitLab
/// Markdown reference). `from` and `head` are commit ids.
pub fn range_only(previous: Option<&str>, from: Option<&str>, head: &str) -> ReleaseNotes {
    let markdown = match (previous, from) {
        (Some(previous), Some(from)) => {
            format!("Changes since {}: {from}...{head}\n", one_line(previous))
        }
        (Some(previous), None) => format!("Changes since {}.\n", one_line(previous)),
        (None, _) => format!("First release, at {head}.\n"),
    };
    ReleaseNotes {
        markdown,
        entries: 0,
        commits: 0,
    }
}

/// How deep merges of merges are followed before their commits are simply
/// listed in input order.
const MAX_MERGE_DEPTH: usize = 32;

/// The lines, newest first: the history from `head` by first parents; an
/// MR merge becomes one line standing for everything it brought in; another
/// merge's side is listed right after it, walked the same way. Commits not
/// reachable from `head` (which a well-formed input does not have) come
/// last, in input order.
fn collapse<'a>(input: &NotesInput<'a>, rules: &Rules) -> Vec<Entry<'a>> {
    let mut walk = Walk {
        by_id: input.commits.iter().map(|c| (c.id.as_str(), c)).collect(),
        rules,
        seen: HashSet::new(),
        entries: Vec::new(),
    };
    walk.chain(input.head, None, 0);
    for commit in input.commits {
        walk.chain(&commit.id, None, MAX_MERGE_DEPTH);
    }
    walk.entries
}

struct Walk<'a, 'r> {
    by_id: HashMap<&'a str, &'a NoteCommit>,
    rules: &'r Rules,
    seen: HashSet<&'a str>,
    entries: Vec<Entry<'a>>,
}

impl<'a> Walk<'a, '_> {
    /// Follow first parents from `start` while the commits are listed,
    /// unseen and (for a merge's side) `within` that side.
    fn chain(&mut self, start: &str, within: Option<&HashSet<&'a str>>, depth: usize) {
        let mut next = self.by_id.get(start).copied();
        while let Some(commit) = next.take() {
            if within.is_some_and(|side| !side.contains(commit.id.as_str()))
                || !self.seen.insert(commit.id.as_str())
            {
                break;
            }
            let parents: Vec<&str> = commit.parent_ids.iter().map(String::as_str).collect();
            if parents.len() < 2 {
                let (group, conventional) = self
                    .rules
                    .classify(&commit.title, std::iter::once(commit.message.as_str()));
                self.entries.push(Entry {
                    commit,
                    title: one_line(&commit.title),
                    merge_request: None,
                    group,
                    conventional,
                });
            } else {
                let side = side_of_merge(&self.by_id, &parents);
                if let Some((title, iid)) = self.rules.merge_request(commit) {
                    let messages = side.iter().map(|id| self.by_id[id].message.as_str());
                    let (group, conventional) = self.rules.classify(
                        title,
                        std::iter::once(commit.message.as_str()).chain(messages),
                    );
                    self.entries.push(Entry {
                        commit,
                        title: one_line(title),
                        merge_request: Some(iid),
                        group,
                        conventional,
                    });
                    self.seen.extend(side);
                } else if depth < MAX_MERGE_DEPTH {
                    for parent in &parents[1..] {
                        self.chain(parent, Some(&side), depth + 1);
                    }
                }
            }
            next = parents.first().and_then(|p| self.by_id.get(p).copied());
        }
    }
}

/// The commits a merge brought in: reachable from its other parents and
/// not from its first parent, within the listed commits.
fn side_of_merge<'a>(
    by_id: &HashMap<&'a str, &'a NoteCommit>,
    parents: &[&str],
) -> HashSet<&'a str> {
    let Some((first, others)) = parents.split_first() else {
        return HashSet::new();
    };
    let mainline = reachable(by_id, &[first]);
    reachable(by_id, others)
        .into_iter()
        .filter(|id| !mainline.contains(id))
        .collect()
}

/// Every listed commit reachable from `starts` (themselves included).
fn reachable<'a>(by_id: &HashMap<&'a str, &'a NoteCommit>, starts: &[&str]) -> HashSet<&'a str> {
    let mut found = HashSet::new();
    let mut todo: Vec<&str> = starts.to_vec();
    while let Some(id) = todo.pop() {
        let Some(&commit) = by_id.get(id) else {
            continue;
        };
        if found.insert(commit.id.as_str()) {
            todo.extend(commit.parent_ids.iter().map(String::as_str));
        }
    }
    found
}

/// `- [abc12345](URL) Title (!12)`
fn line(entry: &Entry<'_>) -> String {
    let hex = |text: &str, len: usize| {
        let prefix: String = text.chars().take(len).collect();
        (!prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_hexdigit())).then_some(prefix)
    };
    let short = hex(&entry.commit.short_id, 12)
        .or_else(|| hex(&entry.commit.id, 8))
        .unwrap_or_else(|| "commit".to_owned());
    let id = match entry.commit.web_url.as_deref().filter(|u| safe_url(u)) {
        Some(url) => format!("[{short}]({url})"),
        None => short,
    };
    match entry.merge_request {
        Some(iid) => format!("- {id} {} (!{iid})\n", entry.title),
        None => format!("- {id} {}\n", entry.title),
    }
}

/// A link target that cannot break out of `(...)`.
fn safe_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '(' | ')' | '<' | '>'))
}

/// Outside text as one bounded line that cannot open HTML (`<!--` would
/// hide the rest of the notes, `<details>` would fold it).
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .enumerate()
    {
        if count == MAX_TITLE {
            out.push('…');
            break;
        }
        match c {
            '<' => out.push_str("&lt;"),
            c => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linear history, oldest first; ids are `c1`, `c2`, … (hex-like
    /// prefixes are made from the index).
    fn commit(n: usize, message: &str, parents: &[usize]) -> NoteCommit {
        NoteCommit {
            id: format!("{n:040x}"),
            short_id: format!("{n:08x}"),
            title: message.lines().next().unwrap_or("").to_owned(),
            message: message.to_owned(),
            parent_ids: parents.iter().map(|p| format!("{p:040x}")).collect(),
            web_url: Some(format!("https://gitlab.example.com/g/p/-/commit/{n:040x}")),
        }
    }

    fn linear(messages: &[&str]) -> Vec<NoteCommit> {
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let parents: Vec<usize> = (1..=i).rev().take(1).collect();
                commit(i + 1, m, &parents)
            })
            .collect()
    }

    fn notes(commits: &[NoteCommit], head: usize, previous: Option<&str>) -> ReleaseNotes {
        let head = format!("{head:040x}");
        render(&NotesInput {
            head: &head,
            previous,
            commits,
            older_not_read: false,
        })
    }

    fn list_lines(markdown: &str) -> Vec<&str> {
        markdown.lines().filter(|l| l.starts_with("- ")).collect()
    }

    #[test]
    fn plain_history_is_one_line_per_commit_newest_first_with_linked_ids() {
        let commits = linear(&["Add the parser", "Fix a crash\n\nDetails.", "Update docs"]);
        let n = notes(&commits, 3, Some("v1.4.2"));
        assert_eq!(
            n.markdown,
            "Changes since v1.4.2:\n\n\
             - [00000003](https://gitlab.example.com/g/p/-/commit/0000000000000000000000000000000000000003) Update docs\n\
             - [00000002](https://gitlab.example.com/g/p/-/commit/0000000000000000000000000000000000000002) Fix a crash\n\
             - [00000001](https://gitlab.example.com/g/p/-/commit/0000000000000000000000000000000000000001) Add the parser\n"
        );
        assert_eq!((n.entries, n.commits), (3, 3));
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut commits = linear(&["one", "two", "three"]);
        let newest_first = notes(&commits, 3, Some("v1"));
        commits.reverse();
        assert_eq!(notes(&commits, 3, Some("v1")), newest_first);
    }

    #[test]
    fn conventional_commits_are_grouped_breaking_first() {
        let commits = linear(&[
            "fix: off by one",
            "feat(api): a new call",
            "chore: tidy",
            "refactor: rework\n\nBREAKING CHANGE: keys renamed",
            "feat!: drop v1 calls",
            "fix(cli): quoting",
        ]);
        let n = notes(&commits, 6, Some("v2.0.0"));
        let headings: Vec<&str> = n
            .markdown
            .lines()
            .filter(|l| l.starts_with("###"))
            .collect();
        assert_eq!(
            headings,
            [
                "### Breaking changes",
                "### Features",
                "### Fixes",
                "### Other changes"
            ]
        );
        let titles: Vec<&str> = list_lines(&n.markdown)
            .iter()
            .map(|l| l.split_once(") ").map_or("", |(_, t)| t))
            .collect();
        assert_eq!(
            titles,
            [
                "feat!: drop v1 calls",
                "refactor: rework",
                "feat(api): a new call",
                "fix(cli): quoting",
                "fix: off by one",
                "chore: tidy",
            ]
        );
    }

    #[test]
    fn mostly_free_form_subjects_stay_in_plain_order() {
        let commits = linear(&["Add a thing", "fix: one", "Tweak", "Rename stuff"]);
        let n = notes(&commits, 4, Some("v1"));
        assert!(!n.markdown.contains("###"), "{}", n.markdown);
        assert_eq!(list_lines(&n.markdown).len(), 4);
    }

    #[test]
    fn an_mr_merge_is_one_line_with_its_title_and_iid() {
        // 1 ← 2 (main) ← 5 merge of 3 ← 4 (the MR branch, forked at 1)
        let commits = [
            commit(1, "base", &[]),
            commit(2, "fix: on main meanwhile", &[1]),
            commit(3, "wip: start the cache", &[1]),
            commit(4, "feat: finish the cache", &[3]),
            commit(
                5,
                "Merge branch 'cache' into 'main'\n\nfeat: a response cache\n\nCloses #12\n\nSee merge request restorepoint/lib!42",
                &[2, 4],
            ),
        ];
        let n = notes(&commits[1..], 5, Some("v1.0.0"));
        let lines = list_lines(&n.markdown);
        assert_eq!(lines.len(), 2, "{}", n.markdown);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("- [00000005](")
                    && l.ends_with(") feat: a response cache (!42)")),
            "{}",
            n.markdown
        );
        assert!(!n.markdown.contains("finish the cache"), "{}", n.markdown);
        assert!(n.markdown.contains("fix: on main meanwhile"));
        assert_eq!(n.commits, 4);
    }

    #[test]
    fn a_breaking_commit_inside_an_mr_makes_the_mr_breaking() {
        let commits = [
            commit(1, "base", &[]),
            commit(2, "refactor!: drop the old API", &[1]),
            commit(
                3,
                "Merge branch 'x' into 'main'\n\nfeat: new API\n\nSee merge request !7",
                &[1, 2],
            ),
        ];
        let n = notes(&commits[1..], 3, Some("v1"));
        assert!(
            n.markdown.contains("### Breaking changes\n\n- [00000003]"),
            "{}",
            n.markdown
        );
    }

    #[test]
    fn a_merge_that_is_not_an_mr_is_left_out_and_its_side_is_listed() {
        let commits = [
            commit(1, "base", &[]),
            commit(2, "local work", &[1]),
            commit(3, "upstream work", &[1]),
            commit(4, "Merge branch 'main' of https://x/y", &[2, 3]),
        ];
        let n = notes(&commits[1..], 4, Some("v1"));
        let lines = list_lines(&n.markdown);
        assert_eq!(lines.len(), 2, "{}", n.markdown);
        assert!(lines[0].ends_with("upstream work") && lines[1].ends_with("local work"));
    }

    #[test]
    fn first_release_empty_and_cut_histories() {
        let commits = linear(&["initial import"]);
        let n = notes(&commits, 1, None);
        assert!(
            n.markdown
                .starts_with("Changes in this first release:\n\n- [")
        );
        assert_eq!(
            notes(&[], 1, Some("v1.0.0")).markdown,
            "No changes since v1.0.0.\n"
        );
        let head = format!("{:040x}", 1);
        let cut = render(&NotesInput {
            head: &head,
            previous: None,
            commits: &commits,
            older_not_read: true,
        });
        assert!(cut.markdown.ends_with("\nOlder commits are not listed.\n"));
    }

    #[test]
    fn without_the_commits_the_notes_name_the_range() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        assert_eq!(
            range_only(Some("v1.2.0"), Some(&a), &b).markdown,
            format!("Changes since v1.2.0: {a}...{b}\n")
        );
        assert_eq!(
            range_only(None, None, &b).markdown,
            format!("First release, at {b}.\n")
        );
    }

    #[test]
    fn long_histories_are_bounded() {
        let messages: Vec<String> = (0..MAX_ENTRIES + 20)
            .map(|i| format!("change {i}"))
            .collect();
        let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
        let commits = linear(&refs);
        let n = notes(&commits, commits.len(), Some("v1"));
        assert_eq!(list_lines(&n.markdown).len(), MAX_ENTRIES);
        assert!(n.markdown.contains("…and 20 more changes not listed here."));
    }

    #[test]
    fn hostile_titles_stay_on_their_line_and_open_no_html() {
        let mut evil = commit(1, "x", &[]);
        evil.title = "<!-- hide\tthe rest\u{7}".to_owned() + &"a".repeat(500);
        evil.web_url = Some("https://x/y) [click](https://evil".to_owned());
        let n = notes(&[evil], 1, Some("v1"));
        let line = list_lines(&n.markdown)[0];
        assert!(
            line.starts_with("- 00000001 &lt;!-- hide the rest"),
            "{line}"
        );
        assert!(!n.markdown.contains("<!--") && !n.markdown.contains("evil"));
        assert!(line.chars().count() < MAX_TITLE + 40, "{}", line.len());
        assert_eq!(n.markdown.lines().count(), 3);
    }
}
