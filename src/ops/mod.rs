//! Operations: the work behind each command, written once and called through
//! two doors, the CLI commands (`commands/`) and `serve`'s routes (`serve/`).
//!
//! An operation takes a typed request (plain data: no clap, no `Settings`, no
//! printer), the clients it needs (`gitlab`, `freshdesk`, `git`), and returns
//! a typed outcome (enums, not strings) that the caller renders. It never
//! prints, never reads the environment, and never decides whether a write is
//! a dry run: a client in dry-run mode answers writes with
//! [`crate::gitlab::Written::Planned`], and the outcome says "would-…".
//! Pure rules (markers, bodies, matching, version arithmetic) live next to
//! their domain (`races/`, `git/version.rs`, `release/`), not here.
//!
//! - [`check_versions`]: the version check of a merge request (`check-versions`, the webhook).
//! - [`escalate`]: a Freshdesk ticket into one GitLab issue, linked both ways (`escalate`, `serve`'s escalation endpoint).
//! - [`publish_release`]: storing a received release artifact and running its script (`serve`'s release route).
//! - [`races`]: filing races as GitLab issues (`scan-races`).
//! - [`release_upload`]: sending a release artifact to a receiver, with retries (`release upload`).
//! - [`tag_library`]: the next semver tag of a Go library and its GitLab release (`tag-library`).
//! - [`transition_issues`]: moving referenced issues along the workflow (`transition-issues`, the webhook).

pub mod check_versions;
pub mod doctor;
pub mod escalate;
pub mod publish_release;
pub mod races;
pub mod release_upload;
pub mod tag_library;
pub mod transition_issues;
