//! The instance and the caller: GitLab's version, the token's own record
//! (name, scopes, expiry). Read by `doctor` (the user the token acts as is
//! `users.rs`).

use anyhow::Result;
use serde::Deserialize;

use super::{GitLab, is_status};

/// `GET /version`.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceVersion {
    pub version: String,
    #[serde(default)]
    pub revision: String,
}

/// `GET /personal_access_tokens/self`: personal, project and group access
/// tokens describe themselves (GitLab 15.5 and later).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub revoked: Option<bool>,
    /// `YYYY-MM-DD`, or `null` for a token that never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl GitLab {
    /// The instance's version.
    pub fn instance_version(&self) -> Result<InstanceVersion> {
        self.get("version")
    }

    /// The token's own record; `None` when this GitLab cannot say (older
    /// than 15.5: 404).
    pub fn token_info(&self) -> Result<Option<TokenInfo>> {
        match self.get("personal_access_tokens/self") {
            Ok(info) => Ok(Some(info)),
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The same client, giving up on retries after `budget` (a check that
    /// should answer quickly rather than wait out GitLab).
    pub fn with_retry_budget(mut self, budget: std::time::Duration) -> Self {
        self.retry.budget = self.retry.budget.min(budget);
        self
    }
}
