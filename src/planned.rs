//! What a client in dry-run mode answers instead of writing: each write is
//! recorded as a [`PlannedWrite`] and answered with [`Written::Planned`].
//!
//! Shared by every client that writes (`gitlab`, `git`), so an operation is
//! written once and `--dry-run` prints one kind of plan whatever it touches.
//! Plain data: no I/O, no printing.

/// A write a dry run did not send: method (an HTTP method, or a git verb
/// such as `create` or `push`), path, and a one-line summary of the body
/// (never a secret: bodies carry issue text or tag names, not credentials).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedWrite {
    pub method: String,
    pub path: String,
    pub summary: String,
}

/// The outcome of a write: the service's answer, or, in dry-run mode, the
/// fact that it was planned and not sent.
#[derive(Debug, Clone)]
pub enum Written<T> {
    Sent(T),
    Planned,
}

impl<T> Written<T> {
    /// The service's answer, if the write was sent.
    pub fn sent(self) -> Option<T> {
        match self {
            Written::Sent(value) => Some(value),
            Written::Planned => None,
        }
    }

    pub fn is_planned(&self) -> bool {
        matches!(self, Written::Planned)
    }
}
