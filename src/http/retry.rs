//! One retry policy for every HTTP client: exponential backoff with jitter,
//! and the server's own `Retry-After` (or `RateLimit-Reset`) when it sent one.
//!
//! The policy says how long to wait; each client says what is worth a retry
//! and when to give up (the GitLab client within a time budget, the release
//! upload after a fixed number of attempts, since the upload itself may take
//! longer than any budget).

use std::time::{Duration, SystemTime};

/// Bounds on retrying: exponential backoff from `base`, at most `max_delay`
/// per wait, and no retry that would end after `budget` from the first try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_delay: Duration,
    pub budget: Duration,
    pub max_attempts: u32,
    /// One request, from connecting to the last byte of the answer.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(120),
            max_attempts: 8,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A server asked for a wait shorter than this: wait this long anyway, so a
/// `Retry-After: 0` does not turn into a busy loop.
const MIN_SERVER_WAIT: Duration = Duration::from_millis(50);

impl RetryPolicy {
    /// The wait after the `failures`-th failed attempt (1 for the first):
    /// `base · 2^(failures-1)`, capped at `max_delay`, then full jitter in
    /// `[half, whole]` so a herd of cron jobs spreads out.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// The wait before the next attempt: what the server asked for (see
    /// [`retry_after`]) if anything, else [`RetryPolicy::backoff`]. Whether
    /// the wait is too long to be worth it is the caller's decision.
    pub fn delay(&self, failures: u32, server_wait: Option<Duration>) -> Duration {
        server_wait.map_or_else(|| self.backoff(failures), |w| w.max(MIN_SERVER_WAIT))
    }
}

/// How long the server asked us to wait: `Retry-After` in seconds, else
/// `RateLimit-Reset` (a Unix time) minus `now`. `header` looks a header up
/// by name, case-insensitively. The HTTP-date form of `Retry-After` is not
/// used by GitLab or our receiver, and is ignored (plain backoff applies).
pub fn retry_after<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    let reset = header("ratelimit-reset")?.trim().parse::<u64>().ok()?;
    let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let policy = policy();
        for _ in 0..200 {
            for (failures, whole) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (4, 800),
                (5, 1000),
                (40, 1000),
            ] {
                let whole = Duration::from_millis(whole);
                let got = policy.backoff(failures);
                assert!(got >= whole / 2 && got <= whole, "{failures}: {got:?}");
            }
        }
        // Attempt 0 (nothing failed yet) is treated as the first failure.
        assert!(policy.backoff(0) <= Duration::from_millis(100));
    }

    #[test]
    fn the_server_wait_wins_over_backoff_but_is_never_zero() {
        let policy = policy();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(policy.delay(1, Some(Duration::ZERO)), MIN_SERVER_WAIT);
        assert!(policy.delay(1, None) <= Duration::from_millis(100));
    }

    #[test]
    fn retry_after_then_ratelimit_reset() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let headers = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| *v)
            }
        };
        assert_eq!(
            retry_after(headers(&[("Retry-After", " 12 ")]), now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            retry_after(
                headers(&[("retry-after", "3"), ("ratelimit-reset", "1030")]),
                now
            ),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(headers(&[("RateLimit-Reset", "1030")]), now),
            Some(Duration::from_secs(30))
        );
        // A reset in the past means "now".
        assert_eq!(
            retry_after(headers(&[("ratelimit-reset", "10")]), now),
            Some(Duration::ZERO)
        );
        // HTTP-date and garbage: no server wait.
        assert_eq!(
            retry_after(
                headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
                now
            ),
            None
        );
        assert_eq!(retry_after(headers(&[]), now), None);
    }
}
