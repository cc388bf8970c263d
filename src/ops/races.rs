//! Filing races (SPEC §4): one GitLab issue per distinct race, one note per
//! run when it shows up again in a sighting not noted before, a closed issue
//! reopened as a regression, at most `max_new_issues` new issues per run,
//! and for each new issue the commits that last changed its accesses' lines.
//!
//! Written once for live runs and dry runs: each write goes through the
//! client, and a client in dry-run mode answers [`Written::Planned`], which
//! becomes a `would-…` [`Action`]. The rules (markers, matching, bodies,
//! source paths) are in [`crate::races::issue`] and [`crate::races::blame`];
//! this module is the procedure around them.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::gitlab::{FileContent, GitLab, Issue, NewIssue, Written};
use crate::races::blame::{
    self, BlameOutcome, CommitLine, LastChanged, Mapping, SourceMap, render_last_changed,
};
use crate::races::issue::{
    FiledIssue, MarkerUpdate, NoteMarker, RaceLabels, RaceMarker, duplicate_note, earliest_issue,
    find_issue, issue_body, marked_description, note_body, noted_sightings,
};
use crate::races::{AccessSite, Fingerprint, RaceSighting, Runtime, SightingId};

/// New issues one run creates when nothing else is configured.
pub const DEFAULT_MAX_NEW_ISSUES: usize = 20;

/// What to file, and where.
#[derive(Debug, Clone)]
pub struct FileRacesRequest {
    /// GitLab project ID or full path.
    pub project: String,
    pub labels: RaceLabels,
    /// Reopen a closed issue whose race shows up again.
    pub reopen: bool,
    /// New issues this run may create; further new races are reported as
    /// [`Action::NotFiled`]. Races with an issue are noted whatever the cap.
    pub max_new_issues: usize,
    /// Name the commits behind each new race's accesses; `None`: don't.
    pub blame: Option<BlameRequest>,
    /// One per distinct race, in the order they are to be filed and listed.
    pub sightings: Vec<RaceSighting>,
}

/// How frame paths are found in the repository, for blame.
#[derive(Debug, Clone, Default)]
pub struct BlameRequest {
    /// Build directories stripped from frame paths (besides a GitLab
    /// runner's `…/builds/…/GROUP/PROJECT/` and the Go module path).
    pub source_prefixes: Vec<String>,
}

/// What was done about one race (SPEC §4's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Created,
    Commented,
    Reopened,
    /// Every sighting of this run was noted on the issue before.
    AlreadyNoted,
    /// A new race over the run's cap of new issues: no issue yet.
    NotFiled,
    WouldCreate,
    WouldComment,
    WouldReopen,
}

impl Action {
    /// The word users read, as in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Commented => "commented",
            Action::Reopened => "reopened",
            Action::AlreadyNoted => "already-noted",
            Action::NotFiled => "not-filed",
            Action::WouldCreate => "would-create",
            Action::WouldComment => "would-comment",
            Action::WouldReopen => "would-reopen",
        }
    }
}

/// A race's issue, as shown to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueRef {
    pub iid: u64,
    pub web_url: String,
}

impl From<&Issue> for IssueRef {
    fn from(issue: &Issue) -> Self {
        Self {
            iid: issue.iid,
            web_url: issue.web_url.clone(),
        }
    }
}

/// One race and what was done about it.
#[derive(Debug, Clone, Serialize)]
pub struct FiledRace {
    pub fingerprint: Fingerprint,
    pub title: String,
    pub count: u64,
    pub sources: Vec<String>,
    /// Sources seen but not listed (a run lists at most 100 per race).
    #[serde(skip_serializing_if = "is_zero")]
    pub more_sources: u64,
    pub action: Action,
    /// The issue it was filed on; `None` for a race that would be created or
    /// was not filed.
    pub issue: Option<IssueRef>,
    /// The report text the issue or note shows was not kept (the run's
    /// budget for report texts was spent): the issue or note says so.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub report_dropped: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Something worth a warning that did not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// No blame for this run: the project (its default branch) could not be read.
    BlameUnavailable { reason: String },
    /// Blame of one line failed; the issue was filed without it.
    BlameFailed {
        path: String,
        line: u32,
        reason: String,
    },
    /// `go.mod` could not be read; Go frames were placed without it.
    GoModUnreadable { reason: String },
}

/// Every race of the run and what was done, plus warnings.
#[derive(Debug, Clone, Default)]
pub struct FileRacesOutcome {
    pub races: Vec<FiledRace>,
    pub notices: Vec<Notice>,
}

impl FileRacesOutcome {
    /// New races not filed because of the cap.
    pub fn not_filed(&self) -> usize {
        self.races
            .iter()
            .filter(|r| r.action == Action::NotFiled)
            .count()
    }
}

impl FiledIssue for Issue {
    fn iid(&self) -> u64 {
        self.iid
    }

    fn title(&self) -> &str {
        &self.title
    }

    fn description(&self) -> &str {
        Issue::description(self)
    }
}

/// Create, comment on or reopen the issue of each race, in the request's
/// order. Existing race issues are found with one paginated listing by the
/// first label; the notes of an issue are read (once) only for a race that
/// has one, to skip sightings it has recorded already. Issues this run
/// created are checked against a second listing for another run that filed
/// the same race at the same time.
pub fn file_races(client: &GitLab, request: &FileRacesRequest) -> Result<FileRacesOutcome> {
    let project = request.project.as_str();
    let listing = &request.labels.as_slice()[..1];
    let existing = client
        .issues_with_labels(project, listing)
        .with_context(|| format!("listing race issues of project {project}"))?;
    let run_id = format!("{:016x}", fastrand::u64(..));
    let mut blamer = request
        .blame
        .as_ref()
        .map(|b| Blamer::new(client, project, &b.source_prefixes));

    let mut outcome = FileRacesOutcome::default();
    // Issues this run created: (index in `races`, iid).
    let mut created: Vec<(usize, u64)> = Vec::new();
    let mut new_issues = 0;
    for sighting in &request.sightings {
        let ours = RaceMarker::of(sighting);
        let (action, issue, shown) = match find_issue(&existing, &ours, &sighting.title) {
            None if new_issues >= request.max_new_issues => (Action::NotFiled, None, None),
            None => {
                new_issues += 1;
                let last_changed = blamer.as_mut().map(|b| b.last_changed(sighting));
                let (action, issue) = create(client, request, sighting, &ours, last_changed)?;
                (action, issue, Some(&sighting.first))
            }
            Some((issue, update)) => {
                let action = note(client, request, sighting, &ours, issue, update, &run_id)?;
                (action, Some(IssueRef::from(issue)), Some(sighting.newest()))
            }
        };
        if let (Action::Created, Some(issue)) = (action, &issue) {
            created.push((outcome.races.len(), issue.iid));
        }
        outcome.races.push(FiledRace {
            fingerprint: sighting.fingerprint.clone(),
            title: sighting.title.clone(),
            count: sighting.count,
            sources: sighting.sources.iter().map(|s| s.to_string()).collect(),
            more_sources: sighting.more_sources,
            action,
            issue,
            report_dropped: action != Action::AlreadyNoted
                && shown.is_some_and(|r| r.text.is_none()),
        });
    }
    if let Some(blamer) = blamer {
        outcome.notices.extend(blamer.notices);
    }
    if !created.is_empty() {
        resolve_concurrent_creations(client, request, &run_id, &created, &mut outcome.races)?;
    }
    Ok(outcome)
}

fn create(
    client: &GitLab,
    request: &FileRacesRequest,
    sighting: &RaceSighting,
    ours: &RaceMarker,
    last_changed: Option<Vec<LastChanged>>,
) -> Result<(Action, Option<IssueRef>)> {
    let marker = ours.render();
    let section = last_changed
        .as_deref()
        .map(render_last_changed)
        .unwrap_or_default();
    let new = NewIssue {
        title: sighting.title.clone(),
        description: issue_body(sighting, &marker, &section),
        labels: request.labels.as_slice().to_vec(),
    };
    // After a lost answer, only an issue whose own marker is exactly ours
    // is this one (never one quoting it in a report).
    let written = client
        .create_issue_recognised(&request.project, &new, |existing| {
            RaceMarker::find(existing.description()).is_some_and(|(m, _)| m == *ours)
        })
        .with_context(|| format!("creating the issue for {:?}", sighting.title))?;
    Ok(match written {
        Written::Sent(issue) => (Action::Created, Some(IssueRef::from(&issue))),
        Written::Planned => (Action::WouldCreate, None),
    })
}

/// This run's sightings of a race that `issue` has not recorded yet (its
/// description's marker and rp-devops's notes, read once), and how many
/// sightings they stand for (ids a run did not keep count as new).
fn unnoted(
    client: &GitLab,
    project: &str,
    sighting: &RaceSighting,
    issue: &Issue,
) -> Result<(Vec<SightingId>, u64)> {
    let notes = client
        .issue_notes(project, issue.iid)
        .with_context(|| format!("reading the notes of issue #{}", issue.iid))?;
    let noted: HashSet<SightingId> = noted_sightings(
        issue.description(),
        notes.iter().filter(|n| !n.system).map(|n| n.body.as_str()),
    );
    let mut seen = HashSet::new();
    let new: Vec<SightingId> = sighting
        .sightings
        .iter()
        .filter(|id| !noted.contains(id) && seen.insert(*id))
        .collect();
    if new.is_empty() {
        // Every sighting kept was noted: the same logs read again.
        return Ok((new, 0));
    }
    let count = new.len() as u64 + sighting.sightings.not_kept();
    Ok((new, count))
}

/// Note the race on its existing issue, unless every sighting of this run
/// was noted before: its marker put in first when the issue lacks it
/// (adoption, or a cut-off report's issue taken over by the full race),
/// reopened by the note itself (and then explicitly) when closed and
/// reopening is on.
fn note(
    client: &GitLab,
    request: &FileRacesRequest,
    sighting: &RaceSighting,
    ours: &RaceMarker,
    issue: &Issue,
    update: MarkerUpdate,
    run_id: &str,
) -> Result<Action> {
    let project = request.project.as_str();
    if let Some(description) = marked_description(issue.description(), update, ours) {
        client
            .update_issue_description(project, issue.iid, &description)
            .with_context(|| format!("adopting issue #{}", issue.iid))?;
    }
    let (new, count) = unnoted(client, project, sighting, issue)?;
    if new.is_empty() {
        return Ok(Action::AlreadyNoted);
    }
    // The note reopens the issue with its own `/reopen` (see `note_body`),
    // so a run cut short after the note never leaves the issue reopened
    // without the note that says why. GitLab saves the note before it runs
    // the action, and skips it for a user who may not reopen: the explicit
    // reopen after the note (a no-op when the action ran) makes sure.
    let reopening = request.reopen && issue.is_closed();
    let marker = NoteMarker::new(&sighting.fingerprint, run_id, &new).render();
    let written = client
        .create_issue_note(
            project,
            issue.iid,
            &note_body(sighting, &marker, reopening, count),
            &marker,
        )
        .with_context(|| format!("adding a note to issue #{}", issue.iid))?;
    if reopening {
        client
            .reopen_issue(project, issue.iid)
            .with_context(|| format!("reopening issue #{}", issue.iid))?;
    }
    Ok(match (written.is_planned(), reopening) {
        (false, false) => Action::Commented,
        (false, true) => Action::Reopened,
        (true, false) => Action::WouldComment,
        (true, true) => Action::WouldReopen,
    })
}

/// Two runs at once (cron on several test machines fires at the same minute)
/// can both find no issue for a race and both create one. After creating,
/// list once more: if an earlier issue carries the same fingerprint, ours is
/// the duplicate: close it, pointing at the earlier one, and note this run's
/// sightings there (those it has not recorded). Whichever run created later
/// sees the earlier issue, so exactly one issue per race stays open.
fn resolve_concurrent_creations(
    client: &GitLab,
    request: &FileRacesRequest,
    run_id: &str,
    created: &[(usize, u64)],
    filed: &mut [FiledRace],
) -> Result<()> {
    let project = request.project.as_str();
    let after = client
        .issues_with_labels(project, &request.labels.as_slice()[..1])
        .with_context(|| format!("listing race issues of project {project} again"))?;
    for &(index, ours) in created {
        // `filed` holds one race per sighting, in the request's order.
        let sighting = &request.sightings[index];
        let Some(original) = earliest_issue(&after, &sighting.fingerprint).filter(|i| i.iid < ours)
        else {
            continue;
        };
        let (body, marker) = duplicate_note(original.iid);
        client
            .create_issue_note(project, ours, &body, &marker)
            .with_context(|| {
                format!("marking issue #{ours} as a duplicate of #{}", original.iid)
            })?;
        client
            .close_issue(project, ours)
            .with_context(|| format!("closing duplicate issue #{ours}"))?;
        filed[index].issue = Some(IssueRef::from(original));
        let (new, count) = unnoted(client, project, sighting, original)?;
        if new.is_empty() {
            filed[index].action = Action::AlreadyNoted;
            continue;
        }
        let marker = NoteMarker::new(&sighting.fingerprint, run_id, &new).render();
        client
            .create_issue_note(
                project,
                original.iid,
                &note_body(sighting, &marker, false, count),
                &marker,
            )
            .with_context(|| format!("adding a note to issue #{}", original.iid))?;
        filed[index].action = Action::Commented;
    }
    Ok(())
}

/// The project as blame needs it.
struct Repository {
    branch: String,
    web_url: String,
    map: SourceMap,
}

/// Blame for the new races of one run: the project is read once (its
/// default branch), `go.mod` at most once (only when a Go frame needs the
/// module path), and each access's line once (at most two reads per race).
/// Nothing here fails the run: failures become [`Notice`]s.
struct Blamer<'a> {
    client: &'a GitLab,
    project: &'a str,
    prefixes: Vec<String>,
    /// `None` until read; `Some(None)` when blame is off for this run.
    repository: Option<Option<Repository>>,
    cache: HashMap<(String, u32), BlameOutcome>,
    notices: Vec<Notice>,
}

impl<'a> Blamer<'a> {
    fn new(client: &'a GitLab, project: &'a str, prefixes: &[String]) -> Self {
        Self {
            client,
            project,
            prefixes: prefixes.to_vec(),
            repository: None,
            cache: HashMap::new(),
            notices: Vec::new(),
        }
    }

    /// Who last changed the line of each access of `sighting`.
    fn last_changed(&mut self, sighting: &RaceSighting) -> Vec<LastChanged> {
        if self.repository.is_none() {
            self.repository = Some(self.read_repository());
        }
        if !matches!(self.repository, Some(Some(_))) {
            return Vec::new();
        }
        sighting
            .sites
            .iter()
            .map(|site| {
                let (path, outcome) = self.blame_site(site, sighting.runtime);
                LastChanged {
                    site: site.clone(),
                    path,
                    outcome,
                }
            })
            .collect()
    }

    fn read_repository(&mut self) -> Option<Repository> {
        let project = match self.client.project(self.project) {
            Ok(project) => project,
            Err(err) => {
                self.notices.push(Notice::BlameUnavailable {
                    reason: format!("{err:#}"),
                });
                return None;
            }
        };
        let Some(branch) = project.default_branch.filter(|b| !b.is_empty()) else {
            self.notices.push(Notice::BlameUnavailable {
                reason: format!(
                    "project {} has no default branch (an empty repository?)",
                    project.path_with_namespace
                ),
            });
            return None;
        };
        Some(Repository {
            branch,
            web_url: project.web_url.trim_end_matches('/').to_owned(),
            map: SourceMap::new(&self.prefixes, &project.path_with_namespace),
        })
    }

    fn blame_site(
        &mut self,
        site: &AccessSite,
        runtime: Runtime,
    ) -> (Option<(String, u32)>, BlameOutcome) {
        let Some((file, line)) = site
            .location
            .as_deref()
            .and_then(|l| blame::file_and_line(l, runtime))
        else {
            return (None, BlameOutcome::NoLocation);
        };
        let mut mapping = self.map(file, &site.function, runtime);
        if mapping == Mapping::NeedsModule {
            self.read_module();
            mapping = self.map(file, &site.function, runtime);
        }
        let Mapping::Repository(path) = mapping else {
            return (None, BlameOutcome::OutsideRepository);
        };
        let key = (path, line);
        if let Some(known) = self.cache.get(&key) {
            return (Some(key), known.clone());
        }
        let outcome = self.blame_line(&key.0, line);
        self.cache.insert(key.clone(), outcome.clone());
        (Some(key), outcome)
    }

    fn map(&self, file: &str, function: &str, runtime: Runtime) -> Mapping {
        match &self.repository {
            Some(Some(repository)) => repository.map.map(file, function, runtime),
            _ => Mapping::Outside,
        }
    }

    /// Read `go.mod` at the root of the default branch, once.
    fn read_module(&mut self) {
        let Some(Some(repository)) = &mut self.repository else {
            return;
        };
        let module = match self
            .client
            .raw_file(self.project, "go.mod", &repository.branch)
        {
            Ok(FileContent::Found(text)) => blame::go_module(&text),
            Ok(FileContent::Missing(_)) => None,
            Err(err) => {
                self.notices.push(Notice::GoModUnreadable {
                    reason: format!("{err:#}"),
                });
                None
            }
        };
        repository.map.set_module(module);
    }

    fn blame_line(&mut self, path: &str, line: u32) -> BlameOutcome {
        let Some(Some(repository)) = &self.repository else {
            return BlameOutcome::Unavailable;
        };
        match self
            .client
            .blame_line(self.project, path, &repository.branch, line)
        {
            Ok(Some(ranges)) => {
                let Some(range) = ranges.into_iter().find(|r| !r.lines.is_empty()) else {
                    return BlameOutcome::NotOnBranch {
                        branch: repository.branch.clone(),
                    };
                };
                let commit = range.commit;
                let hex = !commit.id.is_empty() && commit.id.bytes().all(|b| b.is_ascii_hexdigit());
                let date = commit
                    .authored_date
                    .or(commit.committed_date)
                    .unwrap_or_default();
                BlameOutcome::Commit(CommitLine {
                    short_id: commit.id.chars().take(8).collect(),
                    url: (hex && !repository.web_url.is_empty())
                        .then(|| format!("{}/-/commit/{}", repository.web_url, commit.id)),
                    author: commit.author_name,
                    date: date.chars().take(10).collect(),
                    subject: commit.message.lines().next().unwrap_or_default().to_owned(),
                })
            }
            Ok(None) => BlameOutcome::NotOnBranch {
                branch: repository.branch.clone(),
            },
            Err(err) => {
                self.notices.push(Notice::BlameFailed {
                    path: path.to_owned(),
                    line,
                    reason: format!("{err:#}"),
                });
                BlameOutcome::Unavailable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_in_the_spec() {
        let all = [
            Action::Created,
            Action::Commented,
            Action::Reopened,
            Action::AlreadyNoted,
            Action::NotFiled,
            Action::WouldCreate,
            Action::WouldComment,
            Action::WouldReopen,
        ];
        let words: Vec<String> = all
            .iter()
            .map(|a| {
                serde_json::to_value(a)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            words,
            [
                "created",
                "commented",
                "reopened",
                "already-noted",
                "not-filed",
                "would-create",
                "would-comment",
                "would-reopen"
            ]
        );
        assert!(all.iter().zip(&words).all(|(a, w)| a.as_str() == w));
    }

    fn sightings(log: &str) -> Vec<RaceSighting> {
        let mut scan = crate::races::Scan::default();
        crate::races::scan(log.as_bytes(), &mut |_| {}, &mut |r| {
            scan.add(r, &crate::races::Source::new("box", "test.log"))
        })
        .unwrap();
        scan.into_sightings()
    }

    #[test]
    fn an_offline_dry_run_plans_one_issue_per_race() {
        let client = GitLab::offline();
        let log = "WARNING: DATA RACE\nWrite at 0x1 by goroutine 7:\n  main.put()\n      /a.go:1 +0x1\n\n\
                   Previous read at 0x1 by goroutine 8:\n  main.get()\n      /a.go:2 +0x2\n==================\n";
        let request = FileRacesRequest {
            project: crate::gitlab::PROJECT_PLACEHOLDER.to_owned(),
            labels: RaceLabels::new(["race".to_owned(), "go".to_owned()]).unwrap(),
            reopen: true,
            max_new_issues: DEFAULT_MAX_NEW_ISSUES,
            blame: Some(BlameRequest::default()),
            sightings: sightings(&log.repeat(2)),
        };
        let filed = file_races(&client, &request).unwrap().races;
        assert_eq!(filed.len(), 1);
        assert_eq!(filed[0].action, Action::WouldCreate);
        assert_eq!(filed[0].count, 2);
        assert_eq!(filed[0].issue, None);
        let plan = client.planned();
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert_eq!(
            (plan[0].method.as_str(), plan[0].path.as_str()),
            ("POST", "projects/:id/issues")
        );
        assert_eq!(
            plan[0].summary,
            "new issue \"Data race in main.put() vs main.get()\" labelled \"race,go\""
        );
    }

    #[test]
    fn new_races_over_the_cap_are_not_filed() {
        let client = GitLab::offline();
        let race = |n: u32| {
            format!(
                "WARNING: DATA RACE\nWrite at 0x1 by goroutine 7:\n  main.put{n}()\n      /a.go:1 +0x1\n\n\
                 Previous read at 0x1 by goroutine 8:\n  main.get()\n      /a.go:2 +0x2\n==================\n"
            )
        };
        let log: String = (0..5).map(race).collect();
        let request = FileRacesRequest {
            project: crate::gitlab::PROJECT_PLACEHOLDER.to_owned(),
            labels: RaceLabels::new(["race".to_owned()]).unwrap(),
            reopen: true,
            max_new_issues: 2,
            blame: None,
            sightings: sightings(&log),
        };
        let outcome = file_races(&client, &request).unwrap();
        let actions: Vec<Action> = outcome.races.iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            [
                Action::WouldCreate,
                Action::WouldCreate,
                Action::NotFiled,
                Action::NotFiled,
                Action::NotFiled
            ]
        );
        assert_eq!(outcome.not_filed(), 3);
        assert_eq!(client.planned().len(), 2);
    }
}
