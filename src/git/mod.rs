//! The git service: a local repository and one of its remotes, through
//! libgit2 (`git2`), never by running the `git` program.
//!
//! It reads what `tag-library` needs (HEAD, local tags, the remote's tags as
//! `git ls-remote` lists them, commit messages since a tag), creates
//! annotated tags, and pushes one tag ref at a time. It knows nothing about
//! versions or release notes (see [`version`] and [`release_notes`], pure
//! rules kept beside it) and never prints:
//! it returns facts and errors that name the remote (with any credentials in
//! its URL removed). Errors speak in git's terms; the command layer adds the
//! flag to use.
//!
//! Dry-run lives here too: a repository opened with [`GitRepo::planning`]
//! reads as usual and records the tag it would create and the push it would
//! make as [`PlannedWrite`]s, answering [`Written::Planned`].
//!
//! What it must never do: force a push, move a tag that exists on the remote,
//! let a token reach an error message, a log line or `Debug` output, or send
//! a token to any host but the configured GitLab's: the credentials callback
//! checks the host of the URL asking (after any redirect) and refuses
//! another host, or plain http when GitLab is reached over https.

pub mod release_notes;
pub mod version;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use git2::{
    Cred, CredentialType, Direction, ErrorClass, ErrorCode, ObjectType, Oid, ProxyOptions,
    PushOptions, RemoteCallbacks, Repository, Signature,
};

use crate::error::{HintedError, UsageError};
use crate::http::tls::CaFile;
use crate::planned::{PlannedWrite, Written};
use crate::settings::{GitLabToken, Secret, TokenKind};

/// The directory is not inside a git repository.
#[derive(Debug)]
pub struct NotARepository {
    pub dir: PathBuf,
    /// libgit2's words.
    pub reason: String,
}

impl fmt::Display for NotARepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not inside a git repository: {}",
            self.dir.display(),
            self.reason
        )
    }
}

impl std::error::Error for NotARepository {}

/// The repository has no remote of that name.
#[derive(Debug)]
pub struct UnknownRemote {
    pub name: String,
    pub repository: PathBuf,
    /// libgit2's words.
    pub reason: String,
}

impl fmt::Display for UnknownRemote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no remote {:?} in {}: {} (`git remote -v` lists the remotes)",
            self.name,
            self.repository.display(),
            self.reason
        )
    }
}

impl std::error::Error for UnknownRemote {}

/// A tag as a remote or the local repository has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRef {
    /// Without `refs/tags/`, e.g. `v1.2.3` or `tools/v0.4.0`.
    pub name: String,
    /// What the ref points at: a tag object (annotated) or a commit.
    pub target: Oid,
    /// The commit it finally names (`^{}`), when known.
    pub commit: Option<Oid>,
}

/// The commit a tag would be put on.
#[derive(Debug, Clone)]
pub struct HeadCommit {
    pub oid: Oid,
    /// The full message, byte for byte as stored (lines starting with `#`
    /// included), lossily decoded if it is not UTF-8.
    pub message: String,
}

/// Who a tag is made by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Identity {
    /// The identity of last resort, for a bare CI container with no git config.
    pub fn bot() -> Self {
        Self {
            name: "rp-devops".to_owned(),
            email: "rp-devops@localhost".to_owned(),
        }
    }

    /// Each of name and email from the first source that has it, in order
    /// (as git itself resolves them independently), else the bot's.
    pub fn first_of(sources: &[(Option<&str>, Option<&str>)]) -> Self {
        let pick = |second: bool| {
            sources
                .iter()
                .filter_map(|s| if second { s.1 } else { s.0 })
                .map(str::trim)
                .find(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let bot = Self::bot();
        Self {
            name: pick(false).unwrap_or(bot.name),
            email: pick(true).unwrap_or(bot.email),
        }
    }
}

/// Credentials for http(s) remotes: a token sent as the password, to the
/// GitLab host only.
pub struct GitAuth {
    pub username: String,
    pub token: Option<Secret>,
    /// Where the token came from (`RP_GIT_TOKEN`, `RP_GITLAB_TOKEN`, …), for hints.
    pub source: Option<String>,
    /// The token is a `CI_JOB_TOKEN`, which can read but normally not push.
    pub is_job_token: bool,
    /// The configured GitLab instance (`scheme://host[:port]`): the token
    /// goes to its host and nowhere else.
    pub gitlab_url: Option<String>,
}

/// Why a token is not sent to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withheld {
    /// No GitLab URL is configured, so no host may have the token.
    NoGitLabHost { host: String },
    /// The server is on another host than GitLab.
    OtherHost { host: String, gitlab_host: String },
    /// GitLab is reached over https; this server speaks plain http.
    Unencrypted { host: String },
}

impl fmt::Display for Withheld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Withheld::NoGitLabHost { host } => write!(
                f,
                "{host} asks for credentials, but no GitLab URL is configured: the token is only \
                 sent to the GitLab host"
            ),
            Withheld::OtherHost { host, gitlab_host } => write!(
                f,
                "{host} asks for credentials, but the token is only sent to the GitLab host \
                 {gitlab_host}; it was not sent"
            ),
            Withheld::Unencrypted { host } => write!(
                f,
                "{host} asks for credentials over plain http while GitLab is reached over \
                 https; the token was not sent"
            ),
        }
    }
}

impl GitAuth {
    /// A git token of its own (`RP_GIT_TOKEN`) first, else the GitLab token.
    /// The token is the password of user `oauth2`, except for
    /// `CI_JOB_TOKEN`, which GitLab only accepts as user `gitlab-ci-token`.
    /// It is only ever sent to the host of `gitlab_url`.
    pub fn resolve(
        git_token: Option<(Secret, String)>,
        gitlab: Option<&GitLabToken>,
        gitlab_url: Option<&str>,
    ) -> Self {
        let gitlab_url = gitlab_url.map(str::to_owned);
        if let Some((token, source)) = git_token {
            return Self {
                username: "oauth2".to_owned(),
                token: Some(token),
                source: Some(source),
                is_job_token: false,
                gitlab_url,
            };
        }
        let is_job_token = gitlab.is_some_and(|t| t.kind == TokenKind::Job);
        Self {
            username: if is_job_token {
                "gitlab-ci-token"
            } else {
                "oauth2"
            }
            .to_owned(),
            token: gitlab.map(|t| t.secret.clone()),
            source: gitlab.map(|t| t.source.clone()),
            is_job_token,
            gitlab_url,
        }
    }

    /// Whether the token may go to the server at `url`: the same host as
    /// GitLab's (any port: GitLab's git-over-http shares its host, not
    /// always its port), and not over plain http when GitLab uses https.
    pub fn may_send_to(&self, url: &str) -> Result<(), Withheld> {
        let target = url::Url::parse(url).ok();
        let host = target
            .as_ref()
            .and_then(|u| u.host_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| redact_url(url));
        let gitlab = self
            .gitlab_url
            .as_deref()
            .and_then(|g| url::Url::parse(g).ok());
        let Some(gitlab) = gitlab else {
            return Err(Withheld::NoGitLabHost { host });
        };
        let gitlab_host = gitlab.host_str().unwrap_or_default().to_ascii_lowercase();
        if target.is_none() || host != gitlab_host {
            return Err(Withheld::OtherHost { host, gitlab_host });
        }
        if gitlab.scheme() == "https" && target.is_some_and(|t| t.scheme() != "https") {
            return Err(Withheld::Unencrypted { host });
        }
        Ok(())
    }
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitAuth")
            .field("username", &self.username)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("source", &self.source)
            .field("gitlab_url", &self.gitlab_url)
            .finish()
    }
}

/// A configured remote: where to read tags from and where to push them.
#[derive(Clone)]
pub struct RemoteTarget {
    pub name: String,
    fetch_url: String,
    push_url: String,
}

impl fmt::Debug for RemoteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // CI runners write the job token into the remote URL.
        f.debug_struct("RemoteTarget")
            .field("name", &self.name)
            .field("fetch_url", &redact_url(&self.fetch_url))
            .field("push_url", &redact_url(&self.push_url))
            .finish()
    }
}

impl RemoteTarget {
    /// The fetch URL without credentials, for messages.
    pub fn display_url(&self) -> String {
        redact_url(&self.fetch_url)
    }
}

/// What happened to a push the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Pushed,
    /// The tag existed on the remote when the push started; nothing was sent.
    AlreadyOnRemote,
    /// The server refused the ref update: its status (e.g. `pre-receive hook
    /// declined`) and whatever it printed on the side band (`remote: …`).
    Rejected {
        status: String,
        remote_output: String,
    },
}

/// Commit messages read by walking back from HEAD.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Newest first.
    pub messages: Vec<String>,
    /// The walk reached the commit it was asked to stop at.
    pub reached_stop: bool,
    /// The walk ended at a shallow clone's boundary (or a missing object)
    /// before reaching that commit.
    pub cut_short: bool,
}

/// `https://user:secret@host/x.git` → `https://host/x.git`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Whether `name` is a valid tag name (as `refs/tags/NAME`).
pub fn is_valid_tag_name(name: &str) -> bool {
    git2::Reference::is_valid_name(&format!("refs/tags/{name}"))
}

fn is_http(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// A local repository opened for tagging.
pub struct GitRepo {
    repo: Repository,
    /// The working tree's root (or the git dir for a bare repository).
    root: PathBuf,
    /// In dry-run mode, the writes recorded instead of made.
    plan: Option<RefCell<Vec<PlannedWrite>>>,
    /// CA files https remotes may be signed by, beyond the defaults.
    trust: Vec<CaFile>,
}

impl GitRepo {
    /// Open the repository containing `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let repo = Repository::discover(dir).map_err(|e| {
            if e.code() == ErrorCode::Owner {
                // Like git's safe.directory check: a checkout owned by
                // another user (common when a CI image runs as non-root).
                return UsageError::new(format!(
                    "refusing to use the repository at {}: {}",
                    dir.display(),
                    e.message()
                ))
                .with_hint(format!(
                    "if the checkout is trusted: git config --global --add safe.directory {}",
                    std::fs::canonicalize(dir)
                        .unwrap_or_else(|_| dir.to_path_buf())
                        .display()
                ))
                .into();
            }
            anyhow::Error::new(NotARepository {
                dir: dir.to_path_buf(),
                reason: e.message().to_owned(),
            })
        })?;
        let root = repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf();
        Ok(Self {
            repo,
            root,
            plan: None,
            trust: Vec::new(),
        })
    }

    /// This repository in dry-run mode: reads as usual; creating a tag and
    /// pushing it are recorded (see [`GitRepo::planned`]) and answered with
    /// [`Written::Planned`].
    pub fn planning(mut self) -> Self {
        self.plan.get_or_insert_with(RefCell::default);
        self
    }

    /// Trust these CA files too for https remotes (GitLab Runner's
    /// `CI_SERVER_TLS_CA_FILE`), on top of OpenSSL's default locations,
    /// which already follow `SSL_CERT_FILE` and `SSL_CERT_DIR`.
    pub fn trusting(mut self, files: &[CaFile]) -> Self {
        self.trust = files.to_vec();
        self
    }

    /// Load the extra CA files into libgit2's TLS context before the first
    /// https connection. The context is the process's, so each file is
    /// loaded once.
    fn prepare_tls(&self, url: &str) -> Result<()> {
        if self.trust.is_empty() || !url.to_ascii_lowercase().starts_with("https://") {
            return Ok(());
        }
        static LOADED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
        let mut loaded = LOADED
            .lock()
            .map_err(|_| anyhow::anyhow!("the TLS set-up of libgit2 failed earlier"))?;
        for file in &self.trust {
            if loaded.contains(&file.path) {
                continue;
            }
            // SAFETY: libgit2's global options are not synchronised with
            // connections in flight; the lock above serialises the callers
            // here, and this runs before this repository connects.
            let set = unsafe { git2::opts::set_ssl_cert_file(file.path.as_path()) };
            set.map_err(|e| {
                UsageError::new(format!(
                    "{} ({}) cannot be used for git over https: {}",
                    file.source,
                    file.path.display(),
                    e.message()
                ))
                .with_hint("it must be a PEM file of CA certificates")
            })?;
            loaded.push(file.path.clone());
        }
        Ok(())
    }

    /// The writes planned so far, in order (empty when not in dry-run mode).
    pub fn planned(&self) -> Vec<PlannedWrite> {
        self.plan
            .as_ref()
            .map(|plan| plan.borrow().clone())
            .unwrap_or_default()
    }

    /// Record a planned write, or `false` when writes are real.
    fn plan(&self, method: &str, path: String, summary: String) -> bool {
        let Some(plan) = &self.plan else {
            return false;
        };
        plan.borrow_mut().push(PlannedWrite {
            method: method.to_owned(),
            path,
            summary,
        });
        true
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_shallow(&self) -> bool {
        self.repo.is_shallow()
    }

    pub fn head(&self) -> Result<HeadCommit> {
        let commit = self
            .repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .with_context(|| format!("reading HEAD of {}", self.root.display()))?;
        let message = String::from_utf8_lossy(commit.message_raw_bytes()).into_owned();
        Ok(HeadCommit {
            oid: commit.id(),
            message,
        })
    }

    /// `user.name` and `user.email` from git config (repository, global,
    /// system), where set.
    pub fn config_identity(&self) -> (Option<String>, Option<String>) {
        let Ok(config) = self.repo.config() else {
            return (None, None);
        };
        (
            config.get_string("user.name").ok(),
            config.get_string("user.email").ok(),
        )
    }

    /// The named remote's URLs (push URL falls back to the fetch URL).
    pub fn remote(&self, name: &str) -> Result<RemoteTarget> {
        let remote = self.repo.find_remote(name).map_err(|e| UnknownRemote {
            name: name.to_owned(),
            repository: self.root.clone(),
            reason: e.message().to_owned(),
        })?;
        let fetch_url = remote
            .url()
            .with_context(|| format!("the URL of remote {name:?} is not UTF-8"))?
            .to_owned();
        let push_url = remote
            .pushurl()
            .with_context(|| format!("the push URL of remote {name:?} is not UTF-8"))?
            .unwrap_or(&fetch_url)
            .to_owned();
        Ok(RemoteTarget {
            name: name.to_owned(),
            fetch_url,
            push_url,
        })
    }

    /// Every tag in the local repository, with the commit it peels to.
    pub fn local_tags(&self) -> Result<Vec<TagRef>> {
        let refs = self
            .repo
            .references_glob("refs/tags/*")
            .with_context(|| format!("listing local tags in {}", self.root.display()))?;
        let mut tags = Vec::new();
        for reference in refs {
            let reference = reference
                .with_context(|| format!("listing local tags in {}", self.root.display()))?;
            let (Ok(name), Some(target)) = (reference.name(), reference.target()) else {
                continue;
            };
            let Some(name) = name.strip_prefix("refs/tags/") else {
                continue;
            };
            tags.push(TagRef {
                name: name.to_owned(),
                target,
                commit: reference.peel_to_commit().ok().map(|c| c.id()),
            });
        }
        Ok(tags)
    }

    /// A remote for `url` without touching the repository's config; its
    /// errors are scrubbed of credentials.
    fn anonymous_remote(&self, url: &str, auth: &GitAuth) -> Result<git2::Remote<'_>> {
        self.repo
            .remote_anonymous(url)
            .map_err(|e| scrubbed(e, url, auth))
    }

    /// The remote's tags, as `git ls-remote --tags` lists them: one
    /// connection, no objects fetched. Annotated tags get their commit from
    /// the `^{}` entries the server advertises.
    pub fn remote_tags(&self, remote: &RemoteTarget, auth: &GitAuth) -> Result<Vec<TagRef>> {
        let url = effective_url(&remote.fetch_url, auth);
        let what = || {
            format!(
                "listing the tags of remote {} ({})",
                remote.name,
                remote.display_url()
            )
        };
        if let Some(path) = local_repository_path(&url) {
            return tags_of_local_repository(&path).with_context(what);
        }
        self.prepare_tls(&url).with_context(what)?;
        let mut anonymous = self.anonymous_remote(&url, auth).with_context(what)?;
        let state = AuthState::default();
        let connection = anonymous
            .connect_auth(
                Direction::Fetch,
                Some(callbacks(auth, &state)),
                Some(proxy()),
            )
            .map_err(|e| transport_error(e, &url, auth, &state, Direction::Fetch))
            .with_context(what)?;
        let mut direct: BTreeMap<String, Oid> = BTreeMap::new();
        let mut peeled: BTreeMap<String, Oid> = BTreeMap::new();
        let heads = connection
            .list()
            .map_err(|e| scrubbed(e, &url, auth))
            .with_context(what)?;
        for head in heads {
            let Some(tag) = head.name().strip_prefix("refs/tags/") else {
                continue;
            };
            match tag.strip_suffix("^{}") {
                Some(base) => peeled.insert(base.to_owned(), head.oid()),
                None => direct.insert(tag.to_owned(), head.oid()),
            };
        }
        Ok(direct
            .into_iter()
            .map(|(name, target)| {
                // No `^{}` line: the ref points straight at a commit
                // (lightweight tag), as servers only peel tag objects.
                let commit = peeled.get(&name).copied().unwrap_or(target);
                TagRef {
                    name,
                    target,
                    commit: Some(commit),
                }
            })
            .collect())
    }

    /// Commit messages from HEAD back to (not including) `stop`. In a
    /// shallow clone the walk ends at the graft, which is reported rather
    /// than treated as an error.
    pub fn history_since(&self, head: Oid, stop: Option<Oid>, limit: usize) -> Result<History> {
        let mut walk = self
            .repo
            .revwalk()
            .with_context(|| format!("walking history in {}", self.root.display()))?;
        walk.push(head)
            .with_context(|| format!("walking history from {head}"))?;
        let mut history = History::default();
        let stop_known = stop.filter(|s| self.repo.find_commit(*s).is_ok());
        if let Some(stop) = stop_known {
            walk.hide(stop)
                .with_context(|| format!("walking history down to {stop}"))?;
        }
        for oid in walk {
            let Ok(oid) = oid else {
                // A parent that is not in the object database: the shallow
                // boundary of a clone whose graft file libgit2 did not apply.
                history.cut_short = true;
                break;
            };
            let Ok(commit) = self.repo.find_commit(oid) else {
                history.cut_short = true;
                break;
            };
            history
                .messages
                .push(String::from_utf8_lossy(commit.message_raw_bytes()).into_owned());
            if history.messages.len() >= limit {
                history.cut_short = true;
                break;
            }
        }
        history.reached_stop = stop_known.is_some();
        if stop.is_some() && stop_known.is_none() {
            history.cut_short = true;
        }
        Ok(history)
    }

    /// A file in the working tree, if it exists.
    pub fn read_worktree_file(&self, relative: &Path) -> Result<Option<String>> {
        let path = self.root.join(relative);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Create the annotated tag `name` on `commit` with `message` exactly as
    /// given (libgit2 does no comment stripping). Fails if a tag of that name
    /// exists: a tag is never moved. In dry-run mode, only planned.
    pub fn create_tag(
        &self,
        name: &str,
        commit: Oid,
        tagger: &Identity,
        message: &str,
    ) -> Result<Written<Oid>> {
        let short = &commit.to_string()[..7];
        if self.plan(
            "create",
            format!("refs/tags/{name}"),
            format!(
                "annotated tag on {short} by {} <{}>, message of {} line(s)",
                tagger.name,
                tagger.email,
                message.lines().count()
            ),
        ) {
            return Ok(Written::Planned);
        }
        let what = || format!("creating tag {name} on {commit}");
        let target = self
            .repo
            .find_object(commit, Some(ObjectType::Commit))
            .with_context(what)?;
        let signature = Signature::now(&tagger.name, &tagger.email)
            .with_context(|| format!("tagger identity {} <{}>", tagger.name, tagger.email))
            .with_context(what)?;
        self.repo
            .tag(name, &target, &signature, message, false)
            .map(Written::Sent)
            .with_context(what)
    }

    /// Remove a local tag this run made, but only if it still is the object
    /// we created (never someone else's tag of the same name).
    pub fn delete_own_tag(&self, name: &str, created: Oid) -> Result<()> {
        let refname = format!("refs/tags/{name}");
        let mut reference = match self.repo.find_reference(&refname) {
            Ok(r) => r,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("removing local tag {name}")),
        };
        if reference.target() == Some(created) {
            reference
                .delete()
                .with_context(|| format!("removing local tag {name}"))?;
        }
        Ok(())
    }

    /// Push `refs/tags/NAME` alone, not forced. The push-negotiation callback
    /// cancels it if the remote already has a tag of that name, so an
    /// existing tag is never overwritten whatever the server allows; the
    /// server's per-ref status is checked, since libgit2 returns Ok for a
    /// push the server refused. In dry-run mode, only planned.
    pub fn push_tag(
        &self,
        remote: &RemoteTarget,
        auth: &GitAuth,
        name: &str,
    ) -> Result<Written<PushOutcome>> {
        if self.plan(
            "push",
            format!("refs/tags/{name}"),
            format!(
                "to {} ({}), not forced",
                remote.name,
                redact_url(&remote.push_url)
            ),
        ) {
            return Ok(Written::Planned);
        }
        self.push_tag_now(remote, auth, name).map(Written::Sent)
    }

    fn push_tag_now(
        &self,
        remote: &RemoteTarget,
        auth: &GitAuth,
        name: &str,
    ) -> Result<PushOutcome> {
        let refname = format!("refs/tags/{name}");
        let url = effective_url(&remote.push_url, auth);
        let what = || {
            format!(
                "pushing tag {name} to remote {} ({})",
                remote.name,
                redact_url(&remote.push_url)
            )
        };
        self.prepare_tls(&url).with_context(what)?;
        let mut anonymous = self.anonymous_remote(&url, auth).with_context(what)?;
        let state = AuthState::default();
        let already_there = Cell::new(false);
        let unexpected_ref: RefCell<Option<String>> = RefCell::new(None);
        let status: RefCell<Option<String>> = RefCell::new(None);
        let remote_output: RefCell<Vec<u8>> = RefCell::new(Vec::new());

        let result = {
            let mut cbs = callbacks(auth, &state);
            cbs.push_negotiation(|updates| {
                for update in updates {
                    let dst = update.dst_refname().unwrap_or("");
                    if dst != refname {
                        *unexpected_ref.borrow_mut() = Some(dst.to_owned());
                        return Err(git2::Error::from_str("refusing to push another ref"));
                    }
                    if !update.src().is_zero() {
                        already_there.set(true);
                        return Err(git2::Error::from_str(
                            "the tag already exists on the remote",
                        ));
                    }
                }
                Ok(())
            });
            cbs.push_update_reference(|_, message| {
                if let Some(message) = message {
                    *status.borrow_mut() = Some(message.to_owned());
                }
                Ok(())
            });
            cbs.sideband_progress(|data| {
                let mut out = remote_output.borrow_mut();
                // Hooks can be chatty; keep what a person can read.
                if out.len() < 16 * 1024 {
                    out.extend_from_slice(data);
                }
                true
            });
            let mut options = PushOptions::new();
            options.remote_callbacks(cbs);
            options.proxy_options(proxy());
            anonymous.push(&[format!("{refname}:{refname}")], Some(&mut options))
        };

        if already_there.get() {
            return Ok(PushOutcome::AlreadyOnRemote);
        }
        if let Some(other) = unexpected_ref.into_inner() {
            anyhow::bail!(
                "{}: libgit2 planned to update {other}; nothing was pushed",
                what()
            );
        }
        let remote_output = clean_remote_output(&remote_output.into_inner());
        if let Err(e) = result {
            // A server that refuses the whole push (e.g. a pre-receive hook on
            // some transports) still said why on the side band.
            let err = transport_error(e, &url, auth, &state, Direction::Push);
            return Err(if remote_output.is_empty() {
                err
            } else {
                err.context(format!("the server said:\n{remote_output}"))
            })
            .with_context(what);
        }
        match status.into_inner() {
            Some(status) => Ok(PushOutcome::Rejected {
                status,
                remote_output,
            }),
            None => Ok(PushOutcome::Pushed),
        }
    }
}

/// A remote that is a repository on this machine (`file://…` or an absolute
/// path), which can be read directly.
fn local_repository_path(url: &str) -> Option<PathBuf> {
    let path = match url.strip_prefix("file://") {
        Some(rest) => Path::new(rest),
        None if !url.contains("://") && Path::new(url).is_absolute() => Path::new(url),
        None => return None,
    };
    path.is_dir().then(|| path.to_path_buf())
}

/// The tags of a repository on this machine, read directly: the same list
/// `git ls-remote --tags` gives, with the commit of annotated tags taken
/// from packed-refs' peeled entries. libgit2's own file:// transport looks
/// every ref up again one by one (a stat and a packed-refs check each),
/// which made a 10,000-tag remote several times slower than `git ls-remote`.
fn tags_of_local_repository(path: &Path) -> Result<Vec<TagRef>> {
    let repo = Repository::open(path)
        .with_context(|| format!("opening the repository at {}", path.display()))?;
    let odb = repo
        .odb()
        .with_context(|| format!("opening the objects of {}", path.display()))?;
    let mut tags = Vec::new();
    for reference in repo
        .references_glob("refs/tags/*")
        .with_context(|| format!("listing the tags of {}", path.display()))?
    {
        let reference =
            reference.with_context(|| format!("listing the tags of {}", path.display()))?;
        let (Ok(name), Some(target)) = (reference.name(), reference.target()) else {
            continue;
        };
        let Some(name) = name.strip_prefix("refs/tags/") else {
            continue;
        };
        let commit = match reference.target_peel() {
            Some(peeled) => Some(peeled),
            // Loose refs carry no peeled value: look at the object's type
            // (a header read, no inflating of whole objects).
            None => match odb.read_header(target) {
                Ok((_, ObjectType::Tag)) => reference.peel_to_commit().ok().map(|c| c.id()),
                Ok((_, ObjectType::Commit)) => Some(target),
                _ => None,
            },
        };
        tags.push(TagRef {
            name: name.to_owned(),
            target,
            commit,
        });
    }
    Ok(tags)
}

/// Side-band text as lines a person can read: `\r` progress overwrites
/// dropped, control characters removed, each line prefixed with `remote: `.
fn clean_remote_output(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split('\n')
        .filter_map(|line| line.rsplit('\r').find(|part| !part.trim().is_empty()))
        .map(|line| {
            line.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
        })
        .map(|line| line.trim_end().to_owned())
        .filter(|line| !line.is_empty())
        .map(|line| format!("remote: {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The URL libgit2 connects to. With a token of our own for that host,
/// credentials written into the remote's URL (as older GitLab runners do
/// with the job token) are dropped, or libgit2 would present them first and
/// never ask for ours. A remote on another host keeps what its URL says.
fn effective_url(url: &str, auth: &GitAuth) -> String {
    if auth.token.is_some() && is_http(url) && auth.may_send_to(url).is_ok() {
        redact_url(url)
    } else {
        url.to_owned()
    }
}

/// A proxy as git would pick it: `http.proxy` from git config, else the
/// `https_proxy`/`http_proxy` variables (CI runners behind a corporate
/// proxy set these; libgit2 ignores them unless asked).
fn proxy<'a>() -> ProxyOptions<'a> {
    let mut options = ProxyOptions::new();
    options.auto();
    options
}

/// What the credentials callback saw, for explaining a failure.
#[derive(Default)]
struct AuthState {
    offered_token: Cell<bool>,
    rejected: Cell<bool>,
    missing_token: Cell<bool>,
    /// A server the token may not go to asked for it.
    withheld: RefCell<Option<Withheld>>,
    calls: Cell<u32>,
}

/// libgit2 calls the credentials callback again each time the server turns
/// the last credential down, so a bad token would loop forever: the token is
/// offered once, and the next call ends the connection.
fn callbacks<'a>(auth: &'a GitAuth, state: &'a AuthState) -> RemoteCallbacks<'a> {
    let mut cbs = RemoteCallbacks::new();
    cbs.credentials(move |url, username_from_url, allowed| {
        state.calls.set(state.calls.get() + 1);
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if state.offered_token.get() {
                state.rejected.set(true);
                return Err(git2::Error::from_str(
                    "the server rejected the credentials; not retrying",
                ));
            }
            let Some(token) = &auth.token else {
                state.missing_token.set(true);
                return Err(git2::Error::from_str("the server asks for credentials"));
            };
            // libgit2 passes the URL of the server that asks, after any
            // redirect: the token goes to the GitLab host only.
            if let Err(withheld) = auth.may_send_to(url) {
                let message = withheld.to_string();
                *state.withheld.borrow_mut() = Some(withheld);
                return Err(git2::Error::from_str(&message));
            }
            state.offered_token.set(true);
            return Cred::userpass_plaintext(&auth.username, token.expose());
        }
        // ssh remotes: the agent, a handful of times at most (libgit2 asks
        // once for the user name, then for a key).
        if state.calls.get() > 3 {
            state.rejected.set(true);
            return Err(git2::Error::from_str(
                "the server rejected the credentials; not retrying",
            ));
        }
        let user = username_from_url.unwrap_or("git");
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user);
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            return Cred::ssh_key_from_agent(user);
        }
        if allowed.contains(CredentialType::DEFAULT) {
            return Cred::default();
        }
        Err(git2::Error::from_str("no supported credential type"))
    });
    cbs
}

/// A libgit2 transport error, with a hint when the cause is likely the token.
fn transport_error(
    err: git2::Error,
    url: &str,
    auth: &GitAuth,
    state: &AuthState,
    direction: Direction,
) -> anyhow::Error {
    let source = auth.source.as_deref().unwrap_or("no token");
    let forbidden = err.class() == ErrorClass::Http && err.message().contains("403");
    let push_rights = "the token needs the write_repository scope and a role allowed to push \
         (for protected tags, a role allowed to create them: Settings > Repository > Protected tags); \
         CI_JOB_TOKEN cannot push: put a project access token with write_repository in RP_GIT_TOKEN";
    let job = if auth.is_job_token {
        " CI_JOB_TOKEN cannot push tags: set RP_GIT_TOKEN to a project access token with write_repository."
    } else {
        ""
    };
    let withheld = state.withheld.borrow().clone();
    let (message, hint) = if let Some(withheld) = withheld {
        let hint = match withheld {
            Withheld::NoGitLabHost { .. } => format!(
                "set the GitLab URL (--gitlab-url, RP_GITLAB_URL or gitlab.url; CI_SERVER_URL in \
                 CI) to the instance that hosts this repository, so the token from {source} may \
                 go to it"
            ),
            Withheld::OtherHost { .. } => "push to a remote on the GitLab host, or point the \
                 GitLab URL at the instance that hosts this repository; a redirect to another \
                 host never gets the token"
                .to_owned(),
            Withheld::Unencrypted { .. } => {
                "use an https:// remote URL for the GitLab host".to_owned()
            }
        };
        (withheld.to_string(), hint)
    } else if state.missing_token.get() {
        (
            "the remote asks for credentials and no token is set".to_owned(),
            "set RP_GIT_TOKEN (or RP_GITLAB_TOKEN) to a token with write_repository; \
             it is sent as the password of user oauth2"
                .to_owned(),
        )
    } else if state.rejected.get() {
        (
            format!("authentication failed with the token from {source}"),
            format!(
                "the token was refused (user {}): it is invalid, expired or revoked, \
                 or lacks read_repository/write_repository.{job}",
                auth.username
            ),
        )
    } else if forbidden {
        (
            "the server refused access (HTTP 403)".to_owned(),
            format!("the token from {source} may not do this: {push_rights}"),
        )
    } else if direction == Direction::Push && auth.is_job_token {
        (
            "push failed while using CI_JOB_TOKEN".to_owned(),
            push_rights.to_owned(),
        )
    } else {
        return scrubbed(err, url, auth);
    };
    // The hinted error is the root of the chain (that is where the error
    // report looks for hints), so libgit2's words go into its message.
    anyhow::Error::new(HintedError::new(
        format!("{message}: {}", scrub(err.message(), url, auth)),
        hint,
    ))
}

/// `text` with the token and any credentials from the URL replaced, in
/// every spelling (percent-encoded as in a URL's userinfo, or decoded):
/// libgit2's messages may quote the URL it was given.
fn scrub(text: &str, url: &str, auth: &GitAuth) -> String {
    let mut secrets: Vec<&str> = Vec::new();
    if let Some(token) = &auth.token {
        secrets.push(token.expose());
    }
    if let Some(userinfo) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo)
    {
        secrets.push(userinfo);
        if let Some((_, password)) = userinfo.split_once(':') {
            secrets.push(password);
        }
    }
    crate::redact::Redactor::new(secrets).redact(text)
}

/// A libgit2 error as an anyhow error, scrubbed of credentials.
fn scrubbed(err: git2::Error, url: &str, auth: &GitAuth) -> anyhow::Error {
    anyhow::anyhow!(scrub(&err.to_string(), url, auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_url("https://gitlab-ci-token:secret@gitlab.example.com/g/p.git"),
            "https://gitlab.example.com/g/p.git"
        );
        assert_eq!(
            redact_url("https://gitlab.example.com/a@b/p.git"),
            "https://gitlab.example.com/a@b/p.git"
        );
        assert_eq!(redact_url("git@host:g/p.git"), "git@host:g/p.git");
        assert_eq!(redact_url("/srv/git/p.git"), "/srv/git/p.git");
    }

    #[test]
    fn identity_falls_back_field_by_field() {
        assert_eq!(Identity::first_of(&[]), Identity::bot());
        let id = Identity::first_of(&[
            (None, None),
            (Some("Config Name"), None),
            (Some("GitLab Name"), Some("gl@example.com")),
        ]);
        assert_eq!(id.name, "Config Name");
        assert_eq!(id.email, "gl@example.com");
        let id = Identity::first_of(&[(Some("  "), Some(""))]);
        assert_eq!(id, Identity::bot());
    }

    #[test]
    fn remote_output_is_readable() {
        let raw = b"Counting 10%\rCounting 100%\ntags are frozen\x1b[0m\n\n";
        assert_eq!(
            clean_remote_output(raw),
            "remote: Counting 100%\nremote: tags are frozen[0m"
        );
    }

    #[test]
    fn errors_are_scrubbed_of_credentials() {
        let auth = GitAuth {
            username: "oauth2".into(),
            token: Some(Secret::new("glpat-abc")),
            source: None,
            is_job_token: false,
            gitlab_url: None,
        };
        let url = "https://gitlab-ci-token:jobsecret@host/g/p.git";
        let text = scrub(
            "failed for https://gitlab-ci-token:jobsecret@host/g/p.git with glpat-abc",
            url,
            &auth,
        );
        assert!(
            !text.contains("jobsecret") && !text.contains("glpat-abc"),
            "{text}"
        );
        let remote = RemoteTarget {
            name: "origin".into(),
            fetch_url: url.into(),
            push_url: url.into(),
        };
        assert!(!format!("{remote:?}").contains("jobsecret"));
    }

    #[test]
    fn percent_encoded_tokens_are_scrubbed_too() {
        // A token with characters a URL's userinfo must encode, as a CI
        // runner or a person writes it into the remote's URL.
        let auth = GitAuth {
            username: "oauth2".into(),
            token: Some(Secret::new("glpat/ab+c=d")),
            source: None,
            is_job_token: false,
            gitlab_url: None,
        };
        let url = "https://oauth2:glpat%2Fab%2Bc%3Dd@host/g/p.git";
        for text in [
            format!("could not reach {url}"),
            "auth for oauth2:glpat%2fab%2bc%3dd@host".to_owned(),
            "password glpat/ab+c=d".to_owned(),
        ] {
            let clean = scrub(&text, url, &auth);
            assert!(
                !clean.contains("glpat") && !clean.contains("ab%2") && !clean.contains("ab+c"),
                "{clean}"
            );
        }
        // Credentials only in the URL (no token of ours), decoded by libgit2.
        let none = GitAuth::resolve(None, None, None);
        let clean = scrub(
            "as user gitlab-ci-token with p@ss:w/rd",
            "https://gitlab-ci-token:p%40ss%3Aw%2Frd@host/x.git",
            &none,
        );
        assert!(!clean.contains("p@ss"), "{clean}");
    }

    #[test]
    fn the_token_goes_to_the_gitlab_host_only() {
        let token = Some((Secret::new("t"), "RP_GIT_TOKEN".to_owned()));
        let auth = GitAuth::resolve(token.clone(), None, Some("https://GitLab.example.com"));
        assert_eq!(
            auth.may_send_to("https://gitlab.example.com/g/p.git"),
            Ok(())
        );
        assert_eq!(
            auth.may_send_to("https://u:p@gitlab.example.com:8443/g/p.git"),
            Ok(())
        );
        assert_eq!(
            auth.may_send_to("https://evil.example.com/g/p.git"),
            Err(Withheld::OtherHost {
                host: "evil.example.com".into(),
                gitlab_host: "gitlab.example.com".into()
            })
        );
        // A look-alike in the userinfo is not the host.
        assert!(
            auth.may_send_to("https://gitlab.example.com@evil.example.com/p.git")
                .is_err()
        );
        assert_eq!(
            auth.may_send_to("http://gitlab.example.com/g/p.git"),
            Err(Withheld::Unencrypted {
                host: "gitlab.example.com".into()
            })
        );
        let http = GitAuth::resolve(token.clone(), None, Some("http://127.0.0.1:8080"));
        assert_eq!(http.may_send_to("http://127.0.0.1:9000/git/x.git"), Ok(()));
        assert!(http.may_send_to("http://127.0.0.2:9000/git/x.git").is_err());
        let nowhere = GitAuth::resolve(token, None, None);
        assert!(matches!(
            nowhere.may_send_to("https://gitlab.example.com/x.git"),
            Err(Withheld::NoGitLabHost { .. })
        ));
        // Credentials in a remote URL on another host are that host's: kept.
        let url = "https://me:pw@mirror.example.com/x.git";
        assert_eq!(effective_url(url, &auth), url);
        assert_eq!(
            effective_url("https://ci:old@gitlab.example.com/x.git", &auth),
            "https://gitlab.example.com/x.git"
        );
    }

    #[test]
    fn auth_prefers_the_git_token_and_names_the_job_token_user() {
        let job = GitLabToken {
            secret: Secret::new("job-secret"),
            kind: TokenKind::Job,
            source: "CI_JOB_TOKEN".into(),
        };
        let auth = GitAuth::resolve(None, Some(&job), None);
        assert_eq!(auth.username, "gitlab-ci-token");
        assert!(auth.is_job_token);
        assert_eq!(auth.source.as_deref(), Some("CI_JOB_TOKEN"));

        let own = Some((Secret::new("glpat-git"), "RP_GIT_TOKEN".to_owned()));
        let auth = GitAuth::resolve(own, Some(&job), None);
        assert_eq!(auth.username, "oauth2");
        assert!(!auth.is_job_token);
        assert_eq!(
            auth.token.map(|t| t.expose().to_owned()).as_deref(),
            Some("glpat-git")
        );

        let private = GitLabToken {
            kind: TokenKind::Private,
            source: "RP_GITLAB_TOKEN".into(),
            ..job
        };
        assert_eq!(
            GitAuth::resolve(None, Some(&private), None).username,
            "oauth2"
        );
        assert!(GitAuth::resolve(None, None, None).token.is_none());
    }

    #[test]
    fn a_planning_repository_records_the_tag_and_the_push_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let signature = Signature::now("T", "t@example.com").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let commit = repo
            .commit(Some("HEAD"), &signature, &signature, "one", &tree, &[])
            .unwrap();
        repo.remote("origin", "https://u:secret@example.com/g/p.git")
            .unwrap();

        let git = GitRepo::open(dir.path()).unwrap().planning();
        let remote = git.remote("origin").unwrap();
        let auth = GitAuth::resolve(None, None, None);
        let created = git
            .create_tag("v1.0.0", commit, &Identity::bot(), "one")
            .unwrap();
        assert!(created.is_planned());
        assert!(git.push_tag(&remote, &auth, "v1.0.0").unwrap().is_planned());
        assert!(git.local_tags().unwrap().is_empty(), "no tag was made");
        let plan = git.planned();
        let verbs: Vec<_> = plan
            .iter()
            .map(|p| (p.method.as_str(), p.path.as_str()))
            .collect();
        assert_eq!(
            verbs,
            [("create", "refs/tags/v1.0.0"), ("push", "refs/tags/v1.0.0")]
        );
        assert!(!plan[1].summary.contains("secret"), "{}", plan[1].summary);
    }

    #[test]
    fn auth_debug_hides_the_token() {
        let auth = GitAuth {
            username: "oauth2".into(),
            token: Some(Secret::new("glpat-verysecret")),
            source: Some("RP_GIT_TOKEN".into()),
            is_job_token: false,
            gitlab_url: None,
        };
        assert!(!format!("{auth:?}").contains("verysecret"));
    }
}
