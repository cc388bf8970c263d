//! How `tag-library` shows its progress and its outcome.

use anyhow::Result;

use crate::ops::tag_library::{
    Action, ReleaseOutcome as Release, SkipReason, TagEvent, TagOutcome,
};
use crate::output::Printer;

pub(super) fn show(printer: &Printer, event: TagEvent) {
    use TagEvent as E;
    match event {
        E::ReadingTags { head, remote, url } => {
            printer.detail(format!("HEAD is {head}; reading tags of {remote} ({url})"));
        }
        E::AutoBump {
            bump,
            commits: n,
            since,
        } => {
            printer.detail(format!(
                "--bump auto: {bump} from {n} commit(s) since {since}"
            ));
        }
        E::HistoryCutShort {
            read,
            since,
            shallow,
        } => printer.warn(format!(
            "--bump auto read {read} commit(s) back from HEAD without reaching {since}{}; \
             commits before that are not counted (set GIT_DEPTH: 0 in the job to see them all)",
            if shallow { " (shallow clone)" } else { "" },
        )),
        E::LocalTagCreated { tag, tagger: t } => {
            printer.detail(format!(
                "created local tag {tag} by {} <{}>",
                t.name, t.email
            ));
        }
        E::LostRace { tag } => printer.info(format!(
            "{tag} was pushed by someone else first; reading the remote's tags again"
        )),
        E::NotesRead { commits, since } => printer.detail(format!(
            "release notes: {commits} commit(s) since {}",
            since.as_deref().unwrap_or("the first commit")
        )),
        E::CommitsUnreadable { status } => printer.warn(format!(
            "GitLab answered {status} when CI_JOB_TOKEN read the repository's commits (most \
             GitLab versions do not accept the job token there): the release notes name the \
             range of commits instead of listing them; set RP_GITLAB_TOKEN to a token with \
             the `api` scope for the full notes"
        )),
    }
}

pub(super) fn finish(printer: &Printer, outcome: &TagOutcome) -> Result<()> {
    let commit = outcome.commit.to_string();
    let (tag, short, remote) = (&outcome.tag, &commit[..7], &outcome.remote);
    let previous = match &outcome.previous {
        Some(p) => format!("previous {p}"),
        None => "first release".to_owned(),
    };
    let mut text = match (outcome.action, outcome.pushed) {
        (Action::Exists, false) => {
            format!("{tag} already tags {short} ({previous}), nothing created")
        }
        (Action::Exists, true) => format!(
            "{tag} already tags {short} ({previous}), nothing created; pushed the local tag to {remote}"
        ),
        (Action::WouldCreate, _) => format!("would create {tag} ({previous}) at {short}"),
        (Action::Created, true) => {
            format!("created {tag} ({previous}) at {short}, pushed to {remote}")
        }
        (Action::Created, false) => {
            format!("created {tag} ({previous}) at {short}, not pushed (--no-push)")
        }
    };
    let release = outcome.release.as_ref();
    let url = release
        .and_then(Release::url)
        .map(|u| format!(": {u}"))
        .unwrap_or_default();
    text += &match release {
        None => String::new(),
        Some(Release::Created { .. }) => format!("\ncreated GitLab release {tag}{url}"),
        Some(Release::Exists { .. }) => format!("\nGitLab release {tag} exists{url}"),
        Some(Release::Skipped(SkipReason::TurnedOff)) => "\nno GitLab release (turned off)".into(),
        Some(Release::Skipped(SkipReason::NotPushed)) => {
            "\nno GitLab release: tag not pushed".into()
        }
        Some(Release::WouldCreate { notes }) => format!(
            "\nwould create GitLab release {tag} with these notes:\n\n{}",
            notes.markdown.trim_end()
        ),
    };
    printer.summary(text.lines().next().unwrap_or_default());
    printer.result(outcome, |out| writeln!(out, "{text}"))
}
