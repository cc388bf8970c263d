//! Tag a Go library's HEAD with the next semantic version, push that one
//! tag (SPEC §5), and give the tag its GitLab release with notes (issue 14).
//!
//! Safe in any CI clone (shallow, no tags fetched), safe to re-run (HEAD
//! already tagged → nothing to do), and safe when two pipelines race (the
//! loser re-reads the remote and takes the next version). Git work goes
//! through [`crate::git`] (a repository in dry-run mode plans the tag and the
//! push instead of making them); version rules are pure functions in
//! [`crate::git::version`].
//!
//! The release comes after the tag is on the remote: the notes are the
//! commits since the previous tag, read from GitLab (the compare API, or the
//! commits API for a first release), so a depth-1 clone is enough; the
//! renderer is pure ([`crate::git::release_notes`]). A tag whose release
//! failed stays; the next run finds it on HEAD and creates the release then.
//!
//! No clap, no `Settings`, no printer: credentials and the tagger's identity
//! come resolved in the [`TagRequest`], progress goes out as [`TagEvent`]s,
//! and the result is a [`TagOutcome`]. Errors say what is wrong in git's and
//! Go's terms; the command layer adds the flags.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use git2::Oid;
use semver::Version;
use serde::Serialize;

use crate::error::{HintedError, UsageError};
use crate::git::release_notes::{self, NoteCommit, NotesInput, ReleaseNotes};
use crate::git::version::{self, Bump, CommitClassifier, ReleaseTag};
use crate::git::{GitAuth, GitRepo, HeadCommit, Identity, PushOutcome, RemoteTarget, TagRef};
use crate::gitlab::{self, GitLab, ReleaseWrite};
use crate::planned::Written;

/// How many times a lost race is retried with the next version.
const MAX_RACE_RETRIES: usize = 3;
/// `Bump::Auto` reads at most this many commits back from HEAD.
const HISTORY_LIMIT: usize = 10_000;
/// The notes of a first release list at most this many commits.
const FIRST_RELEASE_COMMITS: usize = 1_000;

/// What to tag and how.
#[derive(Debug)]
pub struct TagRequest {
    /// The remote to read tags from and push the tag to.
    pub remote: String,
    /// Tags are `PREFIX<semver>`: `v`, or `tools/v` for a module in `tools/`.
    pub prefix: String,
    /// The first version, when there is no release tag yet.
    pub initial: Version,
    pub bump: Bump,
    /// Push the new tag (else it is created locally only).
    pub push: bool,
    /// Credentials for http(s) remotes, resolved by the caller.
    pub auth: GitAuth,
    /// Where the tagger's identity may come from besides git config.
    pub tagger: TaggerSources,
    /// Whether the tag gets a GitLab release.
    pub release: ReleasePolicy,
}

/// Whether and where the tag gets its GitLab release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleasePolicy {
    /// No GitLab project is known: releases are not part of the run.
    NotConfigured,
    /// Turned off by the caller.
    Off,
    /// Create the release in this project (ID or path) with the GitLab
    /// client given to [`tag_library`].
    Create { project: String },
}

/// A name and an email that may each be missing.
#[derive(Debug, Clone, Default)]
pub struct PartialIdentity {
    pub name: Option<String>,
    pub email: Option<String>,
}

impl PartialIdentity {
    fn as_pair(&self) -> (Option<&str>, Option<&str>) {
        (self.name.as_deref(), self.email.as_deref())
    }
}

/// The tagger is the committer identity, else git config `user.*`, else the
/// CI user, else the bot; name and email are each taken from the first
/// source that has them, as git does.
#[derive(Debug, Clone, Default)]
pub struct TaggerSources {
    /// `GIT_COMMITTER_NAME` / `GIT_COMMITTER_EMAIL`.
    pub committer: PartialIdentity,
    /// `GITLAB_USER_NAME` / `GITLAB_USER_EMAIL`.
    pub ci_user: PartialIdentity,
}

/// What happened to the tag (SPEC §5 `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A new tag was made (and pushed, unless the request said not to).
    Created,
    /// A release tag already pointed at HEAD; nothing new was made.
    Exists,
    /// Dry run: the tag that would have been made.
    WouldCreate,
}

/// The result of a run; serialised, it is SPEC §5's JSON document
/// (`release` and `release_url` only when releases are configured).
#[derive(Debug, Clone, Serialize)]
pub struct TagOutcome {
    /// The tag on HEAD: new, existing or planned.
    pub tag: String,
    /// The release tag before it, if any.
    pub previous: Option<String>,
    #[serde(serialize_with = "as_hex")]
    pub commit: Oid,
    pub action: Action,
    /// Whether this run pushed the tag.
    pub pushed: bool,
    /// The remote's name, for messages.
    #[serde(skip)]
    pub remote: String,
    /// The GitLab release, unless releases are not configured.
    #[serde(flatten)]
    pub release: Option<ReleaseOutcome>,
}

fn as_hex<S: serde::Serializer>(oid: &Oid, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(oid)
}

/// What happened to the tag's GitLab release.
#[derive(Debug, Clone)]
pub enum ReleaseOutcome {
    Created {
        url: Option<String>,
    },
    /// It was there already (an earlier or a concurrent run made it).
    Exists {
        url: Option<String>,
    },
    Skipped(SkipReason),
    /// Dry run: the release that would be created.
    WouldCreate {
        notes: ReleaseNotes,
    },
}

/// Why no release was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    TurnedOff,
    /// The tag is only local, so GitLab has nothing to release.
    NotPushed,
}

/// [`ReleaseOutcome`] in one word (the JSON `release` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseAction {
    Created,
    Exists,
    Skipped,
    WouldCreate,
}

/// `"release": "created|exists|skipped|would-create", "release_url": URL|null`
impl Serialize for ReleaseOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("release", &self.action())?;
        map.serialize_entry("release_url", &self.url())?;
        map.end()
    }
}

impl ReleaseOutcome {
    pub fn action(&self) -> ReleaseAction {
        match self {
            ReleaseOutcome::Created { .. } => ReleaseAction::Created,
            ReleaseOutcome::Exists { .. } => ReleaseAction::Exists,
            ReleaseOutcome::Skipped(_) => ReleaseAction::Skipped,
            ReleaseOutcome::WouldCreate { .. } => ReleaseAction::WouldCreate,
        }
    }

    /// The release's page, when it exists.
    pub fn url(&self) -> Option<&str> {
        match self {
            ReleaseOutcome::Created { url } | ReleaseOutcome::Exists { url } => url.as_deref(),
            _ => None,
        }
    }
}

/// Progress worth telling a person about, in the order it happens.
#[derive(Debug, Clone)]
pub enum TagEvent {
    /// About to read the remote's tags.
    ReadingTags {
        head: Oid,
        remote: String,
        url: String,
    },
    /// `Bump::Auto` read the commits since the latest release and chose.
    AutoBump {
        bump: Bump,
        commits: usize,
        since: String,
    },
    /// `Bump::Auto` could not walk back to the latest release (a shallow
    /// clone, or a very long history): only `read` commits were counted.
    HistoryCutShort {
        read: usize,
        since: String,
        shallow: bool,
    },
    /// The local tag was made (before the push).
    LocalTagCreated { tag: String, tagger: Identity },
    /// Someone else pushed `tag` first; the remote is read again.
    LostRace { tag: String },
    /// The commits for the release notes were read from GitLab.
    NotesRead {
        commits: usize,
        since: Option<String>,
    },
    /// The GitLab token may not read the repository's commits (GitLab's
    /// answer: `status`); the notes name the range of commits instead.
    CommitsUnreadable { status: u16 },
}

/// The Go rule refused the next version: a major version N ≥ 2 needs a
/// module path ending in `/vN`.
#[derive(Debug)]
pub struct GoMajorVersion {
    pub tag: String,
    /// What is wrong, in words.
    pub problem: String,
    /// `go.mod`, relative to the repository root.
    pub go_mod: PathBuf,
    pub module: String,
    pub major: u64,
}

impl fmt::Display for GoMajorVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refusing to tag {}: {}", self.tag, self.problem)
    }
}

impl std::error::Error for GoMajorVersion {}

/// Tag HEAD with the next version and push it; or report the release tag
/// already on HEAD (pushing it if it exists only locally). Then, if the
/// request asks for it, make sure the tag has its GitLab release (`gitlab`
/// must be given then).
pub fn tag_library(
    git: &GitRepo,
    gitlab: Option<&GitLab>,
    request: &TagRequest,
    on_event: &mut dyn FnMut(TagEvent),
) -> Result<TagOutcome> {
    // Checked before anything is tagged.
    let publish_to = match (&request.release, gitlab) {
        (ReleasePolicy::Create { project }, Some(gitlab)) => Some((gitlab, project)),
        (ReleasePolicy::Create { .. }, None) => {
            anyhow::bail!("a GitLab release was asked for without a GitLab client")
        }
        _ => None,
    };
    let tagged = tag_head(git, request, on_event)?;
    let release = match (&request.release, publish_to) {
        (_, Some((gitlab, project))) => Some(publish_release(gitlab, project, &tagged, on_event)?),
        (ReleasePolicy::Off, None) => Some(ReleaseOutcome::Skipped(SkipReason::TurnedOff)),
        _ => None,
    };
    Ok(TagOutcome {
        release,
        ..tagged.outcome
    })
}

/// A tag on HEAD, and where it is now.
struct Tagged {
    outcome: TagOutcome,
    placement: Placement,
    /// The commit of the previous release tag, for the notes.
    previous_commit: Option<Oid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Only in the local repository.
    Local,
    /// A dry run would have it on the remote.
    Planned,
    /// On the remote; `fresh` when this run pushed it as a new tag (so it
    /// cannot have a release yet).
    Remote { fresh: bool },
}

fn tag_head(
    git: &GitRepo,
    request: &TagRequest,
    on_event: &mut dyn FnMut(TagEvent),
) -> Result<Tagged> {
    let head = git.head()?;
    let remote = git.remote(&request.remote)?;
    on_event(TagEvent::ReadingTags {
        head: head.oid,
        remote: remote.name.clone(),
        url: remote.display_url(),
    });

    let mut lost_races = 0;
    loop {
        let tags = Tags {
            remote: git.remote_tags(&remote, &request.auth)?,
            local: git.local_tags()?,
        };
        if let Some(existing) = tags.release_at_head(&request.prefix, head.oid) {
            return existing_tag(git, request, &remote, &head, &existing, &tags);
        }

        let latest = version::latest_release(tags.names(), &request.prefix);
        let next = match &latest {
            None => request.initial.clone(),
            Some(latest) => {
                let bump = match request.bump {
                    Bump::Auto => auto_bump(git, &head, latest, &tags, on_event)?,
                    bump => bump,
                };
                version::next_version(&latest.version, bump)
            }
        };
        check_go_rule(git, &request.prefix, &next)?;
        let tag = format!("{}{next}", request.prefix);
        let mut tagged = Tagged {
            previous_commit: latest.as_ref().and_then(|l| tags.commit_of(&l.name)),
            outcome: TagOutcome {
                tag: tag.clone(),
                previous: latest.map(|l| l.name),
                commit: head.oid,
                action: Action::Created,
                pushed: false,
                remote: remote.name.clone(),
                release: None,
            },
            placement: Placement::Local,
        };

        let tagger = tagger(git, &request.tagger);
        let Written::Sent(created) = git.create_tag(&tag, head.oid, &tagger, &head.message)? else {
            // A dry run: the push is planned too.
            if request.push {
                git.push_tag(&remote, &request.auth, &tag)?;
                tagged.placement = Placement::Planned;
            }
            tagged.outcome.action = Action::WouldCreate;
            return Ok(tagged);
        };
        on_event(TagEvent::LocalTagCreated {
            tag: tag.clone(),
            tagger,
        });
        if !request.push {
            return Ok(tagged);
        }

        match git.push_tag(&remote, &request.auth, &tag) {
            Ok(Written::Sent(PushOutcome::Pushed)) => {
                tagged.outcome.pushed = true;
                tagged.placement = Placement::Remote { fresh: true };
                return Ok(tagged);
            }
            pushed => {
                // Whatever went wrong, the tag must not stay behind locally:
                // a re-run would take it for the release and never push it.
                git.delete_own_tag(&tag, created)?;
                lost_race_or_error(git, &remote, &request.auth, &tag, pushed)?;
            }
        }

        // Someone pushed `tag` first. The next loop re-reads the remote: if
        // they tagged this very commit it ends as `exists`, else we take the
        // next version.
        lost_races += 1;
        if lost_races > MAX_RACE_RETRIES {
            return Err(anyhow::Error::new(HintedError::new(
                format!("lost the race for a new tag {lost_races} times in a row (last: {tag})"),
                "other pipelines keep tagging this project at the same time: give the \
                 tag job a resource_group (see ci-templates/tag-library.yml)",
            )));
        }
        on_event(TagEvent::LostRace { tag });
    }
}

/// The remote's and the local repository's tags, read once per attempt.
struct Tags {
    remote: Vec<TagRef>,
    local: Vec<TagRef>,
}

impl Tags {
    fn all(&self) -> impl Iterator<Item = &TagRef> {
        self.remote.iter().chain(&self.local)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.all().map(|t| t.name.as_str())
    }

    /// The highest release tag on HEAD, and whether the remote has it.
    fn release_at_head(&self, prefix: &str, head: Oid) -> Option<ExistingTag> {
        let at_head = |tags: &[TagRef]| {
            version::latest_release(
                tags.iter()
                    .filter(|t| t.commit == Some(head))
                    .map(|t| t.name.as_str()),
                prefix,
            )
        };
        if let Some(release) = at_head(&self.remote) {
            return Some(ExistingTag {
                release,
                on_remote: true,
            });
        }
        // Not on the remote under HEAD's commit (checked above): local only.
        at_head(&self.local).map(|release| ExistingTag {
            release,
            on_remote: false,
        })
    }

    /// The highest release below `version`.
    fn release_below(&self, prefix: &str, version: &Version) -> Option<ReleaseTag> {
        let below = self
            .names()
            .filter(|name| version::parse_release(name, prefix).is_some_and(|v| &v < version));
        version::latest_release(below, prefix)
    }

    /// The commit a tag names, wherever it was seen.
    fn commit_of(&self, name: &str) -> Option<Oid> {
        self.all().find(|t| t.name == name).and_then(|t| t.commit)
    }
}

/// A release tag already on HEAD, with where it is.
struct ExistingTag {
    release: ReleaseTag,
    on_remote: bool,
}

/// HEAD is already released. A tag that exists only locally (made without
/// pushing earlier) is pushed now, if the request pushes.
fn existing_tag(
    git: &GitRepo,
    request: &TagRequest,
    remote: &RemoteTarget,
    head: &HeadCommit,
    existing: &ExistingTag,
    tags: &Tags,
) -> Result<Tagged> {
    let tag = existing.release.name.clone();
    let previous = tags.release_below(&request.prefix, &existing.release.version);
    let mut tagged = Tagged {
        previous_commit: previous.as_ref().and_then(|p| tags.commit_of(&p.name)),
        outcome: TagOutcome {
            tag: tag.clone(),
            previous: previous.map(|r| r.name),
            commit: head.oid,
            action: Action::Exists,
            pushed: false,
            remote: remote.name.clone(),
            release: None,
        },
        placement: Placement::Remote { fresh: false },
    };
    if existing.on_remote {
        return Ok(tagged);
    }
    tagged.placement = Placement::Local;
    if !request.push {
        return Ok(tagged);
    }
    match git.push_tag(remote, &request.auth, &tag)? {
        Written::Planned => tagged.placement = Placement::Planned,
        Written::Sent(PushOutcome::Pushed) => {
            tagged.outcome.pushed = true;
            tagged.placement = Placement::Remote { fresh: false };
        }
        Written::Sent(PushOutcome::AlreadyOnRemote | PushOutcome::Rejected { .. }) => {
            return Err(HintedError::new(
                format!(
                    "local tag {tag} is on HEAD, but the remote refused it (it has {tag} on another commit, or a rule forbids it)"
                ),
                format!("delete the stray local tag with `git tag -d {tag}` and run again"),
            )
            .into());
        }
    }
    Ok(tagged)
}

/// Make sure the tag has its GitLab release: read it (unless this run just
/// pushed the tag), else create it with notes. A failure leaves the tag in
/// place and says so; the next run finds the tag and completes the release.
fn publish_release(
    gitlab: &GitLab,
    project: &str,
    tagged: &Tagged,
    on_event: &mut dyn FnMut(TagEvent),
) -> Result<ReleaseOutcome> {
    let tag = &tagged.outcome.tag;
    let fresh = match tagged.placement {
        Placement::Local => return Ok(ReleaseOutcome::Skipped(SkipReason::NotPushed)),
        Placement::Planned => true,
        Placement::Remote { fresh } => fresh,
    };
    ensure_release(gitlab, project, tagged, fresh, on_event).with_context(|| {
        match tagged.placement {
            Placement::Remote { .. } => format!(
                "{tag} is on {} and stays there, but its GitLab release was not created \
             (the next run creates it)",
                tagged.outcome.remote
            ),
            _ => format!("preparing the GitLab release of {tag}"),
        }
    })
}

/// The release of the tag: found, or created with notes.
fn ensure_release(
    gitlab: &GitLab,
    project: &str,
    tagged: &Tagged,
    fresh: bool,
    on_event: &mut dyn FnMut(TagEvent),
) -> Result<ReleaseOutcome> {
    let tag = &tagged.outcome.tag;
    if !fresh {
        if let Some(release) = gitlab.release(project, tag)? {
            return Ok(ReleaseOutcome::Exists {
                url: release.web_url().map(str::to_owned),
            });
        }
    }
    let notes = release_notes(gitlab, project, tagged, on_event)?;
    let summary = format!(
        "release {tag} named {tag}, notes of {} line(s) covering {} commit(s)",
        notes.entries, notes.commits
    );
    Ok(
        match gitlab.create_release(project, tag, &notes.markdown, &summary)? {
            Written::Planned => ReleaseOutcome::WouldCreate { notes },
            Written::Sent(ReleaseWrite::Created(release)) => ReleaseOutcome::Created {
                url: release.web_url().map(str::to_owned),
            },
            Written::Sent(ReleaseWrite::Existed(release)) => ReleaseOutcome::Exists {
                url: release.web_url().map(str::to_owned),
            },
        },
    )
}

/// The notes: the commits since the previous release tag (all of them, to
/// a bound, for the first release), read from GitLab.
fn release_notes(
    gitlab: &GitLab,
    project: &str,
    tagged: &Tagged,
    on_event: &mut dyn FnMut(TagEvent),
) -> Result<ReleaseNotes> {
    let head = tagged.outcome.commit.to_string();
    let previous = tagged.outcome.previous.as_deref();
    let from = tagged.previous_commit.map(|c| c.to_string());
    let read = match previous {
        // The previous tag's commit when known (a tag name could also be a
        // branch's), else its name.
        Some(previous) => gitlab
            .compare(project, from.as_deref().unwrap_or(previous), &head)
            .map(|commits| gitlab::History {
                commits,
                more: false,
            }),
        None => gitlab.history(project, &head, FIRST_RELEASE_COMMITS),
    };
    let history = match read {
        Ok(history) => history,
        // CI_JOB_TOKEN is accepted by the Releases API but, on most GitLab
        // versions, not by the repository's commit routes (for a private
        // project GitLab then answers as if the project did not exist).
        Err(err) if gitlab.uses_job_token() => {
            match [401, 403, 404]
                .into_iter()
                .find(|s| gitlab::is_status(&err, *s))
            {
                Some(status) => {
                    on_event(TagEvent::CommitsUnreadable { status });
                    return Ok(release_notes::range_only(previous, from.as_deref(), &head));
                }
                None => return Err(err),
            }
        }
        Err(err) => return Err(err),
    };
    on_event(TagEvent::NotesRead {
        commits: history.commits.len(),
        since: previous.map(str::to_owned),
    });
    let commits: Vec<NoteCommit> = history
        .commits
        .into_iter()
        .map(|c| NoteCommit {
            id: c.id,
            short_id: c.short_id,
            title: c.title,
            message: c.message,
            parent_ids: c.parent_ids,
            web_url: c.web_url,
        })
        .collect();
    Ok(release_notes::render(&NotesInput {
        head: &head,
        previous,
        commits: &commits,
        older_not_read: history.more,
    }))
}

/// After a push that did not go through: `Ok` if the remote now has `tag`
/// (someone else pushed it first: a lost race, to be retried), else the
/// push's error, with the server's message for a rejection.
fn lost_race_or_error(
    git: &GitRepo,
    remote: &RemoteTarget,
    auth: &GitAuth,
    tag: &str,
    pushed: Result<Written<PushOutcome>>,
) -> Result<()> {
    if matches!(pushed, Ok(Written::Sent(PushOutcome::AlreadyOnRemote))) {
        return Ok(());
    }
    // A transport error can hide a lost race too (a server that aborts the
    // whole push when a ref exists): only the remote's tags tell. If they
    // cannot be read, the push's own error is the one to report.
    if remote_has_tag(git, remote, auth, tag).unwrap_or(false) {
        return Ok(());
    }
    match pushed {
        Ok(Written::Sent(PushOutcome::Rejected {
            status,
            remote_output,
        })) => {
            let mut message = format!("the git server rejected tag {tag}: {status}");
            if !remote_output.is_empty() {
                message.push('\n');
                message.push_str(&remote_output);
            }
            Err(anyhow::Error::new(HintedError::new(
                message,
                "a server-side hook or a protected-tag rule refused the tag; \
                 the remote's message above says why (for protected tags, the \
                 token's role must be allowed to create them)",
            )))
            .with_context(|| {
                format!(
                    "pushing tag {tag} to remote {} ({})",
                    remote.name,
                    remote.display_url()
                )
            })
        }
        Ok(_) => Ok(()),
        Err(err) => Err(err),
    }
}

fn remote_has_tag(git: &GitRepo, remote: &RemoteTarget, auth: &GitAuth, tag: &str) -> Result<bool> {
    let tags = git
        .remote_tags(remote, auth)
        .with_context(|| format!("checking whether {tag} appeared on the remote"))?;
    Ok(tags.iter().any(|t| t.name == tag))
}

fn tagger(git: &GitRepo, sources: &TaggerSources) -> Identity {
    let (config_name, config_email) = git.config_identity();
    Identity::first_of(&[
        sources.committer.as_pair(),
        (config_name.as_deref(), config_email.as_deref()),
        sources.ci_user.as_pair(),
    ])
}

/// `Bump::Auto`: the strongest bump asked for by the commits after the
/// latest release.
fn auto_bump(
    git: &GitRepo,
    head: &HeadCommit,
    latest: &ReleaseTag,
    tags: &Tags,
    on_event: &mut dyn FnMut(TagEvent),
) -> Result<Bump> {
    let stop = tags.commit_of(&latest.name);
    let history = git.history_since(head.oid, stop, HISTORY_LIMIT)?;
    if history.cut_short && !history.reached_stop {
        on_event(TagEvent::HistoryCutShort {
            read: history.messages.len(),
            since: latest.name.clone(),
            shallow: git.is_shallow(),
        });
    }
    let bump = CommitClassifier::new().classify_all(history.messages.iter().map(String::as_str));
    on_event(TagEvent::AutoBump {
        bump,
        commits: history.messages.len(),
        since: latest.name.clone(),
    });
    Ok(bump)
}

/// The Go rule: major ≥ 2 needs `/vN` at the end of the module path. A
/// directory without `go.mod` is not a Go module and has no such rule.
fn check_go_rule(git: &GitRepo, prefix: &str, next: &Version) -> Result<()> {
    let go_mod = Path::new(version::module_dir(prefix)).join("go.mod");
    let Some(text) = git.read_worktree_file(&go_mod)? else {
        return Ok(());
    };
    let Some(module) = version::go_module_path(&text) else {
        return Err(UsageError::new(format!(
            "{} has no module directive",
            git.root().join(&go_mod).display()
        ))
        .into());
    };
    version::check_go_major(&module, next).map_err(|problem| {
        GoMajorVersion {
            tag: format!("{prefix}{next}"),
            problem,
            go_mod,
            module,
            major: next.major,
        }
        .into()
    })
}
