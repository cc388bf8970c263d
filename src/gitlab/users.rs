//! The user the token belongs to (`GET /user`): how rp-devops tells its own
//! notes from a person's. A marker proves nothing by itself (anyone can
//! type one); a note counts as rp-devops's only when this user wrote it.
//!
//! Read once per client and kept: a CLI run asks at most once, and `serve`,
//! which builds its clients once, asks once for its lifetime.

use anyhow::{Context, Result};

use super::{GitLab, User};

impl GitLab {
    /// The token's own user, read on first use and kept for the client's
    /// lifetime (clones share it).
    pub fn current_user(&self) -> Result<User> {
        if let Some(user) = self.me.get() {
            return Ok(user.clone());
        }
        let user: User = self.get("user").context(
            "reading the token's own user (GET /user), to tell rp-devops's notes from others'",
        )?;
        let _ = self.me.set(user.clone());
        Ok(user)
    }

    /// Whether a note by `author` was written with this client's token.
    pub fn is_own(&self, author: Option<&User>) -> Result<bool> {
        let Some(author) = author else {
            return Ok(false);
        };
        Ok(self.current_user()?.id == author.id)
    }
}
