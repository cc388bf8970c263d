//! What every HTTP client of this program shares, whatever it talks to
//! (GitLab's API, the release receiver): today the retry policy.
//!
//! Nothing here knows a service; the clients in `gitlab/` and the release
//! upload (`ops::release_upload`) decide which answers are worth a retry.

pub mod retry;

pub use retry::RetryPolicy;
