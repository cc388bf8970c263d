//! Retrying a request (SPEC §11): exponential backoff with jitter, a wait the
//! server asked for (`Retry-After`, then `RateLimit-Reset`), a bounded number
//! of attempts and a bounded total time; and, before a write whose answer
//! was lost is sent again, the caller's check whether it took effect anyway.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::RawResponse;

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

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based): exponential, capped,
    /// with full jitter in [exp/2, exp] so a herd of cron jobs spreads out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// The wait before retry number `attempt`: what the server asked for
    /// (see [`retry_after`]) if anything, but never less than 50 ms, else
    /// [`RetryPolicy::backoff`]. Whether a wait is too long is the caller's
    /// decision (a time budget, or a cap).
    pub fn delay(&self, attempt: u32, server_wait: Option<Duration>) -> Duration {
        server_wait.map_or_else(
            || self.backoff(attempt),
            |w| w.max(Duration::from_millis(50)),
        )
    }
}

/// What one attempt ended in.
pub enum Attempt<R> {
    /// An answer to hand back as it is (success or a final error status).
    Done(R),
    /// Worth another try; `applied_maybe` when the request may have reached
    /// the server, `wait` when the server said how long to wait.
    Retry {
        reason: String,
        applied_maybe: bool,
        wait: Option<Duration>,
    },
}

/// How the retry loop ended.
pub enum Outcome<R> {
    Done(R),
    /// A write whose answer was lost turned out to have taken effect.
    Applied,
    /// Out of attempts or time; `status` is the last answer's, if any.
    GaveUp {
        status: Option<u16>,
        message: String,
    },
}

/// Run `attempt` until it is done, retrying as `policy` allows. `applied` is
/// asked (for writes only) before re-sending a request that may have reached
/// the server; `Ok(true)` ends the loop with [`Outcome::Applied`].
/// `on_retry` gets a one-line reason before each wait.
pub fn run<R>(
    policy: &RetryPolicy,
    label: &str,
    is_write: bool,
    on_retry: &dyn Fn(&str),
    attempt: &mut dyn FnMut() -> Result<Attempt<R>>,
    applied: &mut dyn FnMut() -> Result<bool>,
) -> Result<Outcome<R>> {
    let started = Instant::now();
    let mut tries = 0u32;
    loop {
        tries += 1;
        let (reason, applied_maybe, wait) = match attempt()? {
            Attempt::Done(done) => return Ok(Outcome::Done(done)),
            Attempt::Retry {
                reason,
                applied_maybe,
                wait,
            } => (reason, applied_maybe, wait),
        };
        let delay = policy.delay(tries, wait);
        let out_of_budget = started.elapsed() + delay > policy.budget;
        if tries >= policy.max_attempts || out_of_budget {
            let status = reason
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok());
            let message = format!(
                "{reason} (gave up after {tries} attempt{} in {:.1}s)",
                if tries == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64()
            );
            return Ok(Outcome::GaveUp { status, message });
        }
        on_retry(&format!(
            "{label}: {reason}; retrying in {:.1}s",
            delay.as_secs_f64()
        ));
        std::thread::sleep(delay);
        if applied_maybe && is_write && applied()? {
            return Ok(Outcome::Applied);
        }
    }
}

/// The wait a 429 or 503 asks for: `Retry-After` in seconds, else
/// `RateLimit-Reset` as a Unix time.
pub fn retry_after(response: &RawResponse) -> Option<Duration> {
    if let Some(secs) = response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_secs(secs));
    }
    let reset = response
        .header("ratelimit-reset")?
        .trim()
        .parse::<u64>()
        .ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            budget: Duration::from_secs(5),
            max_attempts: 4,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        for attempt in 1..30 {
            let d = policy.backoff(attempt);
            assert!(d <= policy.max_delay, "{attempt}: {d:?}");
        }
        let first = policy.backoff(1);
        assert!(first >= policy.base / 2 && first <= policy.base);
    }

    #[test]
    fn a_server_wait_wins_over_backoff_but_is_never_zero() {
        let policy = quick();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::ZERO)),
            Duration::from_millis(50)
        );
        assert!(policy.delay(3, None) <= policy.max_delay);
    }

    #[test]
    fn gives_up_after_max_attempts_with_the_last_status() {
        let mut calls = 0;
        let outcome: Outcome<()> = run(
            &quick(),
            "GET x",
            false,
            &|_| {},
            &mut || {
                calls += 1;
                Ok(Attempt::Retry {
                    reason: "503 Service Unavailable".to_owned(),
                    applied_maybe: false,
                    wait: None,
                })
            },
            &mut || Ok(false),
        )
        .unwrap();
        assert_eq!(calls, 4);
        match outcome {
            Outcome::GaveUp { status, message } => {
                assert_eq!(status, Some(503));
                assert!(message.contains("gave up after 4 attempts"), "{message}");
            }
            _ => panic!("expected to give up"),
        }
    }

    #[test]
    fn a_write_that_took_effect_is_not_sent_again() {
        let mut calls = 0;
        let outcome: Outcome<()> = run(
            &quick(),
            "POST x",
            true,
            &|_| {},
            &mut || {
                calls += 1;
                Ok(Attempt::Retry {
                    reason: "connection reset".to_owned(),
                    applied_maybe: true,
                    wait: None,
                })
            },
            &mut || Ok(true),
        )
        .unwrap();
        assert_eq!(calls, 1);
        assert!(matches!(outcome, Outcome::Applied));
    }
}
