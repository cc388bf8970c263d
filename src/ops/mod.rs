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

pub mod check_versions;
pub mod escalate;
pub mod tag_library;
pub mod transition_issues;
