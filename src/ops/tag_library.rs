//! Tag a Go library's HEAD with the next semantic version and push that one
//! tag (SPEC §5).
//!
//! Safe in any CI clone (shallow, no tags fetched), safe to re-run (HEAD
//! already tagged → nothing to do), and safe when two pipelines race (the
//! loser re-reads the remote and takes the next version). Git work goes
//! through [`crate::git`] (a repository in dry-run mode plans the tag and the
//! push instead of making them); version rules are pure functions in
//! [`crate::git::version`].
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
use crate::git::version::{self, Bump, CommitClassifier, ReleaseTag};
use crate::git::{GitAuth, GitRepo, HeadCommit, Identity, PushOutcome, RemoteTarget, TagRef};
use crate::planned::Written;

/// How many times a lost race is retried with the next version.
const MAX_RACE_RETRIES: usize = 3;
/// `Bump::Auto` reads at most this many commits back from HEAD.
const HISTORY_LIMIT: usize = 10_000;

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

/// The result of a run.
#[derive(Debug, Clone)]
pub struct TagOutcome {
    /// The tag on HEAD: new, existing or planned.
    pub tag: String,
    /// The release tag before it, if any.
    pub previous: Option<String>,
    pub commit: Oid,
    pub action: Action,
    /// Whether this run pushed the tag.
    pub pushed: bool,
    /// The remote's name, for messages.
    pub remote: String,
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
/// already on HEAD (pushing it if it exists only locally).
pub fn tag_library(
    git: &GitRepo,
    request: &TagRequest,
    on_event: &mut dyn FnMut(TagEvent),
) -> Result<TagOutcome> {
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
        let mut outcome = TagOutcome {
            tag: tag.clone(),
            previous: latest.map(|l| l.name),
            commit: head.oid,
            action: Action::Created,
            pushed: false,
            remote: remote.name.clone(),
        };

        let tagger = tagger(git, &request.tagger);
        let Written::Sent(created) = git.create_tag(&tag, head.oid, &tagger, &head.message)? else {
            // A dry run: the push is planned too.
            if request.push {
                git.push_tag(&remote, &request.auth, &tag)?;
            }
            outcome.action = Action::WouldCreate;
            return Ok(outcome);
        };
        on_event(TagEvent::LocalTagCreated {
            tag: tag.clone(),
            tagger,
        });
        if !request.push {
            return Ok(outcome);
        }

        match git.push_tag(&remote, &request.auth, &tag) {
            Ok(Written::Sent(PushOutcome::Pushed)) => {
                outcome.pushed = true;
                return Ok(outcome);
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
) -> Result<TagOutcome> {
    let tag = existing.release.name.clone();
    let mut outcome = TagOutcome {
        tag: tag.clone(),
        previous: tags
            .release_below(&request.prefix, &existing.release.version)
            .map(|r| r.name),
        commit: head.oid,
        action: Action::Exists,
        pushed: false,
        remote: remote.name.clone(),
    };
    if existing.on_remote || !request.push {
        return Ok(outcome);
    }
    match git.push_tag(remote, &request.auth, &tag)? {
        Written::Planned => {}
        Written::Sent(PushOutcome::Pushed) => outcome.pushed = true,
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
    Ok(outcome)
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
