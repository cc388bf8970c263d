//! `rp-devops tag-library`: tag a Go library's HEAD with the next semantic
//! version and push that one tag (SPEC §5).
//!
//! Safe to run in any CI clone (shallow, no tags fetched), safe to re-run
//! (HEAD already tagged → nothing to do), and safe when two pipelines race
//! (the loser re-reads the remote and takes the next version). Git work goes
//! through [`crate::git`]; version rules are pure functions in
//! [`crate::git::version`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use semver::Version;
use serde::Serialize;

use crate::error::{ExitStatus, HintedError, UsageError};
use crate::git::version::{self, Bump, CommitClassifier, ReleaseTag};
use crate::git::{GitAuth, GitRepo, HeadCommit, Identity, PushOutcome, RemoteTarget, TagRef};
use crate::output::Printer;
use crate::settings::{Settings, TokenKind};

/// Tag HEAD with the next semantic version and push that tag.
///
/// The latest version is the highest PREFIX<semver> tag on the remote (read
/// like `git ls-remote`, so shallow clones without tags work) or local, by
/// semver precedence; pre-releases and build metadata are ignored. If a
/// release tag already points at HEAD, it is printed and nothing is created.
/// The new tag is annotated with HEAD's full commit message and pushed alone,
/// never forced. If another pipeline pushed the same tag first, the remote is
/// read again and the next version is tried (at most 3 times).
///
/// Credentials for http(s) remotes: RP_GIT_TOKEN, else the GitLab token, as
/// the password of user oauth2. Tagger: GIT_COMMITTER_NAME/EMAIL, git config
/// user.name/email, GITLAB_USER_NAME/EMAIL, else rp-devops <rp-devops@localhost>.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    rp-devops tag-library                      # v1.4.2 -> v1.4.3, pushed to origin\n  \
    rp-devops tag-library --bump auto --json   # feat: -> minor, fix!: -> major\n  \
    rp-devops tag-library --prefix tools/v     # Go module in tools/: tools/v0.3.1\n  \
    rp-devops tag-library --dry-run            # show the tag, create nothing")]
pub struct TagLibraryArgs {
    /// The library's clone
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,

    /// Remote to read tags from and push the tag to
    #[arg(long, value_name = "NAME", default_value = "origin")]
    pub remote: String,

    /// Tag prefix; a Go module in a subdirectory uses DIR/v (e.g. tools/v)
    #[arg(long, value_name = "P", default_value = "v")]
    pub prefix: String,

    /// Version of the first tag, when there is none yet
    #[arg(long, value_name = "V", default_value = "0.1.0")]
    pub initial: String,

    /// Which part to raise; auto reads the commits since the last tag
    /// (BREAKING CHANGE, type!: or [major] → major; feat: or [minor] → minor)
    #[arg(long, value_enum, value_name = "PART", default_value_t = Bump::Patch)]
    pub bump: Bump,

    /// Create the tag locally only
    #[arg(long)]
    pub no_push: bool,
}

/// How many times a lost race is retried with the next version.
const MAX_RACE_RETRIES: usize = 3;
/// `--bump auto` reads at most this many commits back from HEAD.
const HISTORY_LIMIT: usize = 10_000;

#[derive(Debug, Serialize)]
struct TagResult {
    tag: String,
    previous: Option<String>,
    commit: String,
    action: &'static str,
    pushed: bool,
}

pub fn run(args: &TagLibraryArgs, settings: &Settings) -> Result<ExitStatus> {
    let printer = Printer::new(settings);
    let initial = parse_initial(&args.initial)?;
    check_prefix(&args.prefix)?;

    let repo = GitRepo::open(&args.repo)?;
    let head = repo.head()?;
    let remote = repo.remote(&args.remote)?;
    let auth = git_auth(settings);
    printer.detail(format!(
        "HEAD is {}; reading tags of {} ({})",
        head.oid,
        remote.name,
        remote.display_url()
    ));

    let mut lost_races = 0;
    loop {
        let remote_tags = repo.remote_tags(&remote, &auth)?;
        let local_tags = repo.local_tags()?;

        if let Some(existing) = release_at_head(&remote_tags, &local_tags, &args.prefix, head.oid) {
            return report_existing(
                args,
                settings,
                &printer,
                &repo,
                &remote,
                &auth,
                &head,
                &existing,
                &remote_tags,
                &local_tags,
            );
        }

        let names = remote_tags
            .iter()
            .chain(&local_tags)
            .map(|t| t.name.as_str());
        let latest = version::latest_release(names, &args.prefix);
        let next = match &latest {
            None => initial.clone(),
            Some(latest) => {
                let bump = match args.bump {
                    Bump::Auto => {
                        auto_bump(&repo, &printer, &head, latest, &remote_tags, &local_tags)?
                    }
                    bump => bump,
                };
                version::next_version(&latest.version, bump)
            }
        };
        check_go_rule(&repo, &args.prefix, &next)?;
        let tag = format!("{}{next}", args.prefix);
        let previous = latest.as_ref().map(|l| l.name.clone());
        let short = short_oid(&head);

        if settings.dry_run {
            printer.would(
                "create",
                &format!("refs/tags/{tag}"),
                format!("annotated tag on {short} with HEAD's commit message"),
            );
            if !args.no_push {
                printer.would(
                    "push",
                    &format!("refs/tags/{tag}"),
                    format!("to {} ({}), not forced", remote.name, remote.display_url()),
                );
            }
            return finish(
                &printer,
                TagResult {
                    tag,
                    previous,
                    commit: head.oid.to_string(),
                    action: "would-create",
                    pushed: false,
                },
                &remote,
            );
        }

        let tagger = tagger(settings, &repo);
        let created = repo.create_tag(&tag, head.oid, &tagger, &head.message)?;
        printer.detail(format!(
            "created local tag {tag} by {} <{}>",
            tagger.name, tagger.email
        ));
        let mut result = TagResult {
            tag: tag.clone(),
            previous,
            commit: head.oid.to_string(),
            action: "created",
            pushed: false,
        };
        if args.no_push {
            return finish(&printer, result, &remote);
        }

        match repo.push_tag(&remote, &auth, &tag) {
            Ok(PushOutcome::Pushed) => {
                result.pushed = true;
                return finish(&printer, result, &remote);
            }
            outcome => {
                // Whatever went wrong, the tag must not stay behind locally:
                // a re-run would take it for the release and never push it.
                repo.delete_own_tag(&tag, created)?;
                lost_race_or_error(&repo, &remote, &auth, &tag, outcome)?;
            }
        }

        // Someone pushed `tag` first. Next loop re-reads the remote: if they
        // tagged this very commit it ends as `exists`, else we take the next
        // version.
        lost_races += 1;
        if lost_races > MAX_RACE_RETRIES {
            return Err(anyhow::Error::new(HintedError::new(
                format!("lost the race for a new tag {lost_races} times in a row (last: {tag})"),
                "other pipelines keep tagging this project at the same time: give the \
                 tag job a resource_group (see ci-templates/tag-library.yml)",
            )));
        }
        printer.info(format!(
            "{tag} was pushed by someone else first; reading the remote's tags again"
        ));
    }
}

/// After a push that did not go through: `Ok` if the remote now has `tag`
/// (someone else pushed it first: a lost race, to be retried), else the
/// push's error, with the server's message for a rejection.
fn lost_race_or_error(
    repo: &GitRepo,
    remote: &RemoteTarget,
    auth: &GitAuth,
    tag: &str,
    outcome: Result<PushOutcome>,
) -> Result<()> {
    if matches!(outcome, Ok(PushOutcome::AlreadyOnRemote)) {
        return Ok(());
    }
    // A transport error can hide a lost race too (a server that aborts the
    // whole push when a ref exists): only the remote's tags tell. If they
    // cannot be read, the push's own error is the one to report.
    if remote_has_tag(repo, remote, auth, tag).unwrap_or(false) {
        return Ok(());
    }
    match outcome {
        Ok(PushOutcome::Rejected {
            status,
            remote_output,
        }) => {
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
        Ok(PushOutcome::Pushed | PushOutcome::AlreadyOnRemote) => Ok(()),
        Err(err) => Err(err),
    }
}

/// `--initial`: a release version (`v` prefix tolerated).
fn parse_initial(text: &str) -> Result<Version> {
    let trimmed = text.trim();
    let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
    match Version::parse(bare) {
        Ok(v) if v.pre.is_empty() && v.build.is_empty() => Ok(v),
        _ => Err(UsageError::new(format!(
            "--initial {text:?} is not a release version like 0.1.0 or 1.0.0"
        ))
        .into()),
    }
}

fn check_prefix(prefix: &str) -> Result<()> {
    if !git2::Reference::is_valid_name(&format!("refs/tags/{prefix}1.0.0")) {
        return Err(UsageError::new(format!(
            "--prefix {prefix:?} does not make valid tag names (e.g. {prefix}1.0.0)"
        ))
        .into());
    }
    Ok(())
}

/// `RP_GIT_TOKEN`, else the GitLab token; user `oauth2`, except for
/// `CI_JOB_TOKEN`, which GitLab only accepts as user `gitlab-ci-token`.
fn git_auth(settings: &Settings) -> GitAuth {
    if let Some(token) = settings.env.secret("RP_GIT_TOKEN") {
        return GitAuth {
            username: "oauth2".to_owned(),
            token: Some(token),
            source: Some("RP_GIT_TOKEN".to_owned()),
            is_job_token: false,
        };
    }
    match &settings.gitlab.token {
        Some(token) => GitAuth {
            username: match token.kind {
                TokenKind::Job => "gitlab-ci-token".to_owned(),
                TokenKind::Private => "oauth2".to_owned(),
            },
            token: Some(token.secret.clone()),
            source: Some(token.source.clone()),
            is_job_token: token.kind == TokenKind::Job,
        },
        None => GitAuth {
            username: "oauth2".to_owned(),
            token: None,
            source: None,
            is_job_token: false,
        },
    }
}

fn tagger(settings: &Settings, repo: &GitRepo) -> Identity {
    let env = &settings.env;
    let (config_name, config_email) = repo.config_identity();
    Identity::first_of(&[
        (
            env.get("GIT_COMMITTER_NAME"),
            env.get("GIT_COMMITTER_EMAIL"),
        ),
        (config_name.as_deref(), config_email.as_deref()),
        (env.get("GITLAB_USER_NAME"), env.get("GITLAB_USER_EMAIL")),
    ])
}

/// A release tag (highest first) already on HEAD, with where it is.
struct ExistingTag {
    release: ReleaseTag,
    on_remote: bool,
}

fn release_at_head(
    remote: &[TagRef],
    local: &[TagRef],
    prefix: &str,
    head: git2::Oid,
) -> Option<ExistingTag> {
    let at_head = |tags: &[TagRef]| {
        version::latest_release(
            tags.iter()
                .filter(|t| t.commit == Some(head))
                .map(|t| t.name.as_str()),
            prefix,
        )
    };
    if let Some(release) = at_head(remote) {
        return Some(ExistingTag {
            release,
            on_remote: true,
        });
    }
    // Not on the remote under HEAD's commit (checked above): local only.
    at_head(local).map(|release| ExistingTag {
        release,
        on_remote: false,
    })
}

/// HEAD is already released. A tag that exists only locally (made with
/// `--no-push` earlier) is pushed now, unless this run must not push.
#[allow(clippy::too_many_arguments)]
fn report_existing(
    args: &TagLibraryArgs,
    settings: &Settings,
    printer: &Printer,
    repo: &GitRepo,
    remote: &RemoteTarget,
    auth: &GitAuth,
    head: &HeadCommit,
    existing: &ExistingTag,
    remote_tags: &[TagRef],
    local_tags: &[TagRef],
) -> Result<ExitStatus> {
    let tag = existing.release.name.clone();
    let below = remote_tags
        .iter()
        .chain(local_tags)
        .map(|t| t.name.as_str())
        .filter(|name| {
            version::parse_release(name, &args.prefix).is_some_and(|v| v < existing.release.version)
        });
    let previous = version::latest_release(below, &args.prefix).map(|r| r.name);
    let mut result = TagResult {
        tag: tag.clone(),
        previous,
        commit: head.oid.to_string(),
        action: "exists",
        pushed: false,
    };
    if !existing.on_remote && !args.no_push {
        if settings.dry_run {
            printer.would(
                "push",
                &format!("refs/tags/{tag}"),
                format!(
                    "existing local tag to {} ({})",
                    remote.name,
                    remote.display_url()
                ),
            );
        } else {
            match repo.push_tag(remote, auth, &tag)? {
                PushOutcome::Pushed => result.pushed = true,
                PushOutcome::AlreadyOnRemote | PushOutcome::Rejected { .. } => {
                    return Err(HintedError::new(
                        format!(
                            "local tag {tag} is on HEAD, but the remote refused it (it has {tag} on another commit, or a rule forbids it)"
                        ),
                        format!("delete the stray local tag with `git tag -d {tag}` and run again"),
                    )
                    .into());
                }
            }
        }
    }
    finish(printer, result, remote)
}

/// `--bump auto`: the strongest bump asked for by the commits after the
/// latest release.
fn auto_bump(
    repo: &GitRepo,
    printer: &Printer,
    head: &HeadCommit,
    latest: &ReleaseTag,
    remote_tags: &[TagRef],
    local_tags: &[TagRef],
) -> Result<Bump> {
    let stop = remote_tags
        .iter()
        .chain(local_tags)
        .find(|t| t.name == latest.name)
        .and_then(|t| t.commit);
    let history = repo.history_since(head.oid, stop, HISTORY_LIMIT)?;
    if history.cut_short && !history.reached_stop {
        printer.warn(format!(
            "--bump auto read {} commit{} back from HEAD without reaching {}{}; \
             commits before that are not counted (set GIT_DEPTH: 0 in the job to see them all)",
            history.messages.len(),
            if history.messages.len() == 1 { "" } else { "s" },
            latest.name,
            if repo.is_shallow() {
                " (shallow clone)"
            } else {
                ""
            },
        ));
    }
    let bump = CommitClassifier::new().classify_all(history.messages.iter().map(String::as_str));
    printer.detail(format!(
        "--bump auto: {bump} from {} commit(s) since {}",
        history.messages.len(),
        latest.name
    ));
    Ok(bump)
}

/// The Go rule: major ≥ 2 needs `/vN` at the end of the module path. A
/// directory without `go.mod` is not a Go module and has no such rule.
fn check_go_rule(repo: &GitRepo, prefix: &str, next: &Version) -> Result<()> {
    let dir = version::module_dir(prefix);
    let go_mod = Path::new(dir).join("go.mod");
    let Some(text) = repo.read_worktree_file(&go_mod)? else {
        return Ok(());
    };
    let Some(module) = version::go_module_path(&text) else {
        return Err(UsageError::new(format!(
            "{} has no module directive",
            repo.root().join(&go_mod).display()
        ))
        .into());
    };
    version::check_go_major(&module, next).map_err(|problem| {
        UsageError::new(format!("refusing to tag {prefix}{next}: {problem}"))
            .with_hint(format!(
                "Go requires major version N >= 2 to live at a module path ending in /vN: \
                 change the module line of {} to {module}/v{} (and the imports), \
                 or choose another --bump",
                go_mod.display(),
                next.major
            ))
            .into()
    })
}

fn remote_has_tag(
    repo: &GitRepo,
    remote: &RemoteTarget,
    auth: &GitAuth,
    tag: &str,
) -> Result<bool> {
    let tags = repo
        .remote_tags(remote, auth)
        .with_context(|| format!("checking whether {tag} appeared on the remote"))?;
    Ok(tags.iter().any(|t| t.name == tag))
}

fn short_oid(head: &HeadCommit) -> String {
    head.oid.to_string()[..7].to_owned()
}

fn finish(printer: &Printer, result: TagResult, remote: &RemoteTarget) -> Result<ExitStatus> {
    printer.result(&result, |out| {
        let short = &result.commit[..result.commit.len().min(7)];
        let previous = match &result.previous {
            Some(p) => format!("previous {p}"),
            None => "first release".to_owned(),
        };
        match result.action {
            "exists" => writeln!(
                out,
                "{} already tags {short} ({previous}), nothing created{}",
                result.tag,
                if result.pushed {
                    format!("; pushed the local tag to {}", remote.name)
                } else {
                    String::new()
                }
            ),
            "would-create" => writeln!(out, "would create {} ({previous}) at {short}", result.tag),
            _ => writeln!(
                out,
                "created {} ({previous}) at {short}, {}",
                result.tag,
                if result.pushed {
                    format!("pushed to {}", remote.name)
                } else {
                    "not pushed (--no-push)".to_owned()
                }
            ),
        }
    })?;
    Ok(ExitStatus::Success)
}
