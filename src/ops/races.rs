//! Filing races (SPEC §4): one GitLab issue per distinct race, one note per
//! run when it shows up again, a closed issue reopened as a regression.
//!
//! Written once for live runs and dry runs: each write goes through the
//! client, and a client in dry-run mode answers [`Written::Planned`], which
//! becomes a `would-…` [`Action`]. The rules (markers, matching, bodies) are
//! in [`crate::races::issue`]; this module is the procedure around them.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::gitlab::{GitLab, Issue, NewIssue, Written};
use crate::races::issue::{
    FiledIssue, MarkerUpdate, RaceLabels, RaceMarker, duplicate_note, earliest_issue, find_issue,
    issue_body, marked_description, note_body, note_marker,
};
use crate::races::{Fingerprint, RaceSighting};

/// What to file, and where.
#[derive(Debug, Clone)]
pub struct FileRacesRequest {
    /// GitLab project ID or full path.
    pub project: String,
    pub labels: RaceLabels,
    /// Reopen a closed issue whose race shows up again.
    pub reopen: bool,
    /// One per distinct race, in the order they are to be filed and listed.
    pub sightings: Vec<RaceSighting>,
}

/// What was done about one race (SPEC §4's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Created,
    Commented,
    Reopened,
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
    pub action: Action,
    /// The issue it was filed on; `None` only for a race that would be created.
    pub issue: Option<IssueRef>,
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
/// first label. Issues this run created are checked against a second listing
/// for another run that filed the same race at the same time.
pub fn file_races(client: &GitLab, request: &FileRacesRequest) -> Result<Vec<FiledRace>> {
    let project = request.project.as_str();
    let listing = &request.labels.as_slice()[..1];
    let existing = client
        .issues_with_labels(project, listing)
        .with_context(|| format!("listing race issues of project {project}"))?;
    let run_id = format!("{:016x}", fastrand::u64(..));

    let mut filed = Vec::with_capacity(request.sightings.len());
    // Issues this run created: (index in `filed`, iid).
    let mut created: Vec<(usize, u64)> = Vec::new();
    for sighting in &request.sightings {
        let ours = RaceMarker::of(sighting);
        let (action, issue) = match find_issue(&existing, &ours, &sighting.title) {
            None => create(client, request, sighting, &ours)?,
            Some((issue, update)) => {
                let action = note(client, request, sighting, &ours, issue, update, &run_id)?;
                (action, Some(IssueRef::from(issue)))
            }
        };
        if let (Action::Created, Some(issue)) = (action, &issue) {
            created.push((filed.len(), issue.iid));
        }
        filed.push(FiledRace {
            fingerprint: sighting.fingerprint.clone(),
            title: sighting.title.clone(),
            count: sighting.count,
            sources: sighting.sources.iter().cloned().collect(),
            action,
            issue,
        });
    }
    if !created.is_empty() {
        resolve_concurrent_creations(client, request, &run_id, &created, &mut filed)?;
    }
    Ok(filed)
}

fn create(
    client: &GitLab,
    request: &FileRacesRequest,
    sighting: &RaceSighting,
    ours: &RaceMarker,
) -> Result<(Action, Option<IssueRef>)> {
    let marker = ours.render();
    let new = NewIssue {
        title: sighting.title.clone(),
        description: issue_body(sighting, &marker),
        labels: request.labels.as_slice().to_vec(),
    };
    let written = client
        .create_issue(&request.project, &new, &marker)
        .with_context(|| format!("creating the issue for {:?}", sighting.title))?;
    Ok(match written {
        Written::Sent(issue) => (Action::Created, Some(IssueRef::from(&issue))),
        Written::Planned => (Action::WouldCreate, None),
    })
}

/// Note the race on its existing issue: its marker put in first when the
/// issue lacks it (adoption, or a cut-off report's issue taken over by the
/// full race), reopened first when closed and reopening is on.
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
    if let Some(description) = marked_description(issue.description(), update, &ours.render()) {
        client
            .update_issue_description(project, issue.iid, &description)
            .with_context(|| format!("adopting issue #{}", issue.iid))?;
    }
    let reopening = request.reopen && issue.is_closed();
    if reopening {
        client
            .reopen_issue(project, issue.iid)
            .with_context(|| format!("reopening issue #{}", issue.iid))?;
    }
    let marker = note_marker(&sighting.fingerprint, run_id);
    let written = client
        .create_issue_note(
            project,
            issue.iid,
            &note_body(sighting, &marker, reopening),
            &marker,
        )
        .with_context(|| format!("adding a note to issue #{}", issue.iid))?;
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
/// sighting there. Whichever run created later sees the earlier issue, so
/// exactly one issue per race stays open.
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
        let marker = note_marker(&sighting.fingerprint, run_id);
        client
            .create_issue_note(
                project,
                original.iid,
                &note_body(sighting, &marker, false),
                &marker,
            )
            .with_context(|| format!("adding a note to issue #{}", original.iid))?;
        filed[index].action = Action::Commented;
        filed[index].issue = Some(IssueRef::from(original));
    }
    Ok(())
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
            scan.add(r, "box:test.log")
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
            sightings: sightings(&log.repeat(2)),
        };
        let filed = file_races(&client, &request).unwrap();
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
}
